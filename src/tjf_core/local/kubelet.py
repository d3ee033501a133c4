"""The local kubelet: runs each pod's container as a process and reports it as a kubelet would.

A pod's status is written the way a kubelet writes ``pods/status`` (phase, conditions,
``containerStatuses`` with ``state``, ``lastState`` and ``restartCount``), so status, readback
and the emailer read local pods exactly as they read the cluster's. Every status change is
handed to ``notify`` (the runtime's subscribers).

Containers follow their pod's ``restartPolicy``: ``Never`` (a Job's pod) ends the pod
Succeeded or Failed; ``Always`` (a Deployment's) restarts the container in the same pod after
a back-off that doubles with each consecutive failure (waiting in ``CrashLoopBackOff``, the
last termination kept in ``lastState``). Stopping sends SIGTERM to the whole process group and
SIGKILL after the grace period; when the shell exits, what is left of its group is killed,
as the end of a container kills everything in it.

Only the supervisor thread starts and reaps processes; other threads (API calls, the health
checker) only signal them. All methods expect the store's lock to be held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from tjf_core.errors import ForbiddenError, InvalidQuantityError
from tjf_core.local.events import record_event
from tjf_core.local.processes import (
    Process,
    User,
    open_append,
    open_in_home_for_append,
    signal_group,
    spawn,
)
from tjf_core.local.settings import LocalSettings
from tjf_core.local.store import LocalStore, Space
from tjf_core.objectstore import NAME, labels_of, stamp
from tjf_core.quantity import Quantity
from tjf_core.readback import split_log_redirects
from tjf_core.render import SHELL
from tjf_core.runtime import Manifest

__all__ = ["Container", "Kubelet", "pod_container"]

log = logging.getLogger(__name__)

#: Seconds past the last grace period that shutdown waits for SIGKILLed processes to exit.
SHUTDOWN_MARGIN = 10.0
#: Why the runtime stopped a container; the pod goes away after these.
REMOVING = frozenset({"Deleted", "Rollout", "ScaledDown"})


@attrs.define(eq=False)
class Container:
    """The one container of a pod the local kubelet runs."""

    space: Space
    pod: str
    job: str
    always: bool
    process: Process | None = None
    restarts: int = 0
    #: Consecutive failures, for the back-off (reset after a long enough run).
    crashes: int = 0
    restart_at: float | None = None
    #: When the current process started (wall clock seconds) and as the API writes it.
    started: float = 0.0
    started_text: str = ""
    #: Why the runtime is stopping the process (None: it is not), and when it gets SIGKILL.
    stopping: str | None = None
    kill_at: float | None = None
    last_state: Manifest = attrs.Factory(dict)
    ready: bool = False
    run: int | None = None
    #: The health checker's state for the current process (tjf_core.local.health).
    probe: Any = None


def pod_container(pod: Manifest) -> dict[str, Any]:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first = containers[0]
    return first if isinstance(first, dict) else {}


def _conditions(ready: bool) -> list[Manifest]:
    flag = str(ready)
    return [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag}, {"type": "Ready", "status": flag}]


class Kubelet:
    """Runs the containers of every local pod."""

    def __init__(self, *, store: LocalStore, settings: LocalSettings, logs: Path,
                 notify: Callable[[Manifest], None]) -> None:
        self.store = store
        self.settings = settings
        self.logs = logs
        self.notify = notify
        self.containers: dict[tuple[str, str], Container] = {}
        #: When terminal pods ended (wall clock seconds, finer than their timestamps).
        self.finished_at: dict[tuple[str, str], float] = {}
        #: Called with each container that (re)started; the health checker resets its probes.
        self.on_start: Callable[[Container], None] = lambda container: None
        #: Processes shutdown gave up on (they outlived SIGKILL), kept to be reaped if they end.
        self.abandoned: list[Process] = []

    def now(self) -> datetime:
        return self.store.clock()

    def log_path(self, space: Space, pod: str) -> Path:
        return self.logs / space.namespace / f"{pod}.log"

    # --- starting --------------------------------------------------------------------------

    def start_pod(self, space: Space, pod: Manifest) -> None:
        """Run a new pod's container now."""
        name = pod["metadata"]["name"]
        always = (pod.get("spec") or {}).get("restartPolicy") == "Always"
        container = Container(space=space, pod=name, job=labels_of(pod).get(NAME, ""),
                              always=always)
        self.containers[space.namespace, name] = container
        self._run(container)

    def _run(self, container: Container) -> None:
        space = container.space
        pod = space.objects.get(("Pod", container.pod))
        if pod is None:
            return
        now = self.now()
        container.restart_at, container.stopping, container.kill_at = None, None, None
        try:
            container.process = self._spawn(space, pod)
        except (OSError, ForbiddenError, ValueError) as error:
            message = getattr(error, "message", None) or str(error)
            # It never ran: it counts as a failure at once, with no start time of its own.
            container.started, container.started_text = now.timestamp(), ""
            record_event(self.store, space, kind="Pod", name=container.pod, reason="Failed",
                         message=f"Error: {message}", now=now)
            self._ended(container, code=128, reason="StartError", message=message, now=now)
            return
        process = container.process
        container.started, container.started_text = now.timestamp(), stamp(now)
        self.store.record_process(space, container.pod, pid=process.pid, ticks=process.ticks)
        container.run = self.store.start_run(space, job=container.job, pod=container.pod,
                                             restart=container.restarts, pid=process.pid,
                                             started=now)
        self.on_start(container)
        self.write_running(container)

    def _spawn(self, space: Space, pod: Manifest) -> Process:
        spec = pod_container(pod)
        argv = [*(spec.get("command") or []), *(spec.get("args") or [])]
        if not argv or not all(isinstance(arg, str) for arg in argv):
            raise ValueError("the container has no command: locally there is no image to "
                             "take one from")
        home = space.home
        user = self.user(space)
        self.ensure_home(space, user=user)  # removed since the job was created
        redirects = None
        if len(argv) == len(SHELL) + 1 and tuple(argv[:-1]) == SHELL:
            redirects = split_log_redirects(argv[-1])
        fds: list[int] = []
        try:
            if redirects is not None:
                out, err, command = redirects
                argv = [*SHELL, command]
                for path in (out, err):
                    fds.append(open_in_home_for_append(home, path))
                    if user is not None:
                        user.own(fds[-1], path)
            else:
                fds.append(open_append(self.log_path(space, pod["metadata"]["name"])))
                fds.append(fds[0])
            return spawn(argv, cwd=home, env=self.environment(space, pod),
                         stdout=fds[0], stderr=fds[1], memory_bytes=self._memory(spec),
                         user=user)
        finally:
            for fd in set(fds):
                os.close(fd)

    def ensure_home(self, space: Space, *, user: User | None = None) -> None:
        """Make the tool's home if it is missing: ``home_mode``, owned by ``run_as``'s user.

        The one place homes are made (a job's creation and a process's start). OSError when
        the home cannot be made; ForbiddenError when ``run_as`` names no user.
        """
        home = space.home
        if home.is_dir():
            return
        if user is None:
            user = self.user(space)
        home.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        home.mkdir(mode=self.settings.home_mode, exist_ok=True)
        os.chmod(home, self.settings.home_mode)  # mkdir's mode is masked by the umask
        if user is not None and user.other:
            os.chown(home, user.uid, user.gid)  # a home its tool can write to

    def user(self, space: Space) -> User | None:
        """Who the tool's jobs run as (None: the runtime's own user)."""
        if self.settings.run_as is None:
            return None
        return User.named(self.settings.run_as.replace("{tool}", space.tool))

    def environment(self, space: Space, pod: Manifest) -> dict[str, str]:
        """The variables a pod's container runs with (as its image and spec would set)."""
        spec = pod_container(pod)
        env = {"PATH": self.settings.path, "HOME": str(space.home),
               "HOSTNAME": pod["metadata"]["name"], "LANG": "C.UTF-8", "TOOL_NAME": space.tool,
               "TOOL_DATA_DIR": str(space.home), **self.settings.environment}
        if self.settings.run_as is not None:
            env["USER"] = env["LOGNAME"] = self.settings.run_as.replace("{tool}", space.tool)
        for item in spec.get("env") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                env[item["name"]] = str(item.get("value", ""))
        return env

    def _memory(self, spec: Manifest) -> int | None:
        if not self.settings.enforce_memory:
            return None
        text = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        try:
            return int(Quantity.parse(str(text)).value) if text is not None else None
        except InvalidQuantityError:
            return None

    # --- stopping and ending -----------------------------------------------------------------

    def stop(self, container: Container, reason: str) -> None:
        """Stop the container's process group: SIGTERM now, SIGKILL after the grace period."""
        if container.process is None:
            # Waiting to restart: nothing runs, so it ends now.
            container.stopping = reason
            self._ended(container, code=None, reason=reason, message=None, now=self.now())
            return
        if container.stopping is not None:
            container.stopping = reason if reason in REMOVING else container.stopping
            return
        pod = container.space.objects.get(("Pod", container.pod)) or {}
        grace = self.settings.grace_for((pod.get("spec") or {}).get(
            "terminationGracePeriodSeconds"))
        container.stopping = reason
        container.kill_at = self.now().timestamp() + grace
        signal_group(container.process.pid, signal.SIGTERM)

    def reap_exited(self) -> None:
        """Handle every container whose process has exited."""
        for container in list(self.containers.values()):
            process = container.process
            if process is not None and process.exited():
                code = process.reap()
                container.process = None
                self.store.forget_process(container.space, container.pod)
                reason = container.stopping or ("Completed" if code == 0 else "Error")
                self._ended(container, code=code, reason=reason, message=None, now=self.now())

    def timers(self, now: float) -> float | None:
        """SIGKILL whoever outlived its grace, restart whoever waited out its back-off."""
        due: list[float] = []
        for container in list(self.containers.values()):
            if container.kill_at is not None and container.process is not None:
                if now >= container.kill_at:
                    signal_group(container.process.pid, signal.SIGKILL)
                    container.kill_at = None
                else:
                    due.append(container.kill_at)
            if container.restart_at is not None and container.process is None:
                if now >= container.restart_at:
                    container.restarts += 1
                    self._run(container)
                else:
                    due.append(container.restart_at)
        return min(due, default=None)

    def _ended(self, container: Container, *, code: int | None, reason: str,
               message: str | None, now: datetime) -> None:
        space, key = container.space, (container.space.namespace, container.pod)
        if container.run is not None:
            self.store.end_run(container.run, finished=now, exit_code=code, reason=reason)
            self.store.prune_runs(space, container.job, keep=self.settings.run_history)
            container.run = None
        container.ready = False
        if container.stopping in REMOVING or (container.always and reason == "Terminated"):
            self.remove_pod(space, container.pod)
            return
        terminated: Manifest = {"exitCode": 137 if code is None else code,
                                "reason": "Completed" if code == 0 else "Error"}
        if reason == "StartError":  # as containerd says it: the command never ran
            terminated["reason"] = reason
        if message:
            terminated["message"] = message
        if container.started_text:
            terminated["startedAt"] = container.started_text
        terminated["finishedAt"] = stamp(now)
        if container.always:
            ran = now.timestamp() - container.started
            container.crashes = 1 if ran >= self.settings.backoff_reset else container.crashes + 1
            delay = min(self.settings.restart_backoff * 2 ** (container.crashes - 1),
                        self.settings.restart_backoff_max)
            container.restart_at = now.timestamp() + delay
            container.last_state = {"terminated": terminated}
            container.stopping = None
            waiting = {"reason": "CrashLoopBackOff",
                       "message": f"back-off {delay:g}s restarting failed container"}
            self._write(container, phase="Running", state={"waiting": waiting})
            return
        del self.containers[key]
        self.finished_at[key] = now.timestamp()
        failed = code != 0 or container.stopping is not None
        pod_reason = {"DeadlineExceeded": ("DeadlineExceeded", "Pod was active on the node "
                                           "longer than the specified deadline"),
                      "Terminated": ("Terminated", "the local runtime stopped")}.get(reason)
        self._write(container, phase="Failed" if failed else "Succeeded",
                    state={"terminated": terminated}, pod_reason=pod_reason)

    def shutdown(self) -> None:
        """Stop every container and wait for them (SIGKILL after the grace period).

        A Job's pod ends Failed (``Terminated``), a Deployment's pod goes: the next runtime
        makes a new one.
        """
        for container in list(self.containers.values()):
            if container.process is None:
                self._ended(container, code=None, reason="Terminated", message=None,
                            now=self.now())
            else:
                self.stop(container, "Terminated")
        # SIGKILL cannot be ignored, but a process in uninterruptible sleep (a dead NFS
        # mount) outlives it: give up after the longest grace and a margin, not hang holding
        # the store's lock.
        graces = [c.kill_at for c in self.containers.values() if c.kill_at is not None]
        deadline = time.monotonic() + max(
            (at - self.now().timestamp() for at in graces), default=0.0) + SHUTDOWN_MARGIN
        while any(c.process is not None for c in self.containers.values()):
            self.reap_exited()
            now = self.now().timestamp()
            for container in self.containers.values():
                if container.process is not None and container.kill_at is not None and (
                        now >= container.kill_at):
                    signal_group(container.process.pid, signal.SIGKILL)
                    container.kill_at = None
            if time.monotonic() >= deadline:
                stuck = [c for c in self.containers.values() if c.process is not None]
                log.error("giving up on %d process(es) that outlived SIGKILL: %s", len(stuck),
                          ", ".join(f"pid {c.process.pid} ({c.space.namespace}/{c.pod})"
                                    for c in stuck if c.process is not None))
                for container in stuck:  # left to the next runtime's recovery
                    if container.process is not None:
                        self.abandoned.append(container.process)
                    container.process = None
                break
            time.sleep(0.01)
        for container in list(self.containers.values()):  # stopped, then set to restart
            self._ended(container, code=None, reason="Terminated", message=None,
                        now=self.now())

    def end_pod(self, space: Space, pod: Manifest, *, reason: str) -> None:
        """End a pod that has no process (its runtime stopped): Failed, or gone if continuous."""
        name = pod["metadata"]["name"]
        container = self.containers.get((space.namespace, name)) or Container(
            space=space, pod=name, job=labels_of(pod).get(NAME, ""),
            always=(pod.get("spec") or {}).get("restartPolicy") == "Always")
        self.containers[space.namespace, name] = container
        self._ended(container, code=None, reason=reason, message=None, now=self.now())

    def remove_pod(self, space: Space, name: str) -> None:
        """The pod is gone: its object, its log and its container."""
        key = (space.namespace, name)
        container = self.containers.pop(key, None)
        if container is not None and container.process is not None:
            signal_group(container.process.pid, signal.SIGKILL)
            container.process.reap()
            self.store.forget_process(space, name)
        self.finished_at.pop(key, None)
        self.store.remove(space, "Pod", name)
        with contextlib.suppress(OSError):
            self.log_path(space, name).unlink()

    # --- reporting -----------------------------------------------------------------------------

    def write_running(self, container: Container) -> None:
        state = {"running": {"startedAt": container.started_text}}
        self._write(container, phase="Running", state=state)

    def _write(self, container: Container, *, phase: str, state: Manifest,
               pod_reason: tuple[str, str] | None = None) -> None:
        space = container.space
        pod = space.objects.get(("Pod", container.pod))
        if pod is None:
            return
        old = pod.get("status") or {}
        spec = pod_container(pod)
        process = container.process
        entry: Manifest = {"name": spec.get("name", "job"), "image": spec.get("image", ""),
                           "imageID": "", "ready": container.ready,
                           "started": "running" in state, "restartCount": container.restarts,
                           "state": state, "lastState": container.last_state}
        if process is not None:
            entry["containerID"] = f"local://{process.pid}"
        status: Manifest = {"phase": phase, "conditions": _conditions(container.ready),
                            "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                            "startTime": old.get("startTime") or container.started_text
                            or stamp(self.now()),
                            "qosClass": "Burstable", "containerStatuses": [entry]}
        if pod_reason is not None:
            status["reason"], status["message"] = pod_reason
        if status != old:
            pod["status"] = status
            self.store.touch(space, pod)
            self.notify(pod)  # the live object: copied only if anyone listens

    def pidfds(self) -> list[int]:
        return [c.process.pidfd for c in self.containers.values()
                if c.process is not None and c.process.pidfd is not None]
