"""Waiting for a one-off job to end, and streaming its output meanwhile.

:func:`wait_for_job` polls the job until it succeeded or failed, or until the time is up:
soon at first (a quick job should not keep a person waiting five seconds), then less often.
Time and sleep are the caller's, so tests drive it without waiting. :func:`job_exit_code` is
the job's own exit code, as the API's status gives it (``status.exit_code``), which
``run --wait`` exits with.

:class:`LogPump` copies a job's output to a writer from a thread of its own while the caller
polls, over the API's followed log stream (``follow=true``). Every stream the API gives starts
from the beginning of the job's output (its log files, which earlier jobs of the same name may
have appended to, or its pod's log), and a stream can end before the job does (no pod to read
from yet, a connection cut), so the pump opens it again until told the job is over, then reads
once more for what was written last. Lines are never given twice: the pump keeps the multiset
of lines already accounted for (those there before the job ran, and those it gave) and skips,
in each new stream, as many copies of a line as it accounted for. A multiset, not a count,
because a stream of two files (stdout and stderr) gives their lines interleaved while followed
but file after file when read again.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import attrs

from tjf_core.errors import NotFoundError, RuntimeUnavailableError

if TYPE_CHECKING:
    from tjf_http.client import RemoteJob

__all__ = ["FINAL", "LogPump", "WaitResult", "job_exit_code", "wait_for_job"]

#: ``status.short`` values of a one-off job that has ended.
FINAL = frozenset({"succeeded", "failed"})


@attrs.frozen(kw_only=True)
class WaitResult:
    #: The job as last seen.
    job: RemoteJob
    #: Whether it ended (else the time was up).
    ended: bool
    #: Seconds waited.
    waited: float


def job_exit_code(job: RemoteJob) -> int | None:
    """The exit code of the job's finished run (None while it runs, or when unknown)."""
    code = job.status.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def wait_for_job(
    get: Callable[[], RemoteJob], *, timeout: float, monotonic: Callable[[], float],
    sleep: Callable[[float], None], first: float = 0.5, maximum: float = 5.0,
    on_poll: Callable[[RemoteJob, float], None] | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> WaitResult:
    """Poll ``get()`` until the job ended or ``timeout`` seconds passed.

    ``on_poll(job, waited)`` sees every answer; ``on_tick(waited)`` is called about once a
    second between polls (a status line's clock).
    """
    start = monotonic()
    interval = first
    while True:
        job = get()
        waited = monotonic() - start
        if on_poll is not None:
            on_poll(job, waited)
        if job.status.get("short") in FINAL:
            return WaitResult(job=job, ended=True, waited=waited)
        remaining = timeout - waited
        if remaining <= 0:
            return WaitResult(job=job, ended=False, waited=waited)
        pause = min(interval, remaining)
        while pause > 0:
            step = min(pause, 1.0) if on_tick is not None else pause
            sleep(step)
            pause -= step
            if on_tick is not None:
                on_tick(monotonic() - start)
        interval = min(interval * 1.5, maximum)


class LogPump:
    """Copies ``open_stream()``'s new lines to ``write`` from a daemon thread (see the module)."""

    def __init__(self, open_stream: Callable[[bool], Iterator[str]], write: Callable[[str], None],
                 *, already: Iterable[str] = (), retry_every: float = 0.5) -> None:
        #: ``open_stream(follow)`` gives the job's whole output, followed or not.
        self._open = open_stream
        self._write = write
        #: Lines accounted for: there before the job ran (``already``), or given.
        self._accounted: Counter[str] = Counter(already)
        self._retry_every = retry_every
        self._ended = threading.Event()
        #: What stopped the pump early, if anything (shown with --debug).
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="log-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, grace: float) -> bool:
        """The job ended: let the pump read the rest, for up to ``grace`` seconds.

        Whether it finished in time (if not, it is left to die with the process).
        """
        self._ended.set()
        self._thread.join(grace)
        return not self._thread.is_alive()

    def _copy(self, stream: Iterator[str]) -> None:
        to_skip = self._accounted.copy()
        try:
            for line in stream:
                if to_skip[line] > 0:
                    to_skip[line] -= 1
                    continue
                self._write(line)
                self._accounted[line] += 1
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def _run(self) -> None:
        try:
            while True:
                last = self._ended.is_set()
                # No output yet (no file, no pod), or a stream cut short: open it again.
                with contextlib.suppress(NotFoundError, RuntimeUnavailableError):
                    self._copy(self._open(not last))
                if last:
                    return
                self._ended.wait(self._retry_every)
        except BaseException as error:  # a thread must not die loudly: the caller reports it
            self.error = error
