"""The in-memory runtime and the helpers that go with it (see :mod:`tjf_core.testing`)."""

from __future__ import annotations

import functools
import importlib.resources
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from tjf_core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.runtime import Manifest, Runtime, ToolObjects
from tjf_core.testing._driver import InMemoryDriver
from tjf_core.testing._store import (
    MANAGED_BY,
    MANAGER,
    NAME,
    QUOTA_KEYS,
    Namespace,
    Store,
    hard_limits,
    json_copy,
    key_of,
    labels_of,
    merge_patch,
)

_START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@functools.cache  # parsed once: a catalog is immutable
def bundled_catalog() -> ImageCatalog:
    """The sample image catalog shipped in ``tjf_core/data/images.yaml``."""
    text = (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text("utf-8")
    return ImageCatalog.from_yaml(text)


class FakeClock:
    """A clock that stands still until told to move; call it to read the time."""

    def __init__(self, start: datetime = _START) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be a timezone-aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds``; returns the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


class InMemoryRuntime:
    """A :class:`~tjf_core.runtime.Runtime` that keeps each tool's objects in memory.

    ``calls`` counts the protocol calls by method name. Namespaces spring into being on first
    use; :meth:`add_tool` gives one a ResourceQuota and a LimitRange. ``clock`` stamps
    creation times (a :class:`FakeClock` by default); ``catalog`` is the image catalog
    (default: :func:`bundled_catalog`).
    """

    def __init__(self, *, catalog: ImageCatalog | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.clock: Callable[[], datetime] = clock or FakeClock()
        self._catalog = catalog if catalog is not None else bundled_catalog()
        self._store = Store(self.clock)
        self._failures: list[tuple[str, str | None, Exception]] = []

    # --- test helpers ------------------------------------------------------------------------

    def add_tool(self, tool: ToolIdentity, *, resource_quota: Manifest | None = None,
                 limit_range: Manifest | None = None) -> None:
        """Give ``tool``'s namespace a ResourceQuota and a LimitRange (API objects as dicts)."""
        with self._store.lock:
            space = self._store.space(tool)
            space.resource_quota = json_copy(resource_quota)
            space.limit_range = json_copy(limit_range)

    def put(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        """Store ``manifest`` as given (status included), replacing any of its kind and name.

        No checks and no quota: for objects the service would never make (edited by hand,
        left by another system, events).
        """
        with self._store.lock:
            space = self._store.space(tool)
            space.objects.pop(key_of(manifest), None)
            return json_copy(self._store.add(space, manifest, keep_status=True))

    def objects(self, tool: ToolIdentity, kind: str | None = None) -> list[Manifest]:
        """Copies of every stored object of ``tool`` (only those of ``kind``), oldest first."""
        with self._store.lock:
            found = self._store.space(tool).objects.items()
            return json_copy([obj for (k, _), obj in found if kind in (None, k)])

    def fail_next(self, method: str, error: Exception, *, kind: str | None = None) -> None:
        """Make the next call of ``method`` (on an object of ``kind``) raise ``error``."""
        with self._store.lock:
            self._failures.append((method, kind, error))

    def driver(self, tool: ToolIdentity) -> InMemoryDriver:
        """What the controllers and the kubelet would do in ``tool``'s namespace, on request."""
        return InMemoryDriver(self._store, tool)

    # --- the Runtime protocol ----------------------------------------------------------------

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        with self._store.lock:
            self._enter("list_objects")
            space = self._store.space(tool)
            return ToolObjects(jobs=_items(space, "Job", job=job),
                               cronjobs=_items(space, "CronJob", job=job),
                               deployments=_items(space, "Deployment", job=job),
                               pods=_items(space, "Pod", job=job),
                               events=_items(space, "Event", managed_only=False))

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        with self._store.lock:
            self._enter("get", kind)
            return json_copy(self._store.space(tool).objects.get((kind, name)))

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        with self._store.lock:
            kind, name = key_of(manifest)
            self._enter("create", kind)
            space = self._checked_space(tool, manifest)
            if (kind, name) in space.objects:
                raise AlreadyExistsError(f"a job named {name!r} already exists")  # as kube says
            self._store.admit(space, kind, name)
            return json_copy(self._store.add(space, manifest))

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        with self._store.lock:
            kind, name = key_of(manifest)
            self._enter("replace", kind)
            space = self._checked_space(tool, manifest)
            old = space.objects.get((kind, name))
            template = (manifest.get("spec") or {}).get("template")
            if old is not None and kind == "Job" and old["spec"].get("template") != template:
                # A Job's pod template is immutable: the real runtime deletes and re-creates.
                del space.objects[kind, name]
                self._store.collect_garbage(space)
                old = None
            if old is None:
                self._store.admit(space, kind, name)
                return json_copy(self._store.add(space, manifest))
            return json_copy(self._store.update(space, old, json_copy(manifest)))

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        with self._store.lock:
            self._enter("patch", kind)
            space = self._store.space(tool)
            old = space.objects.get((kind, name))
            if old is None:
                raise NotFoundError(f"{kind} {name!r} does not exist")
            new = merge_patch(json_copy(old), patch)
            new["metadata"] = {**new.get("metadata", {}), "name": name}
            new["kind"] = kind
            if kind == "Job" and new["spec"].get("template") != old["spec"].get("template"):
                raise InvalidInputError(f"Job {name!r}: spec.template is immutable")
            return json_copy(self._store.update(space, old, new))

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        with self._store.lock:
            self._enter("delete_job")
            space = self._store.space(tool)
            return self._store.delete(space, lambda obj: labels_of(obj).get(NAME) == name
                                      and labels_of(obj).get(MANAGED_BY) == MANAGER)

    def delete_all(self, tool: ToolIdentity) -> None:
        with self._store.lock:
            self._enter("delete_all")
            space = self._store.space(tool)
            self._store.delete(space, lambda obj: labels_of(obj).get(MANAGED_BY) == MANAGER)

    def pod_logs(self, tool: ToolIdentity, *, pod: str, lines: int | None,
                 follow: bool) -> Iterator[str]:
        """The lines written with :meth:`InMemoryDriver.write_log`; follow ends at the last."""
        with self._store.lock:
            self._enter("pod_logs", "Pod")
            space = self._store.space(tool)
            if ("Pod", pod) not in space.objects:
                raise NotFoundError(f"pod {pod!r} does not exist")
            stored = space.logs.get(pod, [])
            return iter(stored[max(len(stored) - lines, 0):] if lines is not None else stored[:])

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        """The ResourceQuota with ``status.used`` counted as the quota controller would."""
        with self._store.lock:
            self._enter("quota")
            space = self._store.space(tool)
            quota = json_copy(space.resource_quota)
            if quota is not None:
                status = quota.setdefault("status", {})
                hard = status["hard"] = dict(hard_limits(quota))
                used = status.setdefault("used", {})
                for kind, (_, keys) in QUOTA_KEYS.items():
                    used.update({key: str(space.count(kind)) for key in keys if key in hard})
            return quota, json_copy(space.limit_range)

    def image_catalog(self) -> ImageCatalog:
        with self._store.lock:
            self._enter("image_catalog")
            return self._catalog

    # --- internals ---------------------------------------------------------------------------

    def _enter(self, method: str, kind: str | None = None) -> None:
        self.calls[method] += 1
        for index, (wanted, of_kind, error) in enumerate(self._failures):
            if wanted == method and of_kind in (None, kind):
                del self._failures[index]
                raise error

    def _checked_space(self, tool: ToolIdentity, manifest: Manifest) -> Namespace:
        namespace = (manifest.get("metadata") or {}).get("namespace")
        if namespace not in (None, tool.namespace):
            raise InvalidInputError(f"the object's namespace {namespace!r} does not match "
                                    f"the tool's namespace {tool.namespace!r}")
        return self._store.space(tool)


def _items(space: Namespace, kind: str, *, managed_only: bool = True,
           job: str | None = None) -> tuple[Manifest, ...]:
    found = []
    for (of_kind, _), obj in space.objects.items():
        if of_kind != kind or (managed_only and labels_of(obj).get(MANAGED_BY) != MANAGER):
            continue
        if job is not None and labels_of(obj).get(NAME) != job:
            continue
        # The API leaves kind and apiVersion out of list items; tjf_core.kube puts them back.
        found.append(json_copy(obj))
    return tuple(found)


class CountingRuntime:
    """Wraps any runtime and counts the calls made on it by method name, in ``calls``."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        self.calls["list_objects"] += 1
        return self.inner.list_objects(tool, job=job)

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        self.calls["get"] += 1
        return self.inner.get(tool, kind=kind, name=name)

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self.calls["create"] += 1
        return self.inner.create(tool, manifest)

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self.calls["replace"] += 1
        return self.inner.replace(tool, manifest)

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        self.calls["patch"] += 1
        return self.inner.patch(tool, kind=kind, name=name, patch=patch)

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        self.calls["delete_job"] += 1
        return self.inner.delete_job(tool, name)

    def delete_all(self, tool: ToolIdentity) -> None:
        self.calls["delete_all"] += 1
        self.inner.delete_all(tool)

    def pod_logs(self, tool: ToolIdentity, *, pod: str, lines: int | None,
                 follow: bool) -> Iterator[str]:
        self.calls["pod_logs"] += 1
        return self.inner.pod_logs(tool, pod=pod, lines=lines, follow=follow)

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        self.calls["quota"] += 1
        return self.inner.quota(tool)

    def image_catalog(self) -> ImageCatalog:
        self.calls["image_catalog"] += 1
        return self.inner.image_catalog()
