"""The object store behind the in-memory runtime, with the API server's bookkeeping.

Shared by :class:`~tjf_core.testing.InMemoryRuntime` (what clients may do) and
:class:`~tjf_core.testing.InMemoryDriver` (what controllers and kubelets do), so both write
objects the same way. The rules themselves (uids, resourceVersions, generation, quota
admission, garbage collection) are the pure ones of :mod:`tjf_core.objectstore`, which the
local runtime follows too; this module only holds the namespaces, a lock and a counter.
Every method expects the caller to hold ``lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from tjf_core.identity import ToolIdentity
from tjf_core.objectstore import (
    API_VERSION,
    MANAGED_BY,
    MANAGER,
    NAME,
    QUOTA_KEYS,
    admission_refusal,
    count_request,
    hard_limits,
    is_job_object,
    json_copy,
    key_of,
    labels_of,
    merge_patch,
    name_suffix,
    new_object,
    orphaned,
    owner_uids,
    quota_error,
    serial_uid,
    stamp,
    updated_object,
)
from tjf_core.runtime import Manifest

__all__ = [
    "API_VERSION",
    "MANAGED_BY",
    "MANAGER",
    "NAME",
    "QUOTA_KEYS",
    "Namespace",
    "Store",
    "hard_limits",
    "json_copy",
    "key_of",
    "labels_of",
    "merge_patch",
    "owner_uids",
    "stamp",
]


class Namespace:
    """One tool's namespace: its objects by (kind, name), quota, limit range and pod logs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[tuple[str, str], Manifest] = {}
        self.resource_quota: Manifest | None = None
        self.limit_range: Manifest | None = None
        self.logs: dict[str, list[str]] = {}

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.objects if k == kind)


class Store:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._namespaces: dict[str, Namespace] = {}
        self._serial = 0

    def space(self, tool: ToolIdentity) -> Namespace:
        """The tool's namespace; namespaces spring into being on first use."""
        space = self._namespaces.get(tool.namespace)
        if space is None:
            space = self._namespaces[tool.namespace] = Namespace(tool.namespace)
        return space

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def suffix(self) -> str:
        """Five characters for a generated name, never the same twice in a row."""
        return name_suffix(self.serial() * 7919)

    def now(self) -> str:
        return stamp(self.clock())

    def add(self, space: Namespace, manifest: Manifest, *, keep_status: bool = False) -> Manifest:
        """Store a new object, as the API server does on create."""
        serial = self.serial()
        obj = new_object(manifest, namespace=space.name, serial=serial, uid=serial_uid(serial),
                         now=self.clock(), keep_status=keep_status)
        space.objects[key_of(obj)] = obj
        return obj

    def update(self, space: Namespace, old: Manifest, new: Manifest) -> Manifest:
        """Store ``new`` in place of ``old``: same uid, new resourceVersion, status kept."""
        stored = updated_object(old, new, serial=self.serial())
        space.objects[key_of(old)] = stored
        return stored

    def touch(self, obj: Manifest) -> None:
        obj["metadata"]["resourceVersion"] = str(self.serial())

    def admit(self, space: Namespace, kind: str, name: str) -> None:
        """Raise QuotaExceededError, as quota admission would, if the object does not fit."""
        refusal = self.refusal(space, kind, name)
        if refusal is not None:
            # Worded as tjf_core.kube words the apiserver's refusal: both runtimes say the same.
            raise quota_error(refusal)

    def refusal(self, space: Namespace, kind: str, name: str) -> str | None:
        """The apiserver's text refusing one more object of ``kind``, or None if it fits."""
        if kind not in QUOTA_KEYS:
            return None
        used = Decimal(space.count(kind))
        return admission_refusal(space.resource_quota, resource=QUOTA_KEYS[kind][0], name=name,
                                 namespace=space.name, requested=count_request(kind),
                                 used=lambda key: used)

    def delete(self, space: Namespace, doomed: Callable[[Manifest], bool]) -> bool:
        """Delete the objects ``doomed`` picks (events stay) and what they owned.

        True if a job's own object was among them; pods do not count (as in tjf_core.kube:
        pods still terminating from an earlier deletion are not a job).
        """
        keys = [key for key, obj in space.objects.items() if key[0] != "Event" and doomed(obj)]
        for key in keys:
            del space.objects[key]
        self.collect_garbage(space)
        return any(is_job_object(kind) for kind, _ in keys)

    def collect_garbage(self, space: Namespace) -> None:
        """Delete every object all of whose owners are gone, as the garbage collector does."""
        for kind, name in orphaned(space.objects):
            del space.objects[kind, name]
            if kind == "Pod":
                space.logs.pop(name, None)
