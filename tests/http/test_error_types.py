"""The ``type`` of error bodies: stable, machine-readable, and the same on every flavour."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Harness, HarnessFactory
from tjf_core import errors as core_errors
from tjf_core.errors import NotFoundError, RuntimeUnavailableError, TjfError
from tjf_core.kube.errors import ConcurrentChangeError
from tjf_core.model import JobSpec
from tjf_http.executor import BusyError, CallTimeoutError
from tjf_http.middleware import HttpStatusError
from tjf_http.operations import ERROR_TYPES, error_type
from tjf_http.runtimes import SlowRuntime

JOBS = "/v1/tool/alpha/jobs"
HELLO = {"name": "hello", "cmd": "echo hi", "imagename": "bookworm"}


def _type(reply: Any) -> str:
    return str(reply.json()["type"])


@pytest.mark.parametrize(("error", "expected"), [
    (NotFoundError("x"), "not_found"),
    (core_errors.AlreadyExistsError("x"), "already_exists"),
    (core_errors.QuotaExceededError("x"), "quota_exceeded"),
    (core_errors.InvalidInputError("x"), "invalid_input"),
    (core_errors.UnknownImageError("x"), "unknown_image"),
    (RuntimeUnavailableError("x"), "runtime_unavailable"),
    (core_errors.NotRestartableError("x"), "not_restartable"),
    (TjfError("x"), "tjf"),
    # a runtime's own subclass is named by the nearest core class: clients know only those
    (ConcurrentChangeError("x"), "runtime_unavailable"),
    (CallTimeoutError("x"), "call_timeout"),
    (BusyError("x"), "busy"),
    (HttpStatusError(404, "x"), "no_route"),
    (HttpStatusError(418, "x"), "bad_request"),
    (HttpStatusError(502, "x"), "internal"),
])
def test_error_types_are_snake_case_class_names(error: TjfError, expected: str) -> None:
    assert error_type(error) == expected
    assert expected in ERROR_TYPES


def test_every_core_error_class_has_a_listed_type() -> None:
    classes = [getattr(core_errors, name) for name in core_errors.__all__]
    named = {error_type(cls("x")) for cls in classes
             if isinstance(cls, type) and issubclass(cls, TjfError)}
    assert named <= set(ERROR_TYPES)
    assert {"not_found", "already_exists", "quota_exceeded", "invalid_input",
            "runtime_unavailable", "forbidden", "authentication", "certificate"} <= named


def test_core_refusals_carry_their_type(h: Harness) -> None:
    api = h.tls()
    assert _type(api.get(f"{JOBS}/ghost")) == "not_found"
    assert api.post(JOBS, json_body=HELLO).status == 201
    assert _type(api.post(JOBS, json_body=HELLO)) == "already_exists"
    invalid = api.post(JOBS, json_body={**HELLO, "name": "other", "retry": 9})
    assert (invalid.status, _type(invalid)) == (400, "invalid_job")
    assert _type(api.post(JOBS, json_body={**HELLO, "name": "x", "imagename": "nope"})) == \
        "unknown_image"
    assert _type(api.post(f"{JOBS}/hello/restart")) == "not_restartable"
    assert _type(api.get("/v1/tool/beta/jobs")) == "forbidden"
    assert _type(h.trusted(dn=None).get(JOBS)) == "authentication"
    assert _type(h.tls(h.pki.wrong_org).get(JOBS)) == "certificate"


def test_a_full_quota_is_quota_exceeded(h: Harness) -> None:
    tool = h.tool()
    meta = {"name": tool.namespace, "namespace": tool.namespace}
    h.runtime.add_tool(tool, resource_quota={"kind": "ResourceQuota", "metadata": meta,
                                             "spec": {"hard": {"count/jobs.batch": "0"}}})
    reply = h.tls().post(JOBS, json_body=HELLO)
    assert (reply.status, _type(reply)) == (409, "quota_exceeded")


def test_transport_refusals_carry_their_type(h: Harness) -> None:
    api = h.tls()
    assert _type(api.get("/v2/whatever")) == "no_route"
    assert _type(api.request("PUT", f"{JOBS}/hello")) == "method_not_allowed"
    assert _type(api.post(JOBS, json_body={**HELLO, "cmd": "x" * 32 * 1024})) == \
        "body_too_large"
    assert _type(api.post(JOBS, body=json.dumps(HELLO).encode(),
                          content_type="text/plain")) == "unsupported_media_type"


def test_runtime_failures_carry_their_type(h: Harness) -> None:
    h.runtime.fail_next("list_objects", ConcurrentChangeError("changed meanwhile"))
    assert _type(h.tls().get(JOBS)) == "runtime_unavailable"
    h.runtime.fail_next("list_objects", ZeroDivisionError("a bug"))
    bug = h.tls().get(JOBS)
    assert (bug.status, _type(bug)) == (500, "internal")


def test_a_slow_cluster_is_call_timeout(make_harness: HarnessFactory) -> None:
    h = make_harness(wrap=lambda runtime: SlowRuntime(runtime, delay=0.3),
                     call_timeout_seconds=0.05)
    reply = h.tls().get(JOBS)
    assert (reply.status, _type(reply)) == (504, "call_timeout")


def test_a_server_limit_is_busy_on_both_flavours(make_harness: HarnessFactory) -> None:
    h = make_harness(log_followers=1)
    h.service.run(h.tool(), JobSpec(name="bot", command="x", image="bookworm",
                                    kind="continuous"))
    (h.homes / "alpha" / "bot.out").write_text("hi\n")
    conn, first = h.tls().open_stream(f"{JOBS}/bot/logs?follow=true")
    try:
        assert first.readline() == b"hi\n"
        modern = h.tls().get(f"{JOBS}/bot/logs?follow=true")
        legacy = h.tls().get("/api/v1/jobs/bot/logs?follow=true")
        assert (modern.status, _type(modern)) == (503, "busy")
        assert (legacy.status, _type(legacy)) == (503, "busy")
        assert "error" in legacy.json()
    finally:
        conn.close()
