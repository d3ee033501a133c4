"""What a failed Kubernetes API call means, said as one of the core's errors.

The apiserver answers a refusal with an HTTP status and a ``Status`` object (``reason``,
``message``, ``details.causes``); the transport fails with urllib3 exceptions. Callers of the
runtime must never see either: :func:`error_from_status` and :func:`error_from_exception` turn
them into :mod:`tjf_core.errors` with messages a user can act on. Both are pure (no I/O), so
every mapping is unit-tested without a cluster.

======================================  =====================================================
Kubernetes says                         Core error
======================================  =====================================================
409 AlreadyExists                       AlreadyExistsError("a job named 'x' already exists")
409 Conflict (stale resourceVersion)    ConcurrentChangeError, a RuntimeUnavailableError (retry)
403 ``exceeded quota`` / ``failed       QuotaExceededError naming the quota and resources
quota``
403 LimitRanger (``… usage per          LimitExceededError naming cpu or memory and the bound
Container is …``)
403 otherwise                           ForbiddenError
404                                     NotFoundError
400, 422                                InvalidJobError with the server's causes, field by field
401                                     AuthenticationError
429, 5xx, no connection, timeouts       RuntimeUnavailableError("… try again in a minute")
TLS: the API's certificate is not       ConfigurationError (a wrong CA never fixes itself)
trusted
======================================  =====================================================
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Mapping
from typing import Any

import urllib3.exceptions
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
from tjf_core.quota import parse_quota_refusal, quota_exceeded_message

__all__ = [
    "RETRY_HINT",
    "ConcurrentChangeError",
    "error_from_exception",
    "error_from_status",
    "status_message",
]

RETRY_HINT = "try again in a minute"
#: Server messages can embed whole objects (a 422 on a Job prints its pod template).
_MAX_MESSAGE = 400
_LIMIT = re.compile(
    r"(?P<bound>maximum|minimum) (?P<resource>cpu|memory|ephemeral-storage) usage per "
    r"(?P<scope>Container|Pod) is (?P<allowed>[^,\]\s]+), but (?:limit|request) is "
    r"(?P<asked>[^,\]\s]+)"
)


class ConcurrentChangeError(RuntimeUnavailableError):
    """409 Conflict: the object changed since it was read (a controller updated its status).

    A caller that read it first can read it again and retry; anyone else is told to.
    """


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE:
        return text
    # The middle goes: the apiserver writes "Invalid value: <the whole value>: <the reason>",
    # and the reason at the end ("field is immutable") is what matters.
    tail = _MAX_MESSAGE // 3
    return text[: _MAX_MESSAGE - tail - 3] + " … " + text[-tail:]


def _status_body(body: bytes | str | Mapping[str, Any] | None) -> tuple[Mapping[str, Any], str]:
    """The Status object (``{}`` if the body is not one) and a text to show for it."""
    if body is None:
        return {}, ""
    if isinstance(body, Mapping):
        return body, str(body.get("message") or "")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}, text.strip()
    if not isinstance(parsed, dict):
        return {}, text.strip()
    return parsed, str(parsed.get("message") or "")


def status_message(body: bytes | str | Mapping[str, Any] | None) -> str:
    """The human message of an error body (its Status ``message``, else the text), shortened."""
    return _clip(_status_body(body)[1])


def _causes(status: Mapping[str, Any]) -> list[Problem]:
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, Mapping) else None
    found: list[Problem] = []
    for cause in causes if isinstance(causes, list) else ():
        if isinstance(cause, Mapping) and cause.get("message"):
            found.append(Problem(str(cause.get("field") or ""), _clip(str(cause["message"]))))
    return found


def _limit_problems(message: str) -> list[Problem]:
    found = []
    for match in _LIMIT.finditer(message):
        resource, allowed, asked = match["resource"], match["allowed"], match["asked"]
        if match["bound"] == "maximum":
            text = (f"{asked} is above the limit of {allowed} per job in this tool's namespace; "
                    "ask for less or request a quota increase")
        else:
            text = (f"{asked} is below the minimum of {allowed} per job in this tool's "
                    f"namespace; ask for at least {allowed}")
        found.append(Problem(resource, text))
    return found


def _forbidden(message: str, tool: str | None) -> TjfError:
    quota = quota_exceeded_message(message)
    if quota is not None:
        refusal = parse_quota_refusal(message)
        if refusal is not None and not refusal.must_specify:
            quota += ": delete jobs that are no longer needed or request a quota increase"
        return QuotaExceededError(quota)
    limits = _limit_problems(message)
    if limits:
        return LimitExceededError(limits)
    who = f"tool {tool!r}" if tool else "this tool"
    return ForbiddenError(f"Kubernetes does not allow {who} to do this: {_clip(message)}")


def error_from_status(
    status: int, body: bytes | str | Mapping[str, Any] | None, *,
    kind: str | None = None, name: str | None = None, tool: str | None = None,
    credentials: str | None = None,
) -> TjfError:
    """The core error for an API answer with HTTP ``status`` and error ``body``.

    ``kind`` and ``name`` say which object the request was about, ``tool`` for whom and
    ``credentials`` with what (``the client certificate of tool 'x' (…)``); they only shape
    the message.
    """
    parsed, raw = _status_body(body)
    message = _clip(raw) or f"HTTP {status}"
    reason = parsed.get("reason")
    details = parsed.get("details")
    if isinstance(details, Mapping) and details.get("name"):
        name = name or str(details["name"])
    what = f"{kind} {name!r}" if kind and name else (repr(name) if name else "the object")
    if status == 409:
        if reason == "AlreadyExists":
            return AlreadyExistsError(f"a job named {name!r} already exists" if name else message)
        return ConcurrentChangeError(
            f"{what} was changed by another request at the same moment: {RETRY_HINT} ({message})"
        )
    if status == 403:
        return _forbidden(raw, tool)
    if status == 404:
        if kind and name:
            return NotFoundError(f"{kind} {name!r} does not exist")
        return NotFoundError(f"not found: {message}")
    if status in (400, 422):
        problems = _causes(parsed) or [Problem("", message)]
        return InvalidJobError(problems, summary=f"Kubernetes refused {what}")
    if status == 401:
        who = credentials or (f"the credentials of tool {tool!r}" if tool else "the credentials")
        return AuthenticationError(f"the Kubernetes API did not accept {who}: {message}")
    if status == 429 or status >= 500:
        return RuntimeUnavailableError(
            f"Kubernetes API unavailable (HTTP {status}: {message}); {RETRY_HINT}"
        )
    return TjfError(f"unexpected answer of the Kubernetes API: HTTP {status}: {message}")


def _connection_detail(error: BaseException) -> str:
    # NewConnectionError is a ConnectTimeoutError to urllib3, but is not a timeout.
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
        error, urllib3.exceptions.NewConnectionError
    ):
        return "no connection within the timeout"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "no answer within the timeout"
    text = str(error)
    # "HTTPSConnection(host=…, port=…): Failed to establish a new connection: [Errno 111] …"
    _, marker, rest = text.partition("new connection: ")
    return _clip(rest if marker else text) or type(error).__name__


def _untrusted(detail: str, server: str) -> ConfigurationError:
    return ConfigurationError(
        f"the certificate of the Kubernetes API at {server} cannot be verified ({_clip(detail)}): "
        "check the certificate-authority of the kubeconfig or the ca_file setting"
    )


def error_from_exception(error: BaseException, *, server: str) -> TjfError:
    """The core error for a request to ``server`` that got no HTTP answer at all.

    Anything that is not a TLS trust problem is an outage: the caller should retry later.
    """
    if isinstance(error, TjfError):
        return error
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, ApiException):
        # The client turns urllib3's SSLError into ApiException(status=0, reason=text).
        detail = str(error.reason or "")
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            return _untrusted(detail.splitlines()[-1], server)
        if error.status:
            return error_from_status(int(error.status), error.body)
        return RuntimeUnavailableError(
            f"Kubernetes API unavailable at {server} ({_clip(detail)}); {RETRY_HINT}"
        )
    text = str(error)
    if isinstance(error, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return _untrusted(text, server)
    return RuntimeUnavailableError(
        f"Kubernetes API unavailable at {server} ({_connection_detail(error)}); {RETRY_HINT}"
    )
