"""The :class:`~tjf_core.runtime.Runtime` of one machine without a cluster: ``LocalRuntime``.

What clients may do (the protocol's methods) is done here as the apiserver would: objects are
stored with the bookkeeping of :mod:`tjf_core.objectstore`, a taken name is an
``AlreadyExistsError``, count quotas refuse a create with the apiserver's text, a Job's pod
template cannot change in place, deleting a job selects its objects by label and stops its
pods. What the cluster does on its own (controllers, kubelet, CronJob schedules, probes) is
done by the supervisor thread (:mod:`tjf_core.local.supervisor`) between :meth:`start` and
:meth:`close`; objects can be read and written before :meth:`start`, but nothing runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType

from tjf_core.errors import (
    AlreadyExistsError,
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
    RuntimeUnavailableError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.local.controllers import Controllers
from tjf_core.local.health import HealthChecker
from tjf_core.local.kubelet import Kubelet
from tjf_core.local.processes import is_ours, stop_groups
from tjf_core.local.quotas import admit, limit_range, resource_quota, used_quota
from tjf_core.local.scheduler import Scheduler
from tjf_core.local.settings import LocalSettings
from tjf_core.local.store import LocalStore, Run, Space
from tjf_core.local.supervisor import Supervisor
from tjf_core.logfiles import follow_lines, tail_lines
from tjf_core.objectstore import (
    is_job_object,
    json_copy,
    key_of,
    managed,
    merge_patch,
)
from tjf_core.runtime import Manifest, ToolObjects
from tjf_core.settings import IdentitySettings

__all__ = ["LocalRuntime"]

log = logging.getLogger(__name__)

_KINDS = ("Job", "CronJob", "Deployment", "Service")
_TERMINAL = frozenset({"Succeeded", "Failed"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalRuntime:
    """Runs jobs as processes on this machine; state in ``state_dir``, tools under ``root``.

    Tool ``t``'s home is ``root/t``. Thread-safe. Use as a context manager, or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(self, *, root: Path, state_dir: Path, catalog: ImageCatalog,
                 clock: Callable[[], datetime] = _utc_now,
                 settings: LocalSettings | None = None) -> None:
        self.root = Path(root).absolute()
        self.state_dir = Path(state_dir).absolute()
        self.settings = settings or LocalSettings()
        self._catalog = catalog
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                  0o600)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_file)
            raise ConfigurationError(
                f"the state directory {self.state_dir} is in use by another local runtime: "
                "stop it first, or give this one another state directory") from None
        try:
            self._store = LocalStore(self.state_dir / "state.sqlite3", clock)
        except BaseException:
            os.close(self._lock_file)  # closing it releases the flock
            raise
        self._subscribers: list[Callable[[Manifest], None]] = []
        self._pending: list[Manifest] = []
        #: Reentrant: a subscriber may subscribe or unsubscribe from its callback.
        self._delivering = threading.RLock()
        self._kubelet = Kubelet(store=self._store, settings=self.settings,
                                logs=self.state_dir / "logs", notify=self._notify)
        self._controllers = Controllers(store=self._store, kubelet=self._kubelet,
                                        settings=self.settings)
        self._supervisor = Supervisor(
            store=self._store, kubelet=self._kubelet, controllers=self._controllers,
            scheduler=Scheduler(store=self._store, controllers=self._controllers),
            settings=self.settings, deliver=self._deliver)
        self._health = HealthChecker(store=self._store, kubelet=self._kubelet,
                                     scale=self.settings.probe_period_scale,
                                     tick=self.settings.tick, wake=self._supervisor.wake)
        self._state = "new"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Stop what a runtime that died left running, then start supervising."""
        with self._store.lock:
            if self._state != "new":
                return
            self._recover()
            self._state = "started"
            self._supervisor.start()
            self._health.start()

    def close(self) -> None:
        """Stop supervising and stop every job's processes; the objects stay for next time.

        A continuous job gets new pods at the next :meth:`start`; a running Job attempt ends
        Failed (``Terminated``), and is retried then if its ``retry`` allows.
        """
        if self._state == "closed":
            return
        if self._state == "started":
            self._health.stop()
            self._supervisor.stop()
        with self._store.lock:
            self._kubelet.shutdown()
            self._store.close()
        self._state = "closed"
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        os.close(self._lock_file)
        self._deliver()

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _recover(self) -> None:
        now = self._store.clock()
        rows = self._store.processes()
        stop_groups([pid for _, _, pid, ticks in rows if is_ours(pid, ticks)],
                    grace=self.settings.grace_for(None))
        for namespace, name, _, _ in rows:
            if namespace in self._store.spaces:
                self._store.forget_process(self._store.spaces[namespace], name)
        self._store.end_open_runs(finished=now, reason="Terminated")
        for space in self._store.spaces.values():
            for pod in list(space.of_kind("Pod")):
                if pod["metadata"].get("deletionTimestamp"):
                    self._kubelet.remove_pod(space, pod["metadata"]["name"])
                elif (pod.get("status") or {}).get("phase") not in _TERMINAL:
                    self._kubelet.end_pod(space, pod, reason="Terminated")
        self._store.commit()

    # --- more than the protocol ------------------------------------------------------------------

    def identity_settings(self) -> IdentitySettings:
        """Identity settings whose homes are this runtime's (give them to the JobService)."""
        return IdentitySettings(home_template=f"{self.root}/{{tool}}")

    def tool_identity_for(self, name: str) -> ToolIdentity:
        """The identity of tool ``name`` here: namespace ``tool-<name>``, home ``root/<name>``."""
        return ToolIdentity.for_tool(name, settings=self.identity_settings())

    def set_quota(self, tool: ToolIdentity, *, resource_quota: Manifest | None = None,
                  limit_range: Manifest | None = None) -> None:
        """Give ``tool`` its own ResourceQuota and LimitRange (None: the settings' default)."""
        with self._store.lock:
            self._store.set_quota(self._space(tool), resource_quota=json_copy(resource_quota),
                                  limit_range=json_copy(limit_range))
            self._store.commit()

    def runs(self, tool: ToolIdentity, *, job: str | None = None, limit: int = 100) -> list[Run]:
        """The tool's runs (of ``job``), oldest first: the last ``limit`` of them."""
        with self._store.lock:
            return self._store.runs(self._space(tool), job=job, limit=limit)

    def subscribe(self, callback: Callable[[Manifest], None]) -> Callable[[], None]:
        """Call ``callback`` with a copy of a pod each time its status changes.

        Calls come from the supervisor thread, outside any lock, in order; an exception in a
        callback is logged and ignored. Returns the function that unsubscribes.
        """
        with self._delivering:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._delivering, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _notify(self, pod: Manifest) -> None:
        # Called under the store's lock with the live pod: a copy is kept only for listeners.
        if self._subscribers:
            self._pending.append(json_copy(pod))

    def _deliver(self) -> None:
        with self._delivering:
            with self._store.lock:
                pods, self._pending[:] = list(self._pending), []
            for pod in pods:
                for callback in list(self._subscribers):
                    try:
                        callback(pod)
                    except Exception:  # a subscriber's bug must not stop supervision
                        log.exception("local runtime: a pod subscriber failed")

    # --- the Runtime protocol --------------------------------------------------------------------

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        with self._store.lock:
            space = self._space(tool)
            found: dict[str, list[Manifest]] = {kind: [] for kind in (*_KINDS, "Pod", "Event")}
            for (kind, _), obj in space.objects.items():
                # Events carry no labels: the namespace's are listed for any job.
                wanted = kind == "Event" or (kind in found and managed(obj, job=job))
                if wanted and kind != "Service":
                    found[kind].append(json_copy(obj))
            return ToolObjects(jobs=tuple(found["Job"]), cronjobs=tuple(found["CronJob"]),
                               deployments=tuple(found["Deployment"]), pods=tuple(found["Pod"]),
                               events=tuple(found["Event"]))

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        with self._store.lock:
            return json_copy(self._space(tool).objects.get((kind, name)))

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        with self._store.lock:
            kind, name = self._checked(tool, manifest)
            space = self._space(tool)
            if (kind, name) in space.objects:
                raise AlreadyExistsError(f"a job named {name!r} already exists")
            admit(space, self.settings, kind=kind, name=name)
            self._ensure_home(space)
            created = json_copy(self._store.add(space, manifest))
            self._changed()
            return created

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        with self._store.lock:
            kind, name = self._checked(tool, manifest)
            space = self._space(tool)
            old = space.objects.get((kind, name))
            template = (manifest.get("spec") or {}).get("template")
            if old is not None and kind == "Job" and old["spec"].get("template") != template:
                # A Job's pod template is immutable: delete it (and its pods) and re-create.
                self._controllers.delete(space, [(kind, name)])
                old = None
            if old is None:
                admit(space, self.settings, kind=kind, name=name)
            self._ensure_home(space)
            if old is None:
                stored = self._store.add(space, manifest)
            else:
                stored = self._store.update(space, old, json_copy(manifest))
            self._changed()
            return json_copy(stored)

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        with self._store.lock:
            space = self._space(tool)
            old = space.objects.get((kind, name))
            if old is None:
                raise NotFoundError(f"{kind} {name!r} does not exist")
            new = merge_patch(json_copy(old), patch)
            new["metadata"] = {**new.get("metadata", {}), "name": name}
            new["kind"] = kind
            if kind == "Job" and new["spec"].get("template") != old["spec"].get("template"):
                raise InvalidInputError(f"Job {name!r}: spec.template is immutable")
            stored = json_copy(self._store.update(space, old, new))
            self._changed()
            return stored

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        return self._delete(tool, job=name)

    def delete_all(self, tool: ToolIdentity) -> None:
        self._delete(tool, job=None)

    def pod_logs(self, tool: ToolIdentity, *, pod: str, lines: int | None,
                 follow: bool) -> Iterator[str]:
        """What the pod's container wrote (when filelog is off; else its files have it).

        Both streams go to one file per pod, kept while the pod is; with ``follow``, lines
        keep coming until the container has ended for good.
        """
        with self._store.lock:
            space = self._space(tool)
            if ("Pod", pod) not in space.objects:
                raise NotFoundError(f"pod {pod!r} does not exist")
            path = self._kubelet.log_path(space, pod)
        folder = PurePosixPath(path.parent)
        if not follow:
            try:
                return tail_lines(folder, [str(path)], lines=lines)
            except NotFoundError:
                return iter(())

        def running() -> bool:
            with self._store.lock:
                return (space.namespace, pod) in self._kubelet.containers

        return follow_lines(folder, [str(path)], lines=lines, sleep=time.sleep,
                            interval=self.settings.follow_interval, keep_going=running)

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        """The tool's ResourceQuota, with ``status.used`` counted now, and its LimitRange."""
        with self._store.lock:
            space = self._space(tool)
            quota = used_quota(space, resource_quota(space, self.settings))
            return quota, limit_range(space, self.settings)

    def image_catalog(self) -> ImageCatalog:
        return self._catalog

    # --- internals -------------------------------------------------------------------------------

    def _space(self, tool: ToolIdentity) -> Space:
        if self._state == "closed":
            raise RuntimeUnavailableError("the local runtime is closed: start a new one")
        home = self.root / tool.tool
        if Path(tool.home) != home:
            raise ConfigurationError(
                f"tool {tool.tool!r} has the home {tool.home}, but this local runtime runs its "
                f"jobs in {home}: build identities with home_template "
                f"{str(self.root) + '/{tool}'!r} (LocalRuntime.identity_settings())")
        return self._store.space(namespace=tool.namespace, tool=tool.tool, home=home)

    @staticmethod
    def _checked(tool: ToolIdentity, manifest: Manifest) -> tuple[str, str]:
        kind, name = key_of(manifest)
        if kind not in _KINDS:
            raise InvalidInputError(f"a {kind} cannot be created: the local runtime makes "
                                    f"only {', '.join(_KINDS)} objects")
        namespace = (manifest.get("metadata") or {}).get("namespace")
        if namespace not in (None, tool.namespace):
            raise InvalidInputError(f"the object's namespace {namespace!r} does not match "
                                    f"the tool's namespace {tool.namespace!r}")
        return kind, name

    def _delete(self, tool: ToolIdentity, *, job: str | None) -> bool:
        with self._store.lock:
            space = self._space(tool)
            keys = [key for key, obj in space.objects.items()
                    if key[0] != "Event" and managed(obj, job=job)]
            self._controllers.delete(space, keys)
            self._changed()
            return any(is_job_object(kind) for kind, _ in keys)

    def _ensure_home(self, space: Space) -> None:
        try:
            self._kubelet.ensure_home(space)
        except OSError as error:
            raise ConfigurationError(f"the home of tool {space.tool!r}, {space.home}, cannot "
                                     f"be made: {error.strerror}") from None

    def _changed(self) -> None:
        self._store.commit()
        self._supervisor.wake()
