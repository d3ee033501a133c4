"""Every way the Kubernetes API can refuse or fail becomes a core error a user can act on.

The bodies are what a 1.20 apiserver really answers (captured from the e2e cluster).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import pytest
import urllib3.exceptions
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from tjf_core.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    InvalidJobError,
    LimitExceededError,
    NotFoundError,
    Problem,
    QuotaExceededError,
    RuntimeUnavailableError,
    TjfError,
)
from tjf_core.kube.errors import (
    ConcurrentChangeError,
    error_from_exception,
    error_from_status,
    status_message,
)

SERVER = "https://k8s.example:6443"


def _status(code: int, reason: str, message: str, **details: Any) -> bytes:
    return json.dumps({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code,
    }).encode()


def test_already_exists_names_the_job() -> None:
    body = _status(409, "AlreadyExists", 'jobs.batch "j1" already exists',
                   name="j1", group="batch", kind="jobs")
    error = error_from_status(409, body, kind="Job")
    assert isinstance(error, AlreadyExistsError)
    assert str(error) == "a job named 'j1' already exists"
    assert error.http_status == 409


def test_a_stale_write_is_a_retryable_conflict() -> None:
    body = _status(409, "Conflict", 'Operation cannot be fulfilled on jobs.batch "j1": the '
                   "object has been modified; please apply your changes to the latest version "
                   "and try again", name="j1", group="batch", kind="jobs")
    error = error_from_status(409, body, kind="Job", name="j1")
    assert isinstance(error, ConcurrentChangeError)
    assert isinstance(error, RuntimeUnavailableError)
    assert error.http_status == 503
    assert "Job 'j1' was changed by another request" in str(error)


def test_exceeded_quota_names_the_quota_and_the_resource() -> None:
    body = _status(403, "Forbidden",
                   'deployments.apps "d4" is forbidden: exceeded quota: tool-foo, requested: '
                   "count/deployments.apps=1, used: count/deployments.apps=3, limited: "
                   "count/deployments.apps=3", name="d4", kind="deployments")
    error = error_from_status(403, body, kind="Deployment", name="d4", tool="foo")
    assert isinstance(error, QuotaExceededError)
    assert error.http_status == 409
    assert str(error).startswith(
        "out of quota for count/deployments.apps (used 3 of 3, requested 1) in quota tool-foo"
    )
    assert "request a quota increase" in str(error)


def test_a_pod_without_the_resources_a_quota_tracks() -> None:
    body = _status(403, "Forbidden",
                   'pods "p" is forbidden: failed quota: tool-foo: must specify limits.cpu')
    error = error_from_status(403, body)
    assert isinstance(error, QuotaExceededError)
    assert str(error) == "refused by quota tool-foo: the job must set limits.cpu"


def test_limit_range_maximum_names_the_resource_and_the_bound() -> None:
    body = _status(403, "Forbidden", 'pods "greedy" is forbidden: maximum cpu usage per '
                   "Container is 1, but limit is 2")
    error = error_from_status(403, body, kind="Pod", name="greedy")
    assert isinstance(error, LimitExceededError)
    assert error.http_status == 400
    assert error.problems == (Problem(
        "cpu", "2 is above the limit of 1 per job in this tool's namespace; ask for less or "
        "request a quota increase"),)


def test_limit_range_minimums_are_all_reported() -> None:
    body = _status(403, "Forbidden", 'pods "p1" is forbidden: [minimum cpu usage per Container '
                   "is 50m, but request is 10m, minimum memory usage per Container is 100Mi, "
                   "but request is 20Mi]")
    error = error_from_status(403, body)
    assert isinstance(error, LimitExceededError)
    assert [p.path for p in error.problems] == ["cpu", "memory"]
    assert "20Mi is below the minimum of 100Mi" in str(error)
    assert "ask for at least 100Mi" in str(error)


def test_rbac_refusal_is_forbidden_with_the_servers_reason() -> None:
    message = ('jobs.batch is forbidden: User "alpha" cannot list resource "jobs" in API group '
               '"batch" in the namespace "tool-beta"')
    error = error_from_status(403, _status(403, "Forbidden", message), tool="alpha")
    assert isinstance(error, ForbiddenError)
    assert error.http_status == 403
    assert str(error) == f"Kubernetes does not allow tool 'alpha' to do this: {message}"


def test_not_found_names_the_object_when_known() -> None:
    body = _status(404, "NotFound", 'jobs.batch "nope" not found', name="nope", kind="jobs")
    assert str(error_from_status(404, body, kind="Job", name="nope")) == \
        "Job 'nope' does not exist"
    error = error_from_status(404, _status(404, "NotFound", 'namespaces "x" not found'))
    assert isinstance(error, NotFoundError)
    assert str(error) == 'not found: namespaces "x" not found'


def test_invalid_lists_each_cause_with_its_field() -> None:
    body = _status(422, "Invalid", 'Job.batch "Bad_Name" is invalid: [...]', name="Bad_Name",
                   kind="Job", causes=[
                       {"reason": "FieldValueInvalid", "field": "metadata.name",
                        "message": "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"},
                       {"reason": "FieldValueInvalid", "field": "spec.backoffLimit",
                        "message": "Invalid value: -1: must be greater than or equal to 0"},
                   ])
    error = error_from_status(422, body, kind="Job")
    assert isinstance(error, InvalidJobError)
    assert error.http_status == 400
    assert [p.path for p in error.problems] == ["metadata.name", "spec.backoffLimit"]
    assert str(error).startswith("Kubernetes refused Job 'Bad_Name': metadata.name: Invalid")


def test_huge_server_messages_are_shortened() -> None:
    dump = "core.PodTemplateSpec{" + "x" * 5000 + "}"
    body = _status(422, "Invalid", "Job is invalid", causes=[
        {"field": "spec.template", "message": f"Invalid value: {dump}: field is immutable"}])
    error = error_from_status(422, body, kind="Job", name="j")
    assert isinstance(error, InvalidJobError)
    message = error.problems[0].message
    assert len(message) <= 400
    assert message.startswith("Invalid value: core.PodTemplateSpec{xxx")
    assert " … " in message
    assert message.endswith("xxx}: field is immutable")  # the reason survives


def test_bad_request_without_causes() -> None:
    body = _status(400, "BadRequest", "the server rejected our request")
    error = error_from_status(400, body)
    assert isinstance(error, InvalidJobError)
    assert "the server rejected our request" in str(error)


def test_unauthorized_says_whose_credentials() -> None:
    error = error_from_status(401, _status(401, "Unauthorized", "Unauthorized"),
                              credentials="the client certificate of tool 'foo' (/c.crt)")
    assert isinstance(error, AuthenticationError)
    assert error.http_status == 401
    assert str(error) == ("the Kubernetes API did not accept the client certificate of tool "
                          "'foo' (/c.crt): Unauthorized")


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_overload_and_server_errors_say_try_again(code: int) -> None:
    error = error_from_status(code, b"<html><body>Bad Gateway</body></html>")
    assert isinstance(error, RuntimeUnavailableError)
    assert error.http_status == 503
    assert str(error).startswith(f"Kubernetes API unavailable (HTTP {code}: <html>")
    assert str(error).endswith("try again in a minute")


def test_unexpected_status_is_a_plain_error() -> None:
    error = error_from_status(405, _status(405, "MethodNotAllowed", "not allowed"))
    assert type(error) is TjfError
    assert "HTTP 405: not allowed" in str(error)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(None, ""), ("plain text\n", "plain text"), ({"message": "m"}, "m"), (b"[1, 2]", "[1, 2]"),
     (_status(404, "NotFound", "gone"), "gone"), (b"\xff\xfe", "\ufffd\ufffd")],
)
def test_status_message_of_any_body(body: Any, expected: str) -> None:
    assert status_message(body) == expected


def _refused() -> urllib3.exceptions.MaxRetryError:
    reason = urllib3.exceptions.NewConnectionError(
        None,  # type: ignore[arg-type]
        "HTTPSConnection(host='127.0.0.1', port=1): Failed to establish a new connection: "
        "[Errno 111] Connection refused")
    return urllib3.exceptions.MaxRetryError(None, "/api", reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (_refused(), "[Errno 111] Connection refused"),
        (urllib3.exceptions.ConnectTimeoutError("slow"), "no connection within the timeout"),
        (urllib3.exceptions.ReadTimeoutError(None, "/api", "read timed out"),  # type: ignore[arg-type]
         "no answer within the timeout"),
        (urllib3.exceptions.ProtocolError("Connection aborted."), "Connection aborted."),
        (ConnectionResetError(104, "Connection reset by peer"), "Connection reset by peer"),
        (ApiException(status=0, reason="SSLError\nEOF occurred in violation of protocol"),
         "EOF occurred"),
    ],
)
def test_no_answer_is_unavailable(error: BaseException, detail: str) -> None:
    mapped = error_from_exception(error, server=SERVER)
    assert isinstance(mapped, RuntimeUnavailableError)
    assert str(mapped).startswith(f"Kubernetes API unavailable at {SERVER} (")
    assert detail in str(mapped)
    assert str(mapped).endswith("; try again in a minute")


@pytest.mark.parametrize(
    "error",
    [
        ApiException(status=0, reason="SSLError\n[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                     "verify failed: unable to get local issuer certificate (_ssl.c:1006)"),
        urllib3.exceptions.MaxRetryError(
            None, "/api",  # type: ignore[arg-type]
            urllib3.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                        "failed: self signed certificate")),
        ssl.SSLCertVerificationError("hostname mismatch"),
    ],
)
def test_an_untrusted_server_certificate_is_a_configuration_error(error: BaseException) -> None:
    mapped = error_from_exception(error, server=SERVER)
    assert isinstance(mapped, ConfigurationError)
    assert f"the certificate of the Kubernetes API at {SERVER} cannot be verified" in str(mapped)
    assert "certificate-authority" in str(mapped)


def test_an_api_exception_with_a_status_is_mapped_like_an_answer() -> None:
    error = ApiException(status=404, reason="Not Found")
    error.body = _status(404, "NotFound", "gone").decode()
    assert isinstance(error_from_exception(error, server=SERVER), NotFoundError)


def test_core_errors_pass_through() -> None:
    original = ForbiddenError("no")
    assert error_from_exception(original, server=SERVER) is original


@settings(max_examples=300)
@given(code=st.integers(min_value=100, max_value=599),
       body=st.one_of(st.none(), st.binary(max_size=2000), st.text(max_size=2000),
                      st.dictionaries(st.text(max_size=10),
                                      st.one_of(st.text(max_size=50), st.integers()),
                                      max_size=5)))
def test_any_answer_becomes_a_core_error_with_a_bounded_message(code: int, body: Any) -> None:
    error = error_from_status(code, body)
    assert isinstance(error, TjfError)
    assert "Traceback" not in str(error)
    assert len(str(error)) < 1200
    if code >= 500 or code == 429:
        assert isinstance(error, RuntimeUnavailableError)
    elif code == 404:
        assert isinstance(error, NotFoundError)
    elif code == 401:
        assert isinstance(error, AuthenticationError)


@settings(max_examples=200)
@given(causes=st.lists(st.fixed_dictionaries({
    "field": st.text(alphabet="abc.[]0123", max_size=20),
    "message": st.text(min_size=1, max_size=600)}), min_size=1, max_size=5))
def test_every_cause_becomes_one_problem(causes: list[dict[str, str]]) -> None:
    body = {"kind": "Status", "reason": "Invalid", "details": {"causes": causes}}
    error = error_from_status(422, body, kind="Job", name="j")
    assert isinstance(error, InvalidJobError)
    non_blank = [c for c in causes if c["message"]]
    assert [p.path for p in error.problems] == [c["field"] for c in non_blank]
    assert all(len(p.message) <= 400 for p in error.problems)
