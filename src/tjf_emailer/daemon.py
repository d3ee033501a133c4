"""The emailer's core: pod dicts in, emails to the spool, the spool to the mail server.

Data flows one way::

    pod dicts ─► events_from_pod ─► wants_email ─► DigestBook ─► compose_digest ─► Spool ─► Sender
    (async iterator)  └──────────── tjf_core, pure ───────────┘   (+ log tail)   (disk)  (SMTP)

:class:`Pipeline` wires the pure parts of :mod:`tjf_core` (no I/O, time a parameter), so it
can be driven by a fake clock and benchmarked alone. :class:`EmailerDaemon` is the async shell
around it: it reads pods from an async iterator (a Kubernetes watch, in production: that
adapter, the ConfigMap watch and leader election plug in from outside, so nothing here imports
Kubernetes), composes due digests, quotes the jobs' log files, spools the emails and runs the
:class:`~tjf_emailer.sender.Sender`. It owns its two background tasks (composer and sender):
they start when the daemon is entered (``async with``) and are cancelled and awaited when it
is left; leaving also composes whatever is still pending, so a shutdown loses nothing.

Settings may be swapped at any time (:meth:`EmailerDaemon.update_settings`): the digest
timing, addresses and sending limits take effect at the next step of each loop.

Restarts: the spool keeps unsent emails. What was already mailed is kept out of the next run
by the watermark (:meth:`~tjf_core.notification_digest.DigestBook.watermark`) stored in the
spool; a first start (no watermark) mails only what happens from then on, rather than flood
every tool with the state of its existing pods. A replica taking over from another leader
(:mod:`tjf_emailer.leader`) passes that leader's hand-over as ``history_before`` and
gives the pods it had seen to :meth:`Pipeline.remember`, so the change of leader repeats nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

from tjf_core.errors import TjfError
from tjf_core.logfiles import tail_lines
from tjf_core.notification_digest import Digest, DigestBook
from tjf_core.notification_mail import ComposedEmail, compose_email
from tjf_core.notifications import JobEvent, wanted_events
from tjf_emailer.sender import Sender
from tjf_emailer.settings import EmailerSettings
from tjf_emailer.spool import Spool

__all__ = ["EmailerDaemon", "LogReader", "Pipeline", "read_log_tail", "utc_now"]

log = logging.getLogger("tjf_emailer")

#: Pod timestamps come from the nodes' clocks and reach us late: the watermark keeps a margin.
WATERMARK_MARGIN = timedelta(minutes=2)
WATERMARK_EVERY = timedelta(seconds=30)
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)

#: Reads the last lines of a job's log files: (event, how many, home template) -> lines.
#: Blocking: the daemon runs it in a thread.
LogReader = Callable[[JobEvent, int, str], Sequence[str]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def read_log_tail(event: JobEvent, lines: int, home_template: str) -> list[str]:
    """The last ``lines`` lines of a job's log files, read only inside the tool's home.

    Nothing (not an error) when the job has no log file, it does not exist, or it may not be
    read: an email without its log beats no email.
    """
    if not event.filelog or not event.log_files or lines <= 0:
        return []
    home = PurePosixPath(home_template.format(tool=event.tool))
    try:
        found = list(tail_lines(home, event.log_files, lines=lines))
    except (TjfError, OSError) as error:
        log.debug("no log lines for %s/%s: %s", event.tool, event.job, error)
        return []
    return found[-lines:]


class Pipeline:
    """The pure parts, wired: pod dicts in (:meth:`feed`), digests and emails out."""

    def __init__(
        self, settings: EmailerSettings, *, history_before: datetime | None = None,
        namespace_prefix: str = "tool-",
    ) -> None:
        self._settings = settings
        self.book = DigestBook(settings.digest, history_before=history_before)
        self.namespace_prefix = namespace_prefix

    @property
    def settings(self) -> EmailerSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: EmailerSettings) -> None:
        self._settings = settings
        if settings.digest != self.book.settings:
            self.book.settings = settings.digest

    def feed(self, pod: Mapping[str, Any], *, now: datetime) -> int:
        """Take in one pod; the number of events that are news for a digest."""
        news = 0
        for event in wanted_events(pod, namespace_prefix=self.namespace_prefix):
            if self.book.add(event, now=now):
                news += 1
        return news

    def remember(self, pod: Mapping[str, Any], *, now: datetime) -> None:
        """Take in a pod whose events were mailed already (by the previous leader): no news.

        Its timed events are remembered as history, so later sightings are not news either.
        """
        book = self.book
        saved, book.history_before = book.history_before, _END_OF_TIME
        try:
            self.feed(pod, now=now)
        finally:
            book.history_before = saved

    def due(self, *, now: datetime, everything: bool = False) -> list[Digest]:
        """The digests due at ``now``; with ``everything``, all pending ones."""
        return self.book.flush_all(now=now) if everything else self.book.due(now=now)

    def compose(
        self, digest: Digest, *, now: datetime, logs: Mapping[str, Sequence[str]] | None = None
    ) -> ComposedEmail:
        return compose_email(digest, addressing=self._settings.addressing, now=now, logs=logs)


class EmailerDaemon:
    """Runs the pipeline against an event source, a spool and a mail server."""

    def __init__(
        self, *, settings: EmailerSettings, spool: Spool | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        read_logs: LogReader = read_log_tail, tick: float = 1.0,
        history_before: datetime | None = None,
    ) -> None:
        self._settings = settings
        self.spool = spool if spool is not None else Spool(settings.send.spool_dir)
        self._clock = clock
        self._sleep = sleep
        self._read_logs = read_logs
        self._tick = tick
        watermark = self.spool.read_watermark()
        if history_before is not None:
            # Handed over by the previous leader: what either of them spooled is history.
            watermark = max(watermark, history_before) if watermark else history_before
        self.pipeline = Pipeline(
            settings, history_before=watermark or clock() - WATERMARK_MARGIN
        )
        self.sender = Sender(spool=self.spool, settings=lambda: self._settings, clock=clock,
                             sleep=sleep)
        self._tasks: list[asyncio.Task[None]] = []
        self._watermark_written: datetime | None = None
        self._unspooled: list[tuple[Digest, datetime]] = []

    @property
    def settings(self) -> EmailerSettings:
        return self._settings

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        """The background tasks while the daemon is entered; none otherwise."""
        return tuple(self._tasks)

    @property
    def pending(self) -> int:
        """Events and digests not in the spool yet: when 0, all that was fed is spooled."""
        return len(self.pipeline.book) + len(self._unspooled)

    def update_settings(self, settings: EmailerSettings) -> None:
        """Swap the settings while running (the ConfigMap changed)."""
        if settings.send.spool_dir != self._settings.send.spool_dir:
            log.warning("spool_dir changed to %s: it takes effect at the next start",
                        settings.send.spool_dir)
        self._settings = settings
        self.pipeline.settings = settings

    async def __aenter__(self) -> EmailerDaemon:
        self._tasks = [
            asyncio.create_task(self._compose_loop(), name="tjf-emailer-compose"),
            asyncio.create_task(self.sender.run(), name="tjf-emailer-send"),
        ]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Cancel the background tasks, then spool whatever is still pending."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        # gather, not a suppressed await: a cancellation of the caller itself must go through.
        for task, outcome in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True),
                                 strict=True):
            if isinstance(outcome, Exception):
                log.error("%s had failed: %r", task.get_name(), outcome)
        await self.compose_due(everything=True)

    async def run(self, pods: AsyncIterable[Mapping[str, Any]]) -> None:
        """Consume ``pods`` until it ends (or this is cancelled), with the background tasks."""
        async with self:
            await self.consume(pods)

    async def consume(self, pods: AsyncIterable[Mapping[str, Any]]) -> int:
        """Feed every pod of ``pods`` to the pipeline; the number of news events."""
        news = 0
        async for pod in pods:
            news += self.pipeline.feed(pod, now=self._clock())
        return news

    async def compose_due(self, *, everything: bool = False) -> int:
        """Compose the due digests (all pending with ``everything``) into the spool.

        A digest taken from the book stays in a list until its email is spooled: a
        cancellation or an error in between (a full disk) leaves it there for the next call,
        and composing it again for the same time gives the same Message-ID, which the spool
        takes only once.
        """
        now = self._clock()
        self._unspooled.extend((d, now) for d in self.pipeline.due(now=now, everything=everything))
        spooled = 0
        while self._unspooled:
            digest, at = self._unspooled[0]
            logs = await self._logs_of(digest)
            email = self.pipeline.compose(digest, now=at, logs=logs)
            item = await asyncio.to_thread(
                self.spool.put, email.smtp_bytes(), message_id=email.message_id, now=at
            )
            self._unspooled.pop(0)
            spooled += item is not None
            log.debug("spooled a digest for %s: %d lines", digest.tool, len(digest.entries))
        watermark = self.pipeline.book.watermark(now=now) - WATERMARK_MARGIN
        written = self._watermark_written
        if everything or written is None or watermark - written >= WATERMARK_EVERY:
            # Not every tick: a margin of staleness only re-mails a little after a crash.
            await asyncio.to_thread(self.spool.write_watermark, watermark)
            self._watermark_written = watermark
        return spooled

    async def _logs_of(self, digest: Digest) -> dict[str, Sequence[str]]:
        settings = self._settings.logs
        if settings.lines <= 0:
            return {}
        latest: dict[str, JobEvent] = {}
        for entry in digest.entries:
            if entry.event.filelog and entry.event.log_files:
                latest[entry.event.job] = entry.event
        logs: dict[str, Sequence[str]] = {}
        for job, event in latest.items():
            lines = await asyncio.to_thread(
                self._read_logs, event, settings.lines, settings.home_template
            )
            if lines:
                logs[job] = lines
        return logs

    async def _compose_loop(self) -> None:
        while True:
            try:
                await self.compose_due()
            except Exception:
                # One failing digest (a full disk, a bug) must not stop every later one.
                log.exception("composing digests failed")
            next_due = self.pipeline.book.next_due()
            delay = self._tick
            if next_due is not None:
                delay = min(delay, max((next_due - self._clock()).total_seconds(), 0.0))
            await self._sleep(delay)
