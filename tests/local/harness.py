"""A harness for the local runtime: real processes, driven through control files.

The contract's jobs run ``./<name>.sh`` in the tool's home. Here that script is real: the
harness writes it when the job's object is created (as an image would carry it), and it runs
until the test writes an exit code into ``.control/<pod>`` in the home (the pod's name is the
process's ``HOSTNAME``, as in a container). The driver's ``set_*`` write that file and wait,
with a deadline, until the runtime has recorded what happened, so nothing is faked: the status
the contract checks is what the supervisor saw the process do.

For the contract, the runtime starts supervising when the test first asks the cluster for
something (the driver, or ``eventually``), as the in-memory driver makes pods only when asked:
until then objects are stored but nothing runs, so "a new job is pending" is not a race with a
process that starts in a millisecond.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from tests.core.test_service import limit_range, resource_quota
from tjf_core.identity import ToolIdentity
from tjf_core.local import LocalRuntime, LocalSettings
from tjf_core.readback import split_log_redirects
from tjf_core.runtime import Manifest
from tjf_core.service import JobService
from tjf_core.settings import Settings
from tjf_core.testing import bundled_catalog

__all__ = ["FAST", "JumpClock", "LocalDriver", "LocalHarness", "ScriptedRuntime", "alive",
           "read_pid", "wait_for"]

#: Timings short enough for tests (the defaults are Kubernetes' own).
FAST = LocalSettings(tick=0.2, grace_period=1.0, restart_backoff=0.05, restart_backoff_max=0.2,
                     retry_backoff=1.0, retry_backoff_max=2.0, probe_period_scale=0.1,
                     follow_interval=0.05)
DEADLINE = 20.0

SCRIPT = """#!/bin/sh
# A test job: runs until its exit code is written to .control/$HOSTNAME, then exits with it.
echo "$HOSTNAME started"
while [ ! -s ".control/$HOSTNAME" ]; do sleep 0.05; done
code=$(cat ".control/$HOSTNAME")
echo "$HOSTNAME exits $code"
exit "$code"
"""
_SCRIPT_COMMAND = re.compile(r"\./([A-Za-z0-9_.-]+\.sh)\Z")


def wait_for(what: str, check: Callable[[], bool], *, timeout: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds (never hang)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return text[text.rfind(b")") + 2:].split()[0] != b"Z"


def read_pid(path: Path) -> int:
    wait_for(f"{path.name} to be written", lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text())


class JumpClock:
    """The real time, plus an offset that only grows: lets a test reach a cron time at once."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def before_next_minute(self, seconds: float = 0.3) -> datetime:
        """Jump to ``seconds`` before the next minute starts; returns that minute."""
        with self._lock:
            now = datetime.now(UTC) + self._offset
            boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            if boundary - timedelta(seconds=seconds) <= now:
                boundary += timedelta(minutes=1)
            self._offset += boundary - timedelta(seconds=seconds) - now
            return boundary


class ScriptedRuntime(LocalRuntime):
    """A LocalRuntime that writes each job's ``./<name>.sh`` into the home before creating it."""

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._write_script(tool, manifest)
        return super().create(tool, manifest)

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._write_script(tool, manifest)
        return super().replace(tool, manifest)

    @staticmethod
    def _write_script(tool: ToolIdentity, manifest: Manifest) -> None:
        spec: Manifest = manifest.get("spec") or {}
        job_spec: Manifest = (spec.get("jobTemplate") or {}).get("spec") or spec
        template: Manifest = job_spec.get("template") or {}
        for container in (template.get("spec") or {}).get("containers") or []:
            line = container["command"][-1]
            split = split_log_redirects(line)
            found = _SCRIPT_COMMAND.match(split[2] if split else line)
            if found:
                script = Path(tool.home) / found[1]
                if not script.exists():
                    script.write_text(SCRIPT)
                    script.chmod(0o755)


@attrs.frozen
class LocalDriver:
    """Plays the contract's cluster events by making the real processes do them."""

    runtime: LocalRuntime
    tool: ToolIdentity

    def pod(self, name: str) -> Manifest:
        found = self.runtime.get(self.tool, kind="Pod", name=name)
        assert found is not None, f"pod {name} is gone"
        return found

    def container(self, name: str) -> Manifest:
        statuses = (self.pod(name).get("status") or {}).get("containerStatuses") or [{}]
        first: Manifest = statuses[0]
        return first

    def pods_of(self, job: str) -> list[str]:
        self.runtime.start()
        found: list[Manifest] = []

        def listed() -> bool:
            pods = self.runtime.list_objects(self.tool, job=job).pods
            found[:] = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            return bool(found)

        wait_for(f"a pod of job {job}", listed)
        found.sort(key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
        return [pod["metadata"]["name"] for pod in found]

    def exit_with(self, pod: str, code: int | None) -> None:
        """Make the pod's script exit with ``code`` (None: let it run again)."""
        self.runtime.start()
        control = Path(self.tool.home) / ".control"
        control.mkdir(exist_ok=True)
        if code is None:
            (control / pod).unlink(missing_ok=True)
            return
        partial = control / f".{pod}.tmp"
        partial.write_text(str(code))
        partial.rename(control / pod)  # never seen half written

    def set_running(self, pod: str) -> None:
        self.runtime.start()
        wait_for(f"{pod} running", lambda: "running" in (self.container(pod).get("state") or {}))

    def set_succeeded(self, pod: str) -> None:
        self.exit_with(pod, 0)
        wait_for(f"{pod} succeeded", lambda: self.pod(pod)["status"]["phase"] == "Succeeded")

    def set_failed(self, pod: str, exit_code: int) -> None:
        self.exit_with(pod, exit_code)
        wait_for(f"{pod} failed", lambda: self.pod(pod)["status"]["phase"] == "Failed")

    def set_crash_loop(self, pod: str, restarts: int) -> None:
        self.exit_with(pod, 1)
        wait_for(f"{pod} restarted {restarts} times",
                 lambda: self.container(pod).get("restartCount", 0) >= restarts)
        self.exit_with(pod, None)


@attrs.frozen(kw_only=True)
class LocalHarness:
    runtime: ScriptedRuntime
    service: JobService
    tool: ToolIdentity
    other_tool: ToolIdentity
    driver: LocalDriver

    @classmethod
    def open(cls, tmp_path: Path, *, settings: LocalSettings = FAST,
             clock: Callable[[], datetime] | None = None, started: bool = True,
             ) -> Generator[LocalHarness, None, None]:
        """A harness (its runtime started unless ``started`` is False) closed with the generator.

        Opened again on the same ``tmp_path``, it continues from the state the last one left.
        """
        clock = clock or (lambda: datetime.now(UTC))
        runtime = ScriptedRuntime(root=tmp_path / "homes", state_dir=tmp_path / "state",
                                  catalog=bundled_catalog(), settings=settings, clock=clock)
        try:
            tools = []
            for name in ("alpha", "beta"):
                tool = runtime.tool_identity_for(name)
                Path(tool.home).mkdir(parents=True, exist_ok=True)
                runtime.set_quota(tool, resource_quota=resource_quota(tool),
                                  limit_range=limit_range(tool))
                tools.append(tool)
            if started:
                runtime.start()
            service = JobService(runtime, settings=Settings(identity=runtime.identity_settings()),
                                 clock=clock, follow_interval=0.05)
            yield cls(runtime=runtime, service=service, tool=tools[0], other_tool=tools[1],
                      driver=LocalDriver(runtime, tools[0]))
        finally:
            runtime.close()

    def eventually(self, what: str, check: Callable[[], bool]) -> None:
        self.runtime.start()
        wait_for(what, check)

    @property
    def home(self) -> Path:
        return Path(self.tool.home)
