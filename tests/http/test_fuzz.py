"""Property-based fuzzing of every documented operation, from the OpenAPI document.

schemathesis draws requests from ``/openapi.json``'s schemas and sends them over real TLS with
the tool's client certificate. For every request: no 5xx, and the answer's status, content
type, headers and body are the documented ones. The tool in the path is mostly the caller's
(else every request would only meet the 403), and job names are mostly ones that exist, so
the operations get past "not found". Before each request the tool's jobs are reset to the
same few, so examples do not depend on each other and runs are reproducible (derandomized).

Log follows are drawn only for the finished one-off job (or unknown names): a running job's
log would be followed until it ends, which in memory it never does.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.http.conftest import Harness
from tjf_core.model import JobSpec
from tjf_http.auth import ListenerKind
from tjf_http.openapi import openapi_document
from tjf_http.routes import ROUTES, Route

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
SEEDED = (
    JobSpec(name="hello", command="echo hi", image="bookworm"),
    JobSpec(name="cron", command="./tick", image="bookworm", schedule="*/5 * * * *"),
    JobSpec(name="web", command="./serve", image="bookworm", kind="continuous", port=8000),
)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
#: Routes that read a body or a query get more examples, valid and invalid; the rest vary only
#: in their path, which few examples cover.
RICH_EXAMPLES, PLAIN_EXAMPLES = 40, 15


def _fuzz_settings(route: Route) -> settings:
    rich = bool(route.body or route.query)
    return settings(max_examples=RICH_EXAMPLES if rich else PLAIN_EXAMPLES, derandomize=True,
                    database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _cases(route: Route) -> st.SearchStrategy[schemathesis.Case[Any]]:
    operation = SCHEMA[route.path][route.method]
    positive = operation.as_strategy()
    if not (route.body or route.query):
        return positive
    return positive | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)


def _reset(h: Harness) -> None:
    h.service.apply(h.tool(), SEEDED)
    driver = h.driver()
    for pod in driver.pods_of("hello"):
        driver.set_succeeded(pod)
    (h.homes / "alpha" / "hello.out").write_text("hi\n")


def _names(route_path: str) -> st.SearchStrategy[str | None]:
    """A name to put in the path (None: keep the generated one)."""
    if route_path.endswith("/logs"):
        return st.sampled_from(["hello", None])
    return st.sampled_from([*(spec.name for spec in SEEDED), None])


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_generated_requests_get_documented_answers(h: Harness, route: Route) -> None:
    address = h.server.addresses[ListenerKind.DIRECT][0]
    assert isinstance(address, tuple)
    base_url = f"https://127.0.0.1:{address[1]}"
    tls: dict[str, Any] = {"verify": str(h.pki.ca), "timeout": 10,
                           "cert": (str(h.pki.alpha.cert), str(h.pki.alpha.key))}
    session = requests.Session()  # one kept-alive TLS connection for every example

    @_fuzz_settings(route)
    @given(case=_cases(route), tool=st.sampled_from(["alpha", "alpha", None]),
           name=_names(route.path))
    def fuzz(case: schemathesis.Case[Any], tool: str | None, name: str | None) -> None:
        _reset(h)
        if tool is not None and "tool" in (case.path_parameters or {}):
            case.path_parameters = {**(case.path_parameters or {}), "tool": tool}
        if name is not None and "name" in (case.path_parameters or {}):
            case.path_parameters = {**(case.path_parameters or {}), "name": name}
        response = case.call(base_url=base_url, session=session, **tls)
        case.validate_response(response, checks=CHECKS, transport_kwargs=tls)

    with session:
        fuzz()


BODY_ROUTES = [route for route in ROUTES if route.body]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=[f"{r.method} {r.path}" for r in BODY_ROUTES])
def test_a_body_that_is_not_utf8_is_400(h: Harness, route: Route) -> None:
    path = route.path.replace("{tool}", "alpha")
    reply = h.tls().request(route.method, path, body=b"\xd1\xff", content_type=route.body[-1])
    assert reply.status == 400


@pytest.mark.parametrize("lines", [2**64, 1_000_001, "9" * 5000])
def test_a_huge_lines_is_400(h: Harness, lines: object) -> None:
    h.service.run(h.tool(), SEEDED[0])
    (h.homes / "alpha" / "hello.out").write_text("hi\n")
    reply = h.tls().get(f"/v1/tool/alpha/jobs/hello/logs?lines={lines}")
    assert reply.status == 400
