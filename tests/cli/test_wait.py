"""run --wait and --follow: the job's exit code passed through, timeouts, the status line."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.cli.conftest import ToolHome, eventually
from tests.http.conftest import Harness
from tjf_http.client import RemoteJob
from tjf_http.state import CALLS

RUN = ("run", "once", "--command", "./work", "--image", "bookworm")
EndJob = Callable[..., None]


class FakeTime:
    """A monotonic clock that only moves when slept on; ``on_sleep`` runs at every sleep."""

    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self._on_sleep is not None:
            self._on_sleep(self.now)


def test_wait_for_success_exits_0(tool: ToolHome, end_job: EndJob) -> None:
    end_job("once", 0)
    result = tool.invoke(*RUN, "--wait")
    assert result.exit_code == 0, result.stderr
    assert "Created job 'once'; waiting for it to end (at most 600 s)." in result.stderr
    assert result.stderr.endswith("Job 'once' succeeded.\n")


def test_wait_passes_the_jobs_exit_code_through(tool: ToolHome, end_job: EndJob) -> None:
    end_job("once", 3)
    result = tool.invoke(*RUN, "--wait", "60")
    assert result.exit_code == 3
    last = result.stderr.splitlines()[-1]
    assert last == ("Error: job 'once' failed with exit code 3; see its output: "
                    "`toolforge-jobs logs once`")


def test_a_timeout_exits_2_and_says_so(h: Harness, tool: ToolHome) -> None:
    clock = FakeTime()
    session = tool.session(monotonic=clock.monotonic, sleep=clock.sleep, poll_first=0.5,
                           poll_max=5.0)
    result = tool.invoke(*RUN, "--wait", "30", session=session)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: job 'once' did not end within 30 s (status: Pending); it keeps running: see "
        "`toolforge-jobs show once`, or stop it with `toolforge-jobs delete once`")
    assert sum(clock.slept) == pytest.approx(30)
    assert clock.slept[:3] == [0.5, 0.75, 1.125]  # soon at first, then less often
    assert max(clock.slept) == 5.0
    assert h.service.get(h.tool(), "once").spec.name == "once"  # still there


def test_the_status_line_on_a_terminal(h: Harness, tool: ToolHome) -> None:
    def finish(now: float) -> None:
        if now >= 1003:
            driver = h.driver()
            driver.set_succeeded(driver.pods_of("once")[-1])

    clock = FakeTime(finish)
    session = tool.session(monotonic=clock.monotonic, sleep=clock.sleep, stderr_tty=True,
                           poll_first=2.0, width=80)
    result = tool.invoke(*RUN, "--wait", session=session)
    assert result.exit_code == 0
    drawn = [part for part in result.stderr.split("\r\x1b[2K") if part.startswith("Job 'once':")]
    assert drawn[0] == "Job 'once': Pending, 0 s of 600 s (Ctrl-C stops waiting, not the job)"
    assert any(", 1 s of 600 s" in part for part in drawn)  # ticks between polls
    assert all(len(part) < 80 for part in drawn)
    assert "\r\x1b[2KJob 'once' succeeded." in result.stderr  # the line was cleared


def test_ctrl_c_stops_waiting_not_the_job(h: Harness, tool: ToolHome) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    clock = FakeTime(interrupt)
    result = tool.invoke(*RUN, "--wait",
                         session=tool.session(monotonic=clock.monotonic, sleep=clock.sleep))
    assert result.exit_code == 130
    assert "Stopped waiting; job 'once' keeps running" in result.stderr
    assert h.service.get(h.tool(), "once")


def following(h: Harness) -> None:
    """Wait until the client follows the job's output, as a real container starts later."""
    calls = h.server.app[CALLS]
    eventually("the client to follow the output", lambda: calls.followers >= 1)


def test_follow_streams_the_new_output_while_waiting(h: Harness, tool: ToolHome) -> None:
    out = h.homes / "alpha" / "once.out"
    out.write_text("an earlier run\n")  # filelog appends: an old job of that name wrote it

    def play() -> None:
        driver = h.driver()
        following(h)
        [pod] = driver.pods_of("once")
        driver.set_running(pod)
        for number in range(3):
            time.sleep(0.1)
            with out.open("a") as file:
                file.write(f"step {number}\n")
        time.sleep(0.1)
        driver.set_succeeded(pod)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    result = tool.invoke(*RUN, "--follow")
    thread.join(20)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "step 0\nstep 1\nstep 2\n"


def test_follow_reads_pod_logs_once_the_pod_exists(h: Harness, tool: ToolHome) -> None:
    def play() -> None:
        driver = h.driver()
        eventually("the job", lambda: bool(h.runtime.objects(h.tool(), "Job")))
        [pod] = driver.pods_of("once")
        time.sleep(0.2)
        driver.write_log(pod, "from the pod", "bye")
        driver.set_failed(pod, 7)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    result = tool.invoke(*RUN, "--no-filelog", "--follow")
    thread.join(20)
    assert result.exit_code == 7
    assert result.stdout == "from the pod\nbye\n"


def test_follow_shows_what_a_pod_wrote_before_the_client_looked(
    h: Harness, tool: ToolHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that starts at once (the local runtime) writes before the client reads anything:
    none of that is old output, there is none in a new pod."""
    import tjf_cli.run

    created = tjf_cli.run._create

    def create_and_start_at_once(backend: object, spec: object) -> object:
        job = created(backend, spec)  # type: ignore[arg-type]
        driver = h.driver()
        [pod] = driver.pods_of("once")
        driver.write_log(pod, "first words")
        threading.Timer(0.3, driver.set_succeeded, args=(pod,)).start()
        return job

    monkeypatch.setattr(tjf_cli.run, "_create", create_and_start_at_once)
    result = tool.invoke(*RUN, "--no-filelog", "--follow")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "first words\n"


# --- real processes: the exit codes as a shell sees them -------------------------------------


@pytest.mark.parametrize(("exit_code", "expected"), [(0, 0), (3, 3)])
def test_a_real_process_exits_with_the_jobs_code(tool: ToolHome, end_job: EndJob,
                                                 exit_code: int, expected: int) -> None:
    end_job("once", exit_code)
    done = tool.run_process(*RUN, "--wait", "30")
    assert done.returncode == expected, done.stderr


def test_a_real_process_times_out_with_2(tool: ToolHome) -> None:
    done = tool.run_process(*RUN, "--wait", "1")
    assert done.returncode == 2
    assert "did not end within 1 s" in done.stderr
    assert "Traceback" not in done.stderr


# --- the pieces --------------------------------------------------------------------------------


def _job(short: str, exit_code: object) -> RemoteJob:
    from tjf_core.model import JobSpec

    return RemoteJob(spec=JobSpec(name="x", command="x", image="bookworm"),
                     status={"short": short, "messages": [], "exit_code": exit_code},
                     status_short=short, status_long="", image_state="stable")


@pytest.mark.parametrize(("short", "given", "code"), [
    ("failed", 3, 3), ("succeeded", 0, 0), ("running", None, None),
    ("failed", None, None), ("failed", True, None), ("failed", "3", None)])
def test_the_exit_code_is_the_apis(short: str, given: object, code: int | None) -> None:
    from tjf_cli.waiting import job_exit_code

    assert job_exit_code(_job(short, given)) == code


def test_an_older_server_without_exit_codes_fails_with_1(h: Harness, tool: ToolHome,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        end_job: EndJob) -> None:
    import tjf_core.views

    original = tjf_core.views.status_view
    monkeypatch.setattr(tjf_core.views, "status_view",
                        lambda status: {k: v for k, v in original(status).items()
                                        if k != "exit_code"})
    end_job("once", 3)
    result = tool.invoke(*RUN, "--wait", "60")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: job 'once' failed; see its output: `toolforge-jobs logs once`")


# --- the log pump ------------------------------------------------------------------------------


class Streams:
    """Log streams as the API gives them: each from the start, the last one closing the output."""

    def __init__(self, *streams: list[str] | Exception) -> None:
        self._streams = list(streams)
        self.opened: list[bool] = []

    def open(self, follow: bool) -> Iterator[str]:
        self.opened.append(follow)
        stream = self._streams.pop(0) if len(self._streams) > 1 else self._streams[0]
        if isinstance(stream, Exception):
            raise stream
        return iter(stream)


def _pump(streams: Streams, already: list[str]) -> list[str]:
    from tjf_cli.waiting import LogPump

    written: list[str] = []
    pump = LogPump(streams.open, written.append, already=already, retry_every=0.001)
    pump.start()
    eventually("the pump to read every stream", lambda: len(streams.opened) >= 4)
    assert pump.finish(5.0)
    assert pump.error is None
    return written


def test_the_pump_skips_old_lines_and_never_repeats_one() -> None:
    from tjf_core.errors import NotFoundError, RuntimeUnavailableError

    old = ["old out", "old err"]
    streams = Streams(
        NotFoundError("no output yet"),
        # Followed, stdout and stderr interleave; the stream is cut short.
        ["old out", "old err", "out 1", "err 1", "out 2"],
        RuntimeUnavailableError("cut short"),
        # Read again, file after file, with what was written meanwhile.
        ["old out", "out 1", "out 2", "out 3", "old err", "err 1", "err 2"])
    assert _pump(streams, old) == ["out 1", "err 1", "out 2", "out 3", "err 2"]
    assert streams.opened[-1] is False  # the last read, after the job ended, is not followed


def test_the_pump_counts_repeated_lines() -> None:
    streams = Streams(["tick", "tick", "tick"], ["tick", "tick", "tick", "tick", "done"])
    assert _pump(streams, ["tick"]) == ["tick", "tick", "tick", "done"]


def test_follow_with_separate_stdout_and_stderr_files(h: Harness, tool: ToolHome) -> None:
    home = h.homes / "alpha"
    (home / "once.out").write_text("old out\n")
    (home / "once.err").write_text("old err\n")

    def play() -> None:
        driver = h.driver()
        following(h)
        [pod] = driver.pods_of("once")
        driver.set_running(pod)
        for number in range(3):
            time.sleep(0.05)
            for suffix in ("out", "err"):
                with (home / f"once.{suffix}").open("a") as file:
                    file.write(f"{suffix} {number}\n")
        time.sleep(0.1)
        driver.set_failed(pod, 5)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    result = tool.invoke(*RUN, "--follow", "--wait", "60")
    thread.join(20)
    assert result.exit_code == 5, result.stderr
    lines = result.stdout.splitlines()
    assert sorted(lines) == sorted(f"{suffix} {n}" for suffix in ("out", "err") for n in range(3))
    assert [line for line in lines if line.startswith("out")] == ["out 0", "out 1", "out 2"]
