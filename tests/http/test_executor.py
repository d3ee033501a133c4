"""Core calls: inline for runtimes that never block, and followed logs that end when asked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import ClassVar

from tests.http.conftest import Harness, HarnessFactory
from tjf_core.identity import ToolIdentity
from tjf_core.model import JobSpec
from tjf_core.runtime import Runtime
from tjf_core.testing import InMemoryRuntime
from tjf_http.executor import CoreCalls, never_blocks
from tjf_http.runtimes import MemoryRuntime, SlowRuntime
from tjf_http.state import CALLS

LOGS = "/v1/tool/alpha/jobs/talker/logs"


def _eventually(what: str, check: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_whether_a_runtime_blocks_is_the_runtimes_to_say() -> None:
    assert never_blocks(MemoryRuntime())
    assert not never_blocks(SlowRuntime(MemoryRuntime(), delay=0.0))  # it sleeps
    assert not never_blocks(InMemoryRuntime())  # says nothing: taken to block
    assert not never_blocks(object())


def test_inline_calls_run_on_the_event_loop_and_others_in_threads() -> None:
    async def threads_used(calls: CoreCalls) -> tuple[str, str]:
        here = threading.current_thread().name
        there = await calls.call(lambda: threading.current_thread().name)
        return here, there

    inline = CoreCalls(threads=1, timeout=5, followers=1, inline=True)
    threaded = CoreCalls(threads=1, timeout=5, followers=1)
    try:
        here, there = asyncio.run(threads_used(inline))
        assert there == here
        here, there = asyncio.run(threads_used(threaded))
        assert there != here
        assert there.startswith("tjf-core")
    finally:
        inline.close()
        threaded.close()


class _Inline(SlowRuntime):
    """The fake runtime, declared never blocking (as the server's memory runtime is)."""

    blocking: ClassVar[bool] = False


def test_a_never_blocking_runtime_is_served_inline(make_harness: HarnessFactory) -> None:
    h = make_harness(wrap=lambda runtime: _Inline(runtime, delay=0.0))
    assert h.server.app[CALLS].inline
    api = h.tls()
    assert api.post("/v1/tool/alpha/jobs", json_body={
        "name": "hello", "cmd": "echo", "imagename": "bookworm"}).status == 201
    assert api.get("/v1/tool/alpha/jobs/hello").json()["job"]["name"] == "hello"
    assert api.get("/v1/tool/alpha/jobs/ghost").status == 404


class _QuietLog:
    """A pod log that gives one line and then waits for the next, as a quiet pod's does;
    ``abort()`` (from any thread) ends the wait, like the Kubernetes runtime's."""

    def __init__(self) -> None:
        self.aborted = threading.Event()
        self.closed = threading.Event()
        self._first = iter(["first"])

    def __iter__(self) -> _QuietLog:
        return self

    def __next__(self) -> str:
        for line in self._first:
            return line
        self.aborted.wait(10)  # bounded: a test never hangs, even if nobody aborts
        raise StopIteration

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        self.closed.set()


class _QuietPods(SlowRuntime):
    def __init__(self, inner: Runtime) -> None:
        super().__init__(inner, delay=0.0)
        self.logs: list[_QuietLog] = []

    def pod_logs(self, tool: ToolIdentity, *, pod: str, lines: int | None,
                 follow: bool) -> Iterator[str]:
        log = _QuietLog()
        self.logs.append(log)
        return log


def test_a_client_leaving_a_followed_pod_log_frees_its_thread(
        make_harness: HarnessFactory) -> None:
    wrapped: list[_QuietPods] = []

    def wrap(runtime: InMemoryRuntime) -> Runtime:
        wrapped.append(_QuietPods(runtime))
        return wrapped[0]

    h: Harness = make_harness(wrap=wrap, log_followers=1)
    h.service.run(h.tool(), JobSpec(name="talker", command="x", image="bookworm",
                                    kind="continuous", filelog=False))
    [pod] = h.driver().pods_of("talker")
    h.driver().set_running(pod)
    calls = h.server.app[CALLS]
    for _ in range(2):  # more than log_followers: each place is given back
        conn, stream = h.tls().open_stream(f"{LOGS}?follow=true")
        assert stream.readline() == b"first\n"
        assert calls.followers == 1
        conn.close()  # the client leaves while the reader waits for a line
        log = wrapped[0].logs[-1]
        _eventually("the waiting read was aborted", log.aborted.is_set)
        _eventually("the log was closed in its thread", log.closed.is_set)
        _eventually("the follower's place was given back", lambda: calls.followers == 0)


def test_stopping_the_server_ends_a_quiet_pod_follower(make_harness: HarnessFactory) -> None:
    wrapped: list[_QuietPods] = []

    def wrap(runtime: InMemoryRuntime) -> Runtime:
        wrapped.append(_QuietPods(runtime))
        return wrapped[0]

    h: Harness = make_harness(wrap=wrap)
    h.service.run(h.tool(), JobSpec(name="talker", command="x", image="bookworm",
                                    kind="continuous", filelog=False))
    h.driver().set_running(h.driver().pods_of("talker")[0])
    conn, stream = h.tls().open_stream(f"{LOGS}?follow=true")
    try:
        assert stream.readline() == b"first\n"
        h.stop()  # within the grace period (2 s): the waiting read is not waited for
        assert wrapped[0].logs[-1].aborted.is_set()
        assert stream.read() == b""  # the stream was ended, not cut
    finally:
        conn.close()
