"""What the local runtime does with real processes: stop, time out, retry, crash, log, limit.

Every case runs real ``/bin/sh`` processes in a temporary tool home; waits are polls with
generous deadlines, never sleeps that assume how fast the machine is.
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import attrs
import pytest

from tests.local.harness import FAST, LocalHarness, alive, read_pid, wait_for
from tjf_core.errors import ConfigurationError
from tjf_core.identity import ToolIdentity
from tjf_core.local import LocalRuntime
from tjf_core.model import HealthCheck, JobKind, JobSpec
from tjf_core.notifications import ContainerState, events_from_pod
from tjf_core.runtime import Manifest
from tjf_core.status import StatusShort
from tjf_core.testing import bundled_catalog


def one_off(name: str, command: str, **fields: object) -> JobSpec:
    return JobSpec(name=name, command=command, image="bookworm", **fields)  # type: ignore[arg-type]


def continuous(name: str, command: str, **fields: object) -> JobSpec:
    return one_off(name, command, kind=JobKind.CONTINUOUS, **fields)


def status_of(h: LocalHarness, name: str) -> StatusShort:
    return h.service.get(h.tool, name).status.short


def finished(h: LocalHarness, name: str) -> bool:
    return status_of(h, name) in (StatusShort.SUCCEEDED, StatusShort.FAILED)


@pytest.fixture
def quick_retries(tmp_path: Path) -> Iterator[LocalHarness]:
    yield from LocalHarness.open(tmp_path, settings=attrs.evolve(FAST, retry_backoff=0.2))


# --- stopping ------------------------------------------------------------------------------------


def test_deleting_a_job_kills_its_whole_process_tree(h: LocalHarness) -> None:
    command = "sleep 300 & echo $! > child.pid; echo $$ > parent.pid; wait"
    h.service.run(h.tool, one_off("tree", command))
    parent, child = read_pid(h.home / "parent.pid"), read_pid(h.home / "child.pid")
    assert alive(parent)
    assert alive(child)
    h.service.delete(h.tool, "tree")
    wait_for("the shell and its child to be gone", lambda: not alive(parent) and not alive(child))
    wait_for("the pod to be gone", lambda: not h.runtime.list_objects(h.tool).pods)


def test_a_timeout_fails_the_job_and_kills_even_what_ignores_sigterm(h: LocalHarness) -> None:
    command = "trap '' TERM; sleep 300 & echo $! > child.pid; echo $$ > parent.pid; wait"
    h.service.run(h.tool, one_off("slow", command, timeout=1))
    parent, child = read_pid(h.home / "parent.pid"), read_pid(h.home / "child.pid")
    wait_for("the job to fail", lambda: finished(h, "slow"))
    status = h.service.get(h.tool, "slow").status
    assert status.short is StatusShort.FAILED
    assert any("DeadlineExceeded" in message for message in status.messages)
    wait_for("SIGKILL after the grace period", lambda: not alive(parent) and not alive(child))
    [pod] = h.runtime.list_objects(h.tool, job="slow").pods
    wait_for("the pod to be failed", lambda: h.driver.pod(pod["metadata"]["name"])["status"]
             .get("reason") == "DeadlineExceeded")


# --- retries and restarts ------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_and_can_then_succeed(quick_retries: LocalHarness) -> None:
    h = quick_retries
    h.service.run(h.tool, one_off("flaky", "test -e tried || { touch tried; exit 2; }", retry=1))
    wait_for("the job to finish", lambda: finished(h, "flaky"))
    assert status_of(h, "flaky") is StatusShort.SUCCEEDED
    runs = h.runtime.runs(h.tool, job="flaky")
    assert [(run.exit_code, run.reason) for run in runs] == [(2, "Error"), (0, "Completed")]
    assert len({run.pod for run in runs}) == 2  # a new pod per attempt, as the Job controller
    job = h.runtime.get(h.tool, kind="Job", name="flaky")
    assert job is not None
    assert (job["status"]["failed"], job["status"]["succeeded"]) == (1, 1)


def test_retries_stop_at_the_backoff_limit(quick_retries: LocalHarness) -> None:
    h = quick_retries
    h.service.run(h.tool, one_off("doomed", "exit 2", retry=2))
    wait_for("the job to fail", lambda: finished(h, "doomed"))
    status = h.service.get(h.tool, "doomed").status
    assert status.short is StatusShort.FAILED
    assert any("BackoffLimitExceeded" in message for message in status.messages)
    assert [run.exit_code for run in h.runtime.runs(h.tool, job="doomed")] == [2, 2, 2]


def test_a_crashing_continuous_job_backs_off_in_a_crash_loop(h: LocalHarness) -> None:
    h.service.run(h.tool, continuous("crashy", "echo crashing; exit 1", filelog=False))
    [pod] = h.driver.pods_of("crashy")

    def backed_off_to_the_cap() -> bool:
        container = h.driver.container(pod)
        waiting = (container.get("state") or {}).get("waiting") or {}
        return container["restartCount"] >= 4 and "back-off 0.2s" in waiting.get("message", "")

    wait_for("the back-off to double up to its cap", backed_off_to_the_cap)
    container = h.driver.container(pod)
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["lastState"]["terminated"]["exitCode"] == 1
    status = h.service.get(h.tool, "crashy").status
    assert (status.short, status.status_short) == (
        StatusShort.FAILED, "Specified command fails to run")
    restarts = [run.restart for run in h.runtime.runs(h.tool, job="crashy")]
    assert restarts == list(range(len(restarts)))  # one pod, restarted in place
    assert list(h.service.logs(h.tool, "crashy", lines=2)) == ["crashing", "crashing"]


# --- logs ----------------------------------------------------------------------------------------


def test_filelog_appends_to_the_files_in_the_home(h: LocalHarness) -> None:
    (h.home / "logs").mkdir()
    spec = one_off("talk", "echo out; echo err >&2", filelog_stdout="logs/talk.txt",
                   filelog_stderr="logs/talk.txt")
    for _ in range(2):
        h.service.run(h.tool, spec)
        wait_for("the job to finish", lambda: finished(h, "talk"))
    assert (h.home / "logs" / "talk.txt").read_text().split() == ["out", "err"] * 2
    assert list(h.service.logs(h.tool, "talk", lines=2)) == ["out", "err"]


def test_a_log_file_outside_the_home_is_refused(h: LocalHarness, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    (h.home / "sneaky.out").symlink_to(outside)
    h.service.run(h.tool, one_off("sneaky", "echo secret"))
    wait_for("the job to fail", lambda: finished(h, "sneaky"))
    job = h.service.get(h.tool, "sneaky")
    assert job.status.short is StatusShort.FAILED
    assert "StartError" in job.status.status_long
    [pod] = h.runtime.list_objects(h.tool, job="sneaky").pods
    ended = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert "outside the tool's home" in ended["message"]
    assert not outside.exists()


def test_pod_logs_without_filelog_tail_and_follow(h: LocalHarness) -> None:
    command = "for i in 1 2 3 4; do echo line$i; sleep 0.1; done; echo oops >&2"
    h.service.run(h.tool, one_off("chatty", command, filelog=False))
    h.driver.pods_of("chatty")  # (right after run, on a cluster too, there is no pod to follow)
    followed = list(h.service.logs(h.tool, "chatty", follow=True))
    assert followed == ["line1", "line2", "line3", "line4", "oops"]
    assert status_of(h, "chatty") is StatusShort.SUCCEEDED
    assert list(h.service.logs(h.tool, "chatty", lines=2)) == ["line4", "oops"]
    assert not list(h.home.glob("chatty.*"))


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("memory", "short"), [("256Mi", StatusShort.FAILED),
                                               ("1Gi", StatusShort.SUCCEEDED)])
def test_the_memory_limit_is_enforced(h: LocalHarness, memory: str, short: StatusShort) -> None:
    command = f"{sys.executable} -c 'bytearray(400 * 1024 * 1024)'"
    h.service.run(h.tool, one_off("hungry", command, memory=memory))
    wait_for("the job to finish", lambda: finished(h, "hungry"))
    assert status_of(h, "hungry") is short
    if short is StatusShort.FAILED:
        assert "MemoryError" in (h.home / "hungry.err").read_text()


def test_pods_beyond_the_quota_wait_for_room(h: LocalHarness) -> None:
    quota, limits = h.runtime.quota(h.tool)
    assert quota is not None
    quota["spec"]["hard"]["pods"] = "1"
    h.runtime.set_quota(h.tool, resource_quota=quota, limit_range=limits)
    h.service.run(h.tool, one_off("first", "./first.sh"))
    [pod] = h.driver.pods_of("first")
    h.service.run(h.tool, one_off("second", "echo second"))
    wait_for("the quota refusal", lambda: h.service.get(h.tool, "second").status.status_short
             == "Unable to start, out of quota for pods")
    h.driver.set_succeeded(pod)
    wait_for("the second job to run once there is room", lambda: finished(h, "second"))
    assert status_of(h, "second") is StatusShort.SUCCEEDED


# --- health checks -------------------------------------------------------------------------------


@pytest.fixture
def fast_probes(tmp_path: Path) -> Iterator[LocalHarness]:
    yield from LocalHarness.open(tmp_path, settings=attrs.evolve(FAST, probe_period_scale=0.01))


def test_a_failing_health_check_restarts_the_container(fast_probes: LocalHarness) -> None:
    h = fast_probes
    check = HealthCheck(type="script", script="test -e healthy")
    h.service.run(h.tool, continuous("careful", "./careful.sh", health_check=check))
    [pod] = h.driver.pods_of("careful")
    assert not h.driver.container(pod)["ready"]
    assert "0 of 1 replicas are available" in h.service.get(h.tool, "careful").status.messages
    wait_for("a restart for failing its startup probe",
             lambda: h.driver.container(pod)["restartCount"] >= 1)
    (h.home / "healthy").touch()
    wait_for("the container to be ready", lambda: h.driver.container(pod)["ready"])
    deployment = h.runtime.get(h.tool, kind="Deployment", name="careful")
    assert deployment is not None
    assert deployment["status"]["availableReplicas"] == 1
    restarts = h.driver.container(pod)["restartCount"]
    (h.home / "healthy").unlink()  # now the liveness probe fails
    wait_for("a restart for failing its liveness probe",
             lambda: h.driver.container(pod)["restartCount"] > restarts)
    reasons = {run.reason for run in h.runtime.runs(h.tool, job="careful")}
    assert "Unhealthy" in reasons
    events = h.runtime.list_objects(h.tool).events
    assert {e["reason"] for e in events if e["involvedObject"]["name"] == pod} >= {
        "Unhealthy", "Killing"}


def test_an_http_health_check_sees_a_real_server(fast_probes: LocalHarness) -> None:
    h = fast_probes
    server = f"exec {sys.executable} -m http.server --bind 127.0.0.1 $PORT"
    h.service.run(h.tool, continuous("web", server, port=_free_port(),
                                     health_check=HealthCheck(type="http", path="/")))
    [pod] = h.driver.pods_of("web")
    wait_for("the server to pass its startup probe", lambda: h.driver.container(pod)["ready"])
    assert status_of(h, "web") is StatusShort.RUNNING
    assert h.driver.container(pod)["restartCount"] == 0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- what the emailer sees -----------------------------------------------------------------------


def test_subscribers_get_each_pod_change_shaped_for_the_emailer(h: LocalHarness) -> None:
    seen: list[Manifest] = []
    unsubscribe = h.runtime.subscribe(seen.append)
    h.service.run(h.tool, one_off("mailer", "exit 4", emails="onfailure"))
    wait_for("the job to fail", lambda: finished(h, "mailer"))
    wait_for("the failure to be sent", lambda: any(
        pod["status"]["phase"] == "Failed" for pod in seen))
    unsubscribe()
    events = [event for pod in seen for event in events_from_pod(pod)]
    assert {event.tool for event in events} == {"alpha"}
    terminated = [event for event in events if event.state is ContainerState.TERMINATED]
    assert [(e.job, e.exit_code, e.emails.value) for e in terminated] == [
        ("mailer", 4, "onfailure")]


# --- configuration -------------------------------------------------------------------------------


def test_one_state_directory_serves_one_runtime(h: LocalHarness) -> None:
    with pytest.raises(ConfigurationError, match="in use by another local runtime"):
        LocalRuntime(root=h.runtime.root, state_dir=h.runtime.state_dir,
                     catalog=bundled_catalog())


def test_a_home_elsewhere_than_the_root_is_refused(h: LocalHarness) -> None:
    stranger = ToolIdentity(tool="alpha", namespace="tool-alpha",
                            home=PurePosixPath(h.home.parent.parent))
    with pytest.raises(ConfigurationError, match="home_template"):
        h.runtime.list_objects(stranger)


@pytest.fixture
def slow_restarts(tmp_path: Path) -> Iterator[LocalHarness]:
    yield from LocalHarness.open(tmp_path, settings=attrs.evolve(FAST, restart_backoff=60.0))


def test_deleting_a_job_waiting_to_restart_ends_it(slow_restarts: LocalHarness) -> None:
    h = slow_restarts
    h.service.run(h.tool, continuous("sleepy", "exit 1"))
    [pod] = h.driver.pods_of("sleepy")
    wait_for("the back-off", lambda: "waiting" in h.driver.container(pod)["state"])
    h.service.delete(h.tool, "sleepy")
    assert h.runtime.list_objects(h.tool).pods == ()
    [run] = h.runtime.runs(h.tool, job="sleepy")
    assert run.exit_code == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_jobs_run_as_the_tools_unix_user(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    opened = LocalHarness.open(tmp_path, settings=attrs.evolve(FAST, run_as="nobody"))
    h = next(opened)
    try:
        os.chown(h.home, nobody.pw_uid, nobody.pw_gid)
        h.service.run(h.tool, one_off("who", "id -u > uid; echo $USER"))
        wait_for("the job to finish", lambda: finished(h, "who"))
        assert status_of(h, "who") is StatusShort.SUCCEEDED
        assert (h.home / "uid").read_text().strip() == str(nobody.pw_uid)
        assert (h.home / "who.out").read_text() == "nobody\n"
        assert (h.home / "who.out").stat().st_uid == nobody.pw_uid  # its own log files
    finally:
        opened.close()
