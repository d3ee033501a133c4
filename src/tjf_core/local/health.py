"""Health checks of continuous jobs: the Deployment's probes, run against local processes.

The probes are the ones the renderer writes into the pod template: a ``startupProbe`` (every
second, up to 120 failures) and then a ``livenessProbe`` (every 10 s, 3 failures), each one of
``exec`` (a script run with ``/bin/sh -c`` in the tool's home, healthy when it exits 0),
``httpGet`` (``http://127.0.0.1:PORT/path`` answers 200-399) or ``tcpSocket`` (127.0.0.1:PORT
accepts a connection). As on a kubelet, the container is not ready until its startup probe
passed, and a probe that fails ``failureThreshold`` times in a row restarts the container
(with the usual back-off); both are recorded as ``Unhealthy`` events on the pod.

Probes run in their own thread, one at a time, outside the store's lock: a slow health check
never delays the supervisor. Periods are multiplied by ``LocalSettings.probe_period_scale``.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import attrs

from tjf_core.errors import ForbiddenError
from tjf_core.local.events import record_event
from tjf_core.local.kubelet import Container, Kubelet, pod_container
from tjf_core.local.processes import User, signal_group
from tjf_core.local.store import LocalStore
from tjf_core.runtime import Manifest

__all__ = ["HealthChecker", "ProbeState", "run_probe"]

#: Seconds to wait for a killed health check to exit and let go of its output pipe.
ABANDON_WAIT = 1.0


@attrs.define(eq=False)
class ProbeState:
    """Where one container's health checks are: starting, or live and checked."""

    startup: Manifest | None
    liveness: Manifest | None
    started: bool = False
    failures: int = 0
    next_at: float = 0.0

    def current(self) -> tuple[str, Manifest] | None:
        if not self.started and self.startup is not None:
            return "Startup", self.startup
        if self.liveness is not None:
            return "Liveness", self.liveness
        return None


def _number(probe: Manifest, key: str, default: float) -> float:
    value = probe.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else (
        default)


def run_probe(probe: Manifest, *, home: str, env: dict[str, str],
              user: User | None = None) -> str | None:
    """Run one probe (an exec one as ``user``); None when healthy, else what failed."""
    timeout = max(_number(probe, "timeoutSeconds", 1.0), 0.1)
    if "exec" in probe:
        return _exec((probe["exec"] or {}).get("command") or [], home=home, env=env,
                     timeout=timeout, user=user)
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        return _http(get.get("port"), str(get.get("path") or "/"), timeout=timeout)
    if "tcpSocket" in probe:
        port = (probe["tcpSocket"] or {}).get("port")
        try:
            with socket.create_connection(("127.0.0.1", int(str(port))), timeout=timeout):
                return None
        except (OSError, TypeError, ValueError) as error:
            return f"dial tcp 127.0.0.1:{port}: {error}"
    return "the probe has no exec, httpGet or tcpSocket action"


def _exec(command: list[Any], *, home: str, env: dict[str, str], timeout: float,
          user: User | None) -> str | None:
    switch = user if user is not None and user.other else None
    try:
        process = subprocess.Popen(
            [str(part) for part in command], cwd=home, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            user=None if switch is None else switch.uid,
            group=None if switch is None else switch.gid,
            extra_groups=None if switch is None else list(switch.groups))
    except OSError as error:
        return f"cannot run the health check: {error}"
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _abandon(process)
        return f"command timed out after {timeout:g}s"
    signal_group(process.pid, signal.SIGKILL)  # nothing it started outlives the check
    if process.returncode == 0:
        return None
    tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
    return f"command exited with code {process.returncode}" + (f": {tail[0]}" if tail else "")


def _abandon(process: subprocess.Popen[bytes]) -> None:
    """Kill a timed-out check's process group and reap it, never waiting for its pipe.

    A grandchild that left the group (``setsid``) may hold the stderr pipe open for ever, so
    the pipe is closed rather than read to its end.
    """
    signal_group(process.pid, signal.SIGKILL)
    try:
        process.communicate(timeout=ABANDON_WAIT)
    except subprocess.TimeoutExpired:
        if process.stderr is not None:
            process.stderr.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=ABANDON_WAIT)  # SIGKILLed: it exits at once


def _http(port: object, path: str, *, timeout: float) -> str | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", int(str(port)), timeout=timeout)
    except ValueError:
        return f"port {port!r} is not a number"
    try:
        connection.request("GET", path if path.startswith("/") else f"/{path}")
        code = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"Get http://127.0.0.1:{port}{path}: {error}"
    finally:
        connection.close()
    return None if 200 <= code < 400 else f"HTTP probe failed with statuscode: {code}"


class HealthChecker:
    """The thread that runs every container's probes when they are due."""

    def __init__(self, *, store: LocalStore, kubelet: Kubelet, scale: float, tick: float,
                 wake: Callable[[], None]) -> None:
        self.store = store
        self.wake = wake
        self.kubelet = kubelet
        self.scale = scale
        self.tick = tick
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        kubelet.on_start = self.reset

    def reset(self, container: Container) -> None:
        """A container (re)started: its probes start over (called under the lock)."""
        pod = container.space.objects.get(("Pod", container.pod)) or {}
        spec = pod_container(pod)
        startup, liveness = spec.get("startupProbe"), spec.get("livenessProbe")
        container.probe = ProbeState(startup=startup, liveness=liveness,
                                     started=startup is None)
        container.ready = container.probe.started
        if startup is not None or liveness is not None:
            container.probe.next_at = self.store.clock().timestamp() + self.scale * _number(
                startup or liveness or {}, "initialDelaySeconds", 0.0)
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tjf-local-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            due, wait = self._due()
            for container, process, kind, probe, env in due:
                try:
                    user = self.kubelet.user(container.space)
                except ForbiddenError as error:
                    failure: str | None = error.message
                else:
                    failure = run_probe(probe, home=str(container.space.home), env=env,
                                        user=user)
                self._record(container, process, kind, probe, failure)
            if not due:
                self._wake.wait(wait)
                self._wake.clear()

    def _due(self) -> tuple[list[tuple[Container, object, str, Manifest, dict[str, str]]], float]:
        found: list[tuple[Container, object, str, Manifest, dict[str, str]]] = []
        with self.store.lock:
            now = self.store.clock().timestamp()
            soonest = now + self.tick
            for container in list(self.kubelet.containers.values()):
                state = container.probe
                if container.process is None or container.stopping or not isinstance(
                        state, ProbeState) or state.current() is None:
                    continue
                if state.next_at <= now:
                    kind, probe = state.current() or ("", {})
                    pod = container.space.objects.get(("Pod", container.pod)) or {
                        "metadata": {"name": container.pod}}
                    env = self.kubelet.environment(container.space, pod)
                    found.append((container, container.process, kind, probe, env))
                else:
                    soonest = min(soonest, state.next_at)
        return found, max(soonest - now, 0.0)

    def _record(self, container: Container, process: object, kind: str, probe: Manifest,
                failure: str | None) -> None:
        with self.store.lock:
            state = container.probe
            if container.process is not process or not isinstance(state, ProbeState):
                return  # restarted or gone meanwhile: this result is about another process
            now = self.store.clock()
            state.next_at = now.timestamp() + self.scale * _number(probe, "periodSeconds", 10.0)
            if failure is None:
                state.failures = 0
                if kind == "Startup":
                    state.started = True
                    container.ready = True
                    self.kubelet.write_running(container)
                    self.store.commit()
                    self.wake()  # the supervisor tells the subscribers
                return
            state.failures += 1
            space = container.space
            record_event(self.store, space, kind="Pod", name=container.pod, reason="Unhealthy",
                         message=f"{kind} probe failed: {failure}", now=now)
            if state.failures >= _number(probe, "failureThreshold", 3.0):
                record_event(self.store, space, kind="Pod", name=container.pod,
                             reason="Killing", now=now,
                             message=f"Container failed {kind.lower()} probe, will be restarted")
                self.kubelet.stop(container, "Unhealthy")
            self.store.commit()
            self.wake()
