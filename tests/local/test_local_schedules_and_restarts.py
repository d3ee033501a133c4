"""Scheduled jobs and restarts of the local runtime: cron times, concurrency, nothing lost.

Cron times are reached by moving the runtime's clock forward (:class:`JumpClock`), never by
waiting for a real minute to pass; the processes and the supervisor are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.local.harness import JumpClock, LocalHarness, alive, read_pid, wait_for
from tjf_core.local import LocalRuntime, LocalSettings
from tjf_core.model import JobKind, JobSpec
from tjf_core.runtime import Manifest
from tjf_core.status import StatusShort
from tjf_core.testing import bundled_catalog


@pytest.fixture
def clock() -> JumpClock:
    return JumpClock()


@pytest.fixture
def jh(tmp_path: Path, clock: JumpClock) -> Iterator[LocalHarness]:
    yield from LocalHarness.open(tmp_path, clock=clock)


def scheduled(name: str, schedule: str, **fields: object) -> JobSpec:
    fields.setdefault("command", f"./{name}.sh")
    return JobSpec(name=name, image="bookworm", schedule=schedule, **fields)  # type: ignore[arg-type]


def runs_of(h: LocalHarness, name: str) -> list[Manifest]:
    return list(h.runtime.list_objects(h.tool, job=name).jobs)


def running_pods(h: LocalHarness, name: str) -> list[str]:
    return [pod["metadata"]["name"] for pod in h.runtime.list_objects(h.tool, job=name).pods
            if "running" in pod["status"].get("containerStatuses", [{}])[0].get("state", {})]


# --- scheduling ----------------------------------------------------------------------------------


def test_a_scheduled_job_fires_at_its_time_in_its_time_zone(
    jh: LocalHarness, clock: JumpClock
) -> None:
    h = jh
    boundary = clock.before_next_minute(0.5)
    kolkata = boundary.astimezone(ZoneInfo("Asia/Kolkata"))  # UTC+5:30: no hour in common
    cron = f"{kolkata.minute} {kolkata.hour} * * *"
    h.service.run(h.tool, scheduled("there", cron, timezone="Asia/Kolkata"))
    h.service.run(h.tool, scheduled("utc", cron))  # the same wall time, in UTC: hours away
    [pod] = h.driver.pods_of("there")
    [run] = h.runtime.runs(h.tool, job="there")
    assert run.started_at >= boundary  # never before its time
    [job] = runs_of(h, "there")
    assert job["metadata"]["ownerReferences"][0]["name"] == "there"
    h.driver.set_succeeded(pod)
    status = h.service.get(h.tool, "there").status
    assert status.short is StatusShort.SUCCEEDED
    assert status.previous_schedule == boundary
    assert runs_of(h, "utc") == []


@pytest.mark.parametrize("policy", ["forbid", "allow", "replace"])
def test_the_concurrency_policy_decides_about_a_run_still_active(
    jh: LocalHarness, clock: JumpClock, policy: str
) -> None:
    h = jh
    clock.before_next_minute(0.3)
    h.service.run(h.tool, scheduled("minutely", "* * * * *", concurrency=policy))
    [first] = h.driver.pods_of("minutely")
    h.driver.set_running(first)
    second_minute = clock.before_next_minute(0.3)
    if policy == "allow":
        wait_for("a second run next to the first", lambda: len(running_pods(h, "minutely")) == 2)
        assert len(runs_of(h, "minutely")) == 2
    elif policy == "replace":
        wait_for("the first run replaced", lambda: first not in [
            p["metadata"]["name"] for p in h.runtime.list_objects(h.tool, job="minutely").pods])
        wait_for("the new run", lambda: len(running_pods(h, "minutely")) == 1)
        assert len(runs_of(h, "minutely")) == 1
    else:
        wait_for("the second minute to pass", lambda: clock() > second_minute.replace(second=1))
        assert list(running_pods(h, "minutely")) == [first]  # it waits ...
        h.driver.set_succeeded(first)  # ... and runs once the first is done (within deadline)
        wait_for("the second run", lambda: len(runs_of(h, "minutely")) == 2)


def test_a_manual_run_of_a_scheduled_job_runs_a_process(h: LocalHarness) -> None:
    h.service.run(h.tool, scheduled("nightly", "17 3 * * *", command="echo by hand"))
    h.service.restart(h.tool, "nightly")
    wait_for("the run to finish", lambda: any(
        job["status"].get("succeeded") for job in runs_of(h, "nightly")))
    assert (h.home / "nightly.out").read_text() == "by hand\n"


# --- restarting the runtime ----------------------------------------------------------------------


def test_a_new_runtime_on_the_same_state_loses_nothing(tmp_path: Path, clock: JumpClock) -> None:
    first = LocalHarness.open(tmp_path, clock=clock)
    h = next(first)
    h.service.run(h.tool, JobSpec(name="once", command="echo done", image="bookworm"))
    h.service.run(h.tool, JobSpec(name="bot", command="./bot.sh", image="bookworm",
                                  kind=JobKind.CONTINUOUS))
    h.service.run(h.tool, scheduled("cron", "* * * * *"))
    [bot] = h.driver.pods_of("bot")
    h.driver.set_running(bot)
    wait_for("the one-off job to finish",
             lambda: h.service.get(h.tool, "once").status.short is StatusShort.SUCCEEDED)
    [bot_run] = h.runtime.runs(h.tool, job="bot")
    assert alive(bot_run.pid or 0)
    first.close()
    assert not alive(bot_run.pid or 0)  # close stops every process: no orphan

    second = LocalHarness.open(tmp_path, clock=clock)
    h = next(second)
    try:
        assert [job.spec.name for job in h.service.list(h.tool).jobs] == ["bot", "cron", "once"]
        assert h.service.get(h.tool, "once").status.short is StatusShort.SUCCEEDED
        [new_bot] = h.driver.pods_of("bot")
        h.driver.set_running(new_bot)
        assert new_bot != bot
        assert h.service.get(h.tool, "bot").status.short is StatusShort.RUNNING
        old, new = h.runtime.runs(h.tool, job="bot")
        assert (old.pid, old.reason) == (bot_run.pid, "Terminated")
        assert new.pid != old.pid
        assert new.finished_at is None
        clock.before_next_minute(0.3)
        assert h.driver.pods_of("cron")  # the schedule goes on
    finally:
        second.close()


_CRASHING_RUNTIME = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tjf_core.local import LocalRuntime, LocalSettings
    from tjf_core.model import JobSpec
    from tjf_core.service import JobService
    from tjf_core.settings import Settings
    from tjf_core.testing import bundled_catalog

    runtime = LocalRuntime(root=Path(sys.argv[1]), state_dir=Path(sys.argv[2]),
                           catalog=bundled_catalog(), settings=LocalSettings(tick=0.2))
    runtime.start()
    service = JobService(runtime, settings=Settings(identity=runtime.identity_settings()))
    command = "echo $$ >> shells; sleep 300 & echo $! >> sleepers; wait"
    service.run(runtime.tool_identity_for("alpha"),
                JobSpec(name="bot", command=command, image="bookworm", kind="continuous"))
    time.sleep(300)
""")


def test_a_runtime_that_died_leaves_no_orphan_and_no_duplicate(tmp_path: Path) -> None:
    root, state = tmp_path / "homes", tmp_path / "state"
    home = root / "alpha"
    home.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", _CRASHING_RUNTIME, str(root), str(state)])
    try:
        shell, sleeper = read_pid(home / "shells"), read_pid(home / "sleepers")
        assert alive(shell)
        assert alive(sleeper)
    finally:
        dead.send_signal(signal.SIGKILL)  # no close(): its processes are left running
        dead.wait()
    assert alive(shell)
    assert alive(sleeper)
    settings = LocalSettings(tick=0.2, grace_period=1.0)
    with LocalRuntime(root=root, state_dir=state, catalog=bundled_catalog(),
                      settings=settings) as runtime:
        assert not alive(shell)
        assert not alive(sleeper)
        tool = runtime.tool_identity_for("alpha")
        wait_for("the job to come back", lambda: len((home / "shells").read_text().split()) == 2)
        [pod] = runtime.list_objects(tool).pods
        assert pod["status"]["phase"] == "Running"
        new_shell = int((home / "shells").read_text().split()[1])
        assert new_shell != shell
        assert alive(new_shell)
        assert [run.reason for run in runtime.runs(tool, job="bot")] == ["Terminated", None]
    assert not alive(new_shell)
    assert os.path.exists(state / "state.sqlite3")
