"""Logs: followed as a chunked stream while the job runs, ended when it finishes or on demand."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.http.conftest import Harness
from tjf_core.model import JobSpec
from tjf_http.state import CALLS

LOGS = "/v1/tool/alpha/jobs/long/logs"


def _eventually(what: str, check: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_following_streams_lines_until_the_job_finishes(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="long", command="./work", image="bookworm"))
    driver = h.driver()
    [pod] = driver.pods_of("long")
    driver.set_running(pod)
    out = h.homes / "alpha" / "long.out"
    out.write_text("start\n")
    conn, stream = h.tls().open_stream(f"{LOGS}?follow=true")
    try:
        assert stream.status == 200
        assert stream.headers["Transfer-Encoding"] == "chunked"
        assert stream.headers["X-Request-Id"]
        assert stream.readline() == b"start\n"
        with out.open("a") as file:
            file.write("step 1\n")
        assert stream.readline() == b"step 1\n"
        with out.open("a") as file:
            file.write("last\n")
        driver.set_succeeded(pod)
        assert stream.read() == b"last\n"  # then the stream ends by itself
    finally:
        conn.close()


def test_a_dropped_follower_frees_its_place(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="long", command="./serve", image="bookworm",
                                    kind="continuous"))
    (h.homes / "alpha" / "long.out").write_text("up\n")
    calls = h.server.app[CALLS]
    for _ in range(3):  # more than log_followers (2): each one's place is given back
        conn, stream = h.tls().open_stream(f"{LOGS}?follow=true")
        assert stream.readline() == b"up\n"
        conn.close()
        _eventually("the follower noticed", lambda: calls.followers == 0)


def test_following_a_missing_job_is_404_before_any_stream(h: Harness) -> None:
    reply = h.tls().get(f"{LOGS}?follow=1")
    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("application/json")


def test_logs_of_a_job_without_filelog_come_from_its_pod(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="long", command="x", image="bookworm", filelog=False))
    driver = h.driver()
    [pod] = driver.pods_of("long")
    driver.write_log(pod, "from", "the pod")
    assert h.tls().get(LOGS).body == b"from\nthe pod\n"
    assert h.trusted().get(f"{LOGS}?follow=true").body == b"from\nthe pod\n"


def test_stopping_the_server_ends_followers_cleanly(h: Harness) -> None:
    h.service.run(h.tool(), JobSpec(name="long", command="./serve", image="bookworm",
                                    kind="continuous"))
    (h.homes / "alpha" / "long.out").write_text("up\n")
    conn, stream = h.tls().open_stream(f"{LOGS}?follow=true")
    try:
        assert stream.readline() == b"up\n"
        started = time.monotonic()
        h.stop()  # a continuous job's log never ends by itself
        assert time.monotonic() - started < 1.5  # well within the grace period
        assert stream.read() == b""  # the stream was ended, not cut
    finally:
        conn.close()
