"""Running the synchronous core off the event loop: bounded threads, timeouts, log streams.

The core (and the Kubernetes client under it) blocks, so every core call runs in a bounded
:class:`~concurrent.futures.ThreadPoolExecutor`; a call slower than the timeout is answered
504 (the thread finishes the call on its own, the pool stays bounded). A runtime that never
blocks (``blocking = False``, as the server's memory runtime declares) is called on the loop
itself: the hop to a thread and back, and the fight for the GIL that comes with it, would cost
more than the call. Log lines are read from a blocking iterator a batch at a time, always in a
thread (log files are read from disk); followed logs run in a second pool of their own, sized
by the number of followers allowed, so followers that wait for hours never starve short calls,
and a follower past the limit is told to come back later (503).

A follower ends when its client goes away or the server stops: the iterator is asked to stop
through ``keep_following`` and closed as soon as the thread reading it is free, never from
another thread while it reads. A read blocked in the thread (a pod's log that stays quiet) is
ended at once when the iterator has an ``abort()`` method, which must be safe to call from
another thread (the Kubernetes runtime's shuts the connection down); otherwise at the
iterator's next look at ``keep_following``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from tjf_core.errors import TjfError

__all__ = ["BusyError", "CallTimeoutError", "CoreCalls", "LineStream", "never_blocks"]

_T = TypeVar("_T")
#: Lines read in one go from a log that is not followed.
_BATCH = 500


class CallTimeoutError(TjfError):
    """A core call took longer than the configured timeout (it may still complete)."""

    http_status = 504


class BusyError(TjfError):
    """The server is at a configured limit; retrying later may work."""

    http_status = 503


def _batch(iterator: Iterator[str], size: int) -> list[str]:
    lines: list[str] = []
    for line in iterator:
        lines.append(line)
        if len(lines) >= size:
            break
    return lines


def _close(iterator: Iterator[str]) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def _abort(iterator: Iterator[str]) -> None:
    abort = getattr(iterator, "abort", None)
    if abort is not None:
        with contextlib.suppress(Exception):  # the reader's thread reports what went wrong
            abort()


def never_blocks(runtime: object) -> bool:
    """Whether ``runtime`` says its calls never block (``blocking = False``).

    An attribute of the runtime, not a guess from its type: a runtime that says nothing is
    taken to block, and a wrapper that sleeps (``SlowRuntime``) says it does.
    """
    return getattr(runtime, "blocking", True) is False


class LineStream:
    """Batches of lines read in a thread from a blocking iterator; ``close()`` when done."""

    def __init__(self, calls: CoreCalls, *, pool: ThreadPoolExecutor, batch: int,
                 follow: bool) -> None:
        self.iterator: Iterator[str] | None = None
        self._calls = calls
        self._pool = pool
        self._size = batch
        self._follow = follow
        self._pending: Future[list[str]] | None = None
        self._waiting: asyncio.Future[list[str]] | None = None
        self._dropped = threading.Event()

    def keep_following(self) -> bool:
        return not self._dropped.is_set() and not self._calls.stopping

    async def next_batch(self, *, wanted: Callable[[], bool] | None = None,
                         poll: float = 0.5) -> list[str] | None:
        """The next lines (None at the end). While waiting for them, ``wanted()`` is asked
        every ``poll`` seconds; once it says False (the client left), or the server stops, the
        stream is closed."""
        if self.iterator is None or self._dropped.is_set():
            return None
        self._pending = self._pool.submit(_batch, self.iterator, self._size)
        self._waiting = waiting = asyncio.wrap_future(self._pending)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=poll)
            if done:
                return waiting.result() or None
            if self._calls.stopping or (wanted is not None and not wanted()):
                self.close()  # the server stops, or the client left
                return None

    def close(self) -> None:
        if self._dropped.is_set():
            return
        self._dropped.set()
        if self._waiting is not None:
            self._waiting.cancel()  # nobody waits for the read any more (the loop may close)
        if self._pending is not None and not self._pending.done():
            # Still reading in its thread: finish there once that read returns. Until then
            # the follower keeps its place, so the limit counts threads really in use. A read
            # that may wait for hours for the next line is woken now, where the iterator can.
            self._pending.add_done_callback(lambda _: self._finish())
            if self.iterator is not None:
                _abort(self.iterator)
        else:
            self._finish()

    def _finish(self) -> None:
        try:
            if self.iterator is not None:
                _close(self.iterator)
        finally:
            if self._follow:
                self._calls.follower_ended()


class CoreCalls:
    """The thread pools of one application; ``close()`` on shutdown."""

    def __init__(self, *, threads: int, timeout: float, followers: int,
                 inline: bool = False) -> None:
        #: Calls run on the event loop, not in the pool (a runtime that never blocks).
        self.inline = inline
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tjf-core")
        self._follow_pool = ThreadPoolExecutor(max_workers=followers,
                                               thread_name_prefix="tjf-follow")
        self._timeout = timeout
        self._max_followers = followers
        self._followers = 0
        self._lock = threading.Lock()  # followers end in reader threads
        self._stopping = threading.Event()

    @property
    def followers(self) -> int:
        """Log streams being followed now."""
        return self._followers

    async def call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)`` in the pool; CallTimeoutError past the timeout.

        Inline (``inline``), the call is made right here: it never blocks, so it needs no
        timeout either.
        """
        if self.inline:
            return fn(*args, **kwargs)
        return await self._threaded(functools.partial(fn, *args, **kwargs))

    async def _threaded(self, fn: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, fn)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise CallTimeoutError(
                f"the request took longer than {self._timeout:g} s and was given up: the "
                "cluster may be slow; the change may still happen, check before retrying"
            ) from None

    async def open_lines(
        self, open_lines: Callable[[Callable[[], bool]], Iterator[str]], *, follow: bool,
    ) -> LineStream:
        """The lines of the iterator ``open_lines(keep_following)`` makes, as a stream.

        Opening runs as a normal call (always in a thread: it may read log files), so its
        errors (no such job …) come before any line; ``keep_following()`` turns False once the
        stream is closed or the server stops.
        """
        if follow:
            with self._lock:
                if self._followers >= self._max_followers:
                    raise BusyError(f"{self._max_followers} logs are being followed already, "
                                    "the most this server allows: try again later")
                self._followers += 1
        stream = LineStream(self, pool=self._follow_pool if follow else self._pool,
                            batch=1 if follow else _BATCH, follow=follow)
        try:
            stream.iterator = await self._threaded(
                functools.partial(open_lines, stream.keep_following))
        except BaseException:
            stream.close()
            raise
        return stream

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def follower_ended(self) -> None:
        with self._lock:
            self._followers -= 1

    def stop_following(self) -> None:
        """Tell every follower to end (the server is stopping)."""
        self._stopping.set()

    def close(self) -> None:
        """Stop the pools; calls still running finish in their threads."""
        self.stop_following()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._follow_pool.shutdown(wait=False, cancel_futures=True)
