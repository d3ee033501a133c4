"""Errors as answers: every status in JSON, request ids, limits, timeouts, the access log."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest

from tests.http.conftest import Harness, HarnessFactory
from tjf_core.errors import RuntimeUnavailableError
from tjf_http.runtimes import SlowRuntime

JOBS = "/v1/tool/alpha/jobs"
HELLO = {"name": "hello", "cmd": "echo hi", "imagename": "bookworm"}


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "tjf_http.access"]


def _eventually(what: str, check: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_malformed_json_is_400(h: Harness) -> None:
    reply = h.tls().post(JOBS, body=b'{"name": ', content_type="application/json")
    assert reply.status == 400
    assert reply.errors[0].startswith("the body is not valid JSON")


def test_a_body_that_is_not_an_object_is_400(h: Harness) -> None:
    reply = h.tls().post(JOBS, json_body=["hello"])
    assert reply.status == 400
    assert "must be a mapping" in reply.errors[0]


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", None])
def test_a_wrong_content_type_is_415(h: Harness, content_type: str | None) -> None:
    reply = h.tls().post(JOBS, body=json.dumps(HELLO).encode(), content_type=content_type)
    assert reply.status == 415
    assert "application/json" in reply.errors[0]


def test_a_jobs_file_of_another_type_is_415(h: Harness) -> None:
    reply = h.tls().post("/v1/tool/alpha/apply", body=b"<jobs/>", content_type="text/xml")
    assert reply.status == 415
    assert "application/yaml" in reply.errors[0]


def test_a_body_over_the_limit_is_413(h: Harness) -> None:
    huge = {**HELLO, "cmd": "x" * (32 * 1024)}
    reply = h.tls().post(JOBS, json_body=huge)
    assert reply.status == 413
    assert reply.errors == ["the request body is larger than the limit of 16384 bytes"]
    assert h.tls().post("/api/v1/run/", json_body=huge).json()["error"].startswith(
        "the request body is larger")


def test_an_unknown_route_is_a_json_404(h: Harness) -> None:
    reply = h.tls().get("/v2/whatever")
    assert reply.status == 404
    assert reply.errors == ["there is no route '/v2/whatever'"]


def test_a_wrong_method_is_a_json_405_with_allow(h: Harness) -> None:
    reply = h.tls().request("PUT", f"{JOBS}/hello")
    assert reply.status == 405
    assert reply.headers["Allow"] == "DELETE,GET"
    assert reply.errors == [f"PUT is not allowed on '{JOBS}/hello', use DELETE,GET"]
    legacy = h.tls().request("PUT", "/api/v1/list/")
    assert legacy.status == 405
    assert legacy.json()["error"].startswith("PUT is not allowed")


def test_an_unavailable_cluster_is_503_with_retry_after(h: Harness) -> None:
    h.runtime.fail_next("list_objects", RuntimeUnavailableError("the Kubernetes API at "
                                                                 "https://k8s:6443 is down"))
    reply = h.tls().get(JOBS)
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "7"
    assert reply.errors == ["the Kubernetes API at https://k8s:6443 is down"]
    assert reply.json()["request_id"] == reply.headers["X-Request-Id"]


def test_a_bug_is_500_with_the_request_id_and_no_traceback(
    h: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    h.runtime.fail_next("list_objects", ZeroDivisionError("secret detail"))
    with caplog.at_level(logging.ERROR, logger="tjf_http"):
        reply = h.tls().get(JOBS)
    assert reply.status == 500
    request_id = reply.headers["X-Request-Id"]
    assert reply.json()["request_id"] == request_id
    assert reply.errors == [f"internal error: please report request id {request_id}"]
    assert b"Traceback" not in reply.body
    assert b"secret detail" not in reply.body
    logged = [r for r in caplog.records if r.exc_info and request_id in r.getMessage()]
    assert logged  # the traceback went to the log, with the id to find it by


def test_a_slow_cluster_is_504(make_harness: HarnessFactory) -> None:
    h = make_harness(wrap=lambda runtime: SlowRuntime(runtime, delay=0.3),
                     call_timeout_seconds=0.05)
    reply = h.tls().get(JOBS)
    assert reply.status == 504
    assert "took longer than 0.05 s" in reply.errors[0]


def test_too_many_followers_is_503(make_harness: HarnessFactory) -> None:
    from tjf_core.model import JobSpec

    h = make_harness(log_followers=1)
    h.service.run(h.tool(), JobSpec(name="bot", command="x", image="bookworm",
                                    kind="continuous"))
    (h.homes / "alpha" / "bot.out").write_text("hi\n")
    conn, first = h.tls().open_stream(f"{JOBS}/bot/logs?follow=true")
    try:
        assert first.readline() == b"hi\n"
        second = h.tls().get(f"{JOBS}/bot/logs?follow=true")
        assert second.status == 503
        assert "1 logs are being followed already" in second.errors[0]
        assert second.headers["Retry-After"] == "7"
        assert h.tls().get(f"{JOBS}/bot/logs").status == 200  # not following: no limit
    finally:
        conn.close()


def test_every_request_is_one_access_log_line(
    h: Harness, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tjf_http.access")
    ok = h.tls().get(JOBS)
    missing = h.tls().get(f"{JOBS}/ghost")
    unknown = h.trusted(dn=None).get(JOBS)
    _eventually("three access log lines", lambda: len(_access_lines(caplog)) == 3)
    lines = {line["request_id"]: line for line in _access_lines(caplog)}
    first = lines[ok.headers["X-Request-Id"]]
    assert first["tool"] == "alpha"
    assert first["route"] == "/v1/tool/{tool}/jobs"
    assert first["path"] == JOBS
    assert first["status"] == 200
    assert first["listener"] == "direct"
    assert isinstance(first["duration_ms"], float)
    assert first["error"] is None
    second = lines[missing.headers["X-Request-Id"]]
    assert (second["status"], second["error"]) == (404, "NotFoundError")
    assert second["route"] == "/v1/tool/{tool}/jobs/{name}"
    third = lines[unknown.headers["X-Request-Id"]]
    assert (third["status"], third["tool"], third["listener"]) == (401, None, "trusted")


def test_errors_are_counted_in_the_metrics(h: Harness) -> None:
    h.tls().get(f"{JOBS}/ghost")
    text = h.ops().get("/metrics").body.decode()
    assert 'tjf_http_errors_total{error="NotFoundError",route="/v1/tool/{tool}/jobs/{name}"} 1.0' \
        in text


