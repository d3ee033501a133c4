"""Waiting for a one-off job to end, and streaming its output meanwhile.

:func:`wait_for_job` polls the job until it succeeded or failed, or until the time is up:
soon at first (a quick job should not keep a person waiting five seconds), then less often.
Time and sleep are the caller's, so tests drive it without waiting. :func:`job_exit_code` finds
the job's own exit code in its status, which ``run --wait`` exits with.

:class:`LogPump` copies a job's output (``logs --follow``) to a writer from a thread of its
own while the caller polls. A stream can end before the job ends (no pod yet to read from), so
the pump opens it again, skipping the lines it already gave, until told the job is over; then
it reads once more for what was written last.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from tjf_core.errors import NotFoundError

if TYPE_CHECKING:
    from tjf_http.client import RemoteJob

__all__ = ["FINAL", "LogPump", "WaitResult", "job_exit_code", "wait_for_job"]

#: ``status.short`` values of a one-off job that has ended.
FINAL = frozenset({"succeeded", "failed"})
_TERMINATED = re.compile(r"state 'terminated'[^.]*?exit code (\d+)", re.IGNORECASE)
_EXITED = re.compile(r"exited with code (\d+)")


@attrs.frozen(kw_only=True)
class WaitResult:
    #: The job as last seen.
    job: RemoteJob
    #: Whether it ended (else the time was up).
    ended: bool
    #: Seconds waited.
    waited: float


def job_exit_code(job: RemoteJob) -> int | None:
    """The exit code of the job's (newest) container, when its status says it."""
    for pattern, text in ((_TERMINATED, job.status_long),
                          *((_EXITED, message) for message in job.status.get("messages") or ())):
        found = pattern.search(str(text))
        if found:
            return int(found.group(1))
    return None


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
    """Copies ``open_stream()``'s lines to ``write`` from a daemon thread (see the module)."""

    def __init__(self, open_stream: Callable[[bool], Iterator[str]], write: Callable[[str], None],
                 *, skip: int = 0, retry_every: float = 0.5) -> None:
        #: ``open_stream(follow)`` gives the job's whole output, followed or not.
        self._open = open_stream
        self._write = write
        self._skip = skip
        self._retry_every = retry_every
        self._ended = threading.Event()
        self._given = 0
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
        for seen, line in enumerate(stream, start=1):
            if seen > self._skip + self._given:
                self._write(line)
                self._given += 1

    def _run(self) -> None:
        try:
            while True:
                last = self._ended.is_set()
                with contextlib.suppress(NotFoundError):  # no output yet: no file, no pod
                    self._copy(self._open(not last))
                if last:
                    return
                self._ended.wait(self._retry_every)
        except BaseException as error:  # a thread must not die loudly: the caller reports it
            self.error = error
