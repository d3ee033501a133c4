"""The middlewares every request passes, outermost first: observe, errors, authenticate.

* :func:`observe` names the request (``X-Request-Id``; a trusted proxy's own id is kept),
  finds the listener it came in on, and when it is answered writes one JSON access-log line
  (request id, listener, tool, method, route, status, duration) and the metrics.
* :func:`errors` is the ONE place errors become answers: a core error's ``http_status`` and
  message, aiohttp's 404/405/413/415 in the same JSON, 503 with ``Retry-After``, anything
  unexpected a 500 that carries the request id and never a traceback (that goes to the log).
  The route's flavour shapes the body (legacy routes: ``{"error": …}``); a path no route took
  is legacy when it starts with ``/api/``.
* :func:`authenticate` decides who is calling by the listener's rules (:mod:`tjf_http.auth`);
  the ops listener serves only the public routes.
"""

from __future__ import annotations

import logging
import os
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from tjf_core.errors import AuthenticationError, TjfError
from tjf_http.auth import ListenerKind, identify
from tjf_http.legacy import LEGACY
from tjf_http.modern import MODERN
from tjf_http.operations import HTTP_ERROR_TYPES, Flavour, dumps
from tjf_http.state import (
    CALLER,
    CLOCK,
    LISTENER,
    LISTENERS,
    METRICS,
    REQUEST_ID,
    ROUTE,
    ROUTE_INFO,
    SERVICE,
    SETTINGS,
    RouteInfo,
)

__all__ = ["HttpStatusError", "add_request_id", "authenticate", "errors", "observe"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("tjf_http.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
_ERROR_NAME = web.RequestKey("error_name", str)


class HttpStatusError(TjfError):
    """A transport-level refusal (unknown route, wrong method …) in the error tree's shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        #: The error body's ``type`` (:data:`~tjf_http.operations.HTTP_ERROR_TYPES`).
        self.error_type = HTTP_ERROR_TYPES.get(
            status, "internal" if status >= 500 else "bad_request")


def _route_info(request: web.BaseRequest) -> RouteInfo | None:
    """The matched route's info; found once per request (observe) and kept on it."""
    if not isinstance(request, web.Request):
        return None
    if ROUTE in request:
        return request[ROUTE]
    resource = request.match_info.route.resource
    info = None if resource is None else request.app[ROUTE_INFO].get(resource.canonical)
    request[ROUTE] = info
    return info


def _route_label(request: web.BaseRequest) -> str:
    info = _route_info(request)
    return info.template if info is not None else "unmatched"


def _flavour(request: web.BaseRequest) -> Flavour:
    info = _route_info(request)
    if info is not None:
        return info.flavour
    return LEGACY if request.path.startswith("/api/") else MODERN


def _new_request_id(request: web.Request, kind: ListenerKind | None) -> str:
    if kind is ListenerKind.TRUSTED and request.app[SETTINGS].trusted.accept_request_id:
        given = request.headers.get("X-Request-Id", "")
        if _REQUEST_ID.match(given):
            return given
    return os.urandom(16).hex()  # what uuid4().hex gives, without making a UUID


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    kind = app[LISTENERS].kind_of(request)
    request[LISTENER] = kind
    request[REQUEST_ID] = _new_request_id(request, kind)
    metrics = app[METRICS]
    started = time.monotonic()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except BaseException:
        status = 499  # the client went away or the server is stopping: nothing was answered
        raise
    finally:
        metrics.in_flight.dec()
        seconds = time.monotonic() - started
        route = _route_label(request)
        metrics.observe(route=route, method=request.method, status=status, seconds=seconds)
        if app[SETTINGS].server.access_log and access_log.isEnabledFor(logging.INFO):
            caller = request.get(CALLER)
            access_log.info(dumps({
                "request_id": request[REQUEST_ID],
                "listener": kind.value if kind is not None else None,
                "tool": caller.tool if caller is not None else None,
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "error": request.get(_ERROR_NAME),
            }).decode())


def _from_http(error: web.HTTPException, request: web.Request) -> HttpStatusError:
    status = error.status
    if status == 404:
        message = f"there is no route {request.path!r}"
    elif status == 405:
        allowed = error.headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.path!r}, use {allowed}"
    elif status == 413:
        limit = request.app[SETTINGS].server.max_body_bytes
        message = f"the request body is larger than the limit of {limit} bytes"
    else:
        text = error.text or ""
        message = text if text and not text.startswith(f"{status}:") else error.reason
    return HttpStatusError(status, message)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    allow = None
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow = exc.headers.get("Allow")
        error: TjfError = _from_http(exc, request)
        request[_ERROR_NAME] = type(exc).__name__
    except TjfError as exc:
        error = exc
    except Exception:
        log.exception("request %s (%s %s) failed", request[REQUEST_ID], request.method,
                      request.path)
        error = HttpStatusError(500, f"internal error: please report request id "
                                     f"{request[REQUEST_ID]}")
        request[_ERROR_NAME] = "InternalError"
    status = error.http_status
    request.setdefault(_ERROR_NAME, type(error).__name__)
    request.app[METRICS].error(route=_route_label(request), error=request[_ERROR_NAME])
    if status >= 500:
        log.warning("request %s answered %d: %s", request[REQUEST_ID], status, error)
    response = _flavour(request).render_error(error, status=status,
                                              request_id=request[REQUEST_ID])
    if status == 503:
        response.headers["Retry-After"] = str(request.app[SETTINGS].server.retry_after_seconds)
    if allow is not None:
        response.headers["Allow"] = allow
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    kind = request[LISTENER]
    info = _route_info(request)
    public = info is not None and info.public
    if kind is None:
        raise AuthenticationError("this connection did not come in on a listener of this "
                                  "server: refused")
    if kind is ListenerKind.OPS and not public:
        raise web.HTTPNotFound()
    if not public:
        app = request.app
        request[CALLER] = identify(
            request, kind, identity=app[SERVICE].settings.identity,
            trusted=app[SETTINGS].trusted, now=app[CLOCK]())
    return await handler(request)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer names its request, streams and errors too."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
