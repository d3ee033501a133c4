"""The object store behind the in-memory runtime, with the API server's bookkeeping.

Shared by :class:`~tjf_core.testing.InMemoryRuntime` (what clients may do) and
:class:`~tjf_core.testing.InMemoryDriver` (what controllers and kubelets do), so both write
objects the same way: a uid, a resourceVersion from one counter (like etcd's revision), a
creation time from the clock, a generation that counts spec changes; quota admission; garbage
collection of objects whose owners are gone. Every method expects the caller to hold ``lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from tjf_core.errors import InvalidInputError, QuotaExceededError
from tjf_core.identity import ToolIdentity
from tjf_core.quantity import Quantity
from tjf_core.quota import quota_exceeded_message
from tjf_core.runtime import Manifest

_T = TypeVar("_T")


def json_copy(value: _T) -> _T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy``: the fake hands out copies on every read, as the API serialises."""
    if isinstance(value, dict):
        return cast(_T, {key: json_copy(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(_T, [json_copy(item) for item in value])
    return value

NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "toolforge-jobs-framework"
API_VERSION = {"Job": "batch/v1", "CronJob": "batch/v1", "Deployment": "apps/v1",
               "ReplicaSet": "apps/v1", "Service": "v1", "Pod": "v1", "Event": "v1"}
#: Kind -> (the resource as the apiserver names it in errors, the quota keys that count it).
QUOTA_KEYS = {"Job": ("jobs.batch", ("count/jobs.batch",)),
              "CronJob": ("cronjobs.batch", ("count/cronjobs.batch",)),
              "Deployment": ("deployments.apps", ("count/deployments.apps",)),
              "Service": ("services", ("services", "count/services")),
              "Pod": ("pods", ("pods", "count/pods"))}
_JOB_OBJECTS = frozenset({"Job", "CronJob", "Deployment", "Service"})
_WITH_GENERATION = frozenset({"Job", "CronJob", "Deployment", "ReplicaSet"})
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses in generated names


def stamp(when: datetime) -> str:
    """A time as the API writes it (RFC 3339, seconds, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if isinstance(ref, dict) and isinstance(ref.get("uid"), str)]


def key_of(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of an object; InvalidInputError when either is missing."""
    kind, name = manifest.get("kind"), (manifest.get("metadata") or {}).get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        raise InvalidInputError("an object needs a kind and a metadata.name")
    return kind, name


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
        number, text = (self.serial() * 7919) % len(_SUFFIX_ALPHABET) ** 5, ""
        for _ in range(5):
            number, digit = divmod(number, len(_SUFFIX_ALPHABET))
            text += _SUFFIX_ALPHABET[digit]
        return text

    def now(self) -> str:
        return stamp(self.clock())

    def add(self, space: Namespace, manifest: Manifest, *, keep_status: bool = False) -> Manifest:
        """Store a new object, as the API server does on create."""
        obj = json_copy(manifest)
        kind, name = key_of(obj)
        serial = self.serial()
        meta = obj.setdefault("metadata", {})
        meta.update(namespace=space.name, uid=f"{serial:08x}-0000-4000-8000-{serial:012x}",
                    resourceVersion=str(serial), creationTimestamp=self.now())
        if kind in _WITH_GENERATION:
            meta["generation"] = 1
        obj.setdefault("apiVersion", API_VERSION.get(kind, "v1"))
        if not keep_status:
            obj["status"] = {}  # the status is the controllers' to write
        space.objects[kind, name] = obj
        return obj

    def update(self, space: Namespace, old: Manifest, new: Manifest) -> Manifest:
        """Store ``new`` in place of ``old``: same uid, new resourceVersion, status kept."""
        kind, name = key_of(old)
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "namespace"):
            meta[key] = old["metadata"][key]
        meta["resourceVersion"] = str(self.serial())
        if kind in _WITH_GENERATION:
            changed = new.get("spec") != old.get("spec")
            meta["generation"] = old["metadata"].get("generation", 1) + int(changed)
        new["status"] = json_copy(old.get("status", {}))
        space.objects[kind, name] = new
        return new

    def touch(self, obj: Manifest) -> None:
        obj["metadata"]["resourceVersion"] = str(self.serial())

    def admit(self, space: Namespace, kind: str, name: str) -> None:
        """Raise QuotaExceededError, as quota admission would, if the object does not fit."""
        refusal = self.refusal(space, kind, name)
        if refusal is not None:
            # Worded as tjf_core.kube words the apiserver's refusal: both runtimes say the same.
            raise QuotaExceededError(f"{quota_exceeded_message(refusal)}: delete jobs that are "
                                     "no longer needed or request a quota increase")

    def refusal(self, space: Namespace, kind: str, name: str) -> str | None:
        """The apiserver's text refusing one more object of ``kind``, or None if it fits."""
        if space.resource_quota is None or kind not in QUOTA_KEYS:
            return None
        hard = hard_limits(space.resource_quota)
        resource, keys = QUOTA_KEYS[kind]
        used = space.count(kind)
        for key in keys:
            if key in hard and used + 1 > Quantity.parse(str(hard[key])).value:
                quota = (space.resource_quota.get("metadata") or {}).get("name", space.name)
                return (f'{resource} "{name}" is forbidden: exceeded quota: {quota}, '
                        f"requested: {key}=1, used: {key}={used}, limited: {key}={hard[key]}")
        return None

    def delete(self, space: Namespace, doomed: Callable[[Manifest], bool]) -> bool:
        """Delete the objects ``doomed`` picks (events stay) and what they owned.

        True if a job's own object was among them; pods do not count (as in tjf_core.kube:
        pods still terminating from an earlier deletion are not a job).
        """
        keys = [key for key, obj in space.objects.items() if key[0] != "Event" and doomed(obj)]
        for key in keys:
            del space.objects[key]
        self.collect_garbage(space)
        return any(kind in _JOB_OBJECTS for kind, _ in keys)

    def collect_garbage(self, space: Namespace) -> None:
        """Delete every object all of whose owners are gone, as the garbage collector does."""
        while True:
            uids = {obj["metadata"]["uid"] for obj in space.objects.values()}
            orphans = [key for key, obj in space.objects.items()
                       if (owners := owner_uids(obj)) and not set(owners) & uids]
            if not orphans:
                return
            for kind, name in orphans:
                del space.objects[kind, name]
                if kind == "Pod":
                    space.logs.pop(name, None)


def hard_limits(quota: Manifest) -> Mapping[str, Any]:
    """What a ResourceQuota enforces: ``status.hard``, else ``spec.hard`` (not yet synced)."""
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard")
    return hard if isinstance(hard, Mapping) else {}


def merge_patch(base: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``base``: maps merge deeply, ``None`` removes a key, rest replaces.

    Enough of a strategic-merge patch for what tjf patches (annotations of a pod template).
    """
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return json_copy(patch)
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(base.get(key), value)
    return merged
