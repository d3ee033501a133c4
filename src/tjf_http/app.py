"""The application factory: one aiohttp app over one :class:`~tjf_core.service.JobService`.

``make_app`` wires the route table (:mod:`tjf_http.routes`) to the shared operations through
each route's flavour, installs the middlewares, and gives the app its state through
``web.AppKey``s. Resources with a lifetime (the thread pools) are released through
``cleanup_ctx``; log followers are told to end on shutdown, so a stopping server does not wait
for streams that would never finish. Listeners are not made here (:mod:`tjf_http.server`
binds them), so tests and embedders can serve the app however they like.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from tjf_core.service import JobService
from tjf_http.auth import Listeners
from tjf_http.executor import CoreCalls, never_blocks
from tjf_http.legacy import LEGACY
from tjf_http.metrics import CONTENT_TYPE, Metrics
from tjf_http.middleware import add_request_id, authenticate, errors, observe
from tjf_http.modern import MODERN
from tjf_http.openapi import openapi_document
from tjf_http.operations import OPERATIONS, Call, Flavour, Operation
from tjf_http.routes import ROUTES, Route
from tjf_http.settings import HttpSettings
from tjf_http.state import (
    CALLER,
    CALLS,
    CLOCK,
    LISTENERS,
    METRICS,
    ROUTE_INFO,
    SERVICE,
    SETTINGS,
    RouteInfo,
)

__all__ = ["make_app"]

_FLAVOURS: dict[str, Flavour] = {"modern": MODERN, "legacy": LEGACY, "ops": MODERN}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_app(
    service: JobService, settings: HttpSettings, *, listeners: Listeners | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> web.Application:
    """The API over ``service``. ``listeners`` records the bound sockets (the server fills it);
    ``clock`` is the time certificates are checked against."""
    app = web.Application(client_max_size=settings.server.max_body_bytes,
                          middlewares=[observe, errors, authenticate])
    app[SERVICE] = service
    app[SETTINGS] = settings
    app[LISTENERS] = listeners if listeners is not None else Listeners()
    app[CLOCK] = clock
    metrics = Metrics()
    calls = CoreCalls(threads=settings.server.threads,
                      timeout=settings.server.call_timeout_seconds,
                      followers=settings.server.log_followers,
                      inline=never_blocks(service.runtime))
    metrics.followers.set_function(lambda: calls.followers)
    app[METRICS] = metrics
    app[CALLS] = calls
    app[ROUTE_INFO] = _register(app, ROUTES)
    app.cleanup_ctx.append(_thread_pools)
    app.on_shutdown.append(_end_followers)
    app.on_response_prepare.append(add_request_id)
    return app


def _register(app: web.Application, routes: tuple[Route, ...]) -> dict[str, RouteInfo]:
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path.rstrip("/"), []).append(route)
    info: dict[str, RouteInfo] = {}
    for path, same_path in by_path.items():
        for spelling in (path, path + "/"):
            for route in same_path:  # one resource per spelling: 405 lists every method
                app.router.add_route(route.method, spelling, _handler(route))
            info[spelling] = RouteInfo(template=path, flavour=_FLAVOURS[same_path[0].flavour],
                                       public=same_path[0].public)
    return info


def _handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    if route.operation == "metrics":
        return _metrics
    if route.operation == "openapi":
        return _openapi(json.dumps(openapi_document()).encode())
    operation: Operation = OPERATIONS[route.operation]
    flavour = _FLAVOURS[route.flavour]

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        call = Call(request=request, flavour=flavour, service=app[SERVICE], calls=app[CALLS],
                    caller=request.get(CALLER))
        outcome = await operation(call)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        return flavour.render(outcome)

    handle.__name__ = route.operation
    return handle


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].exposition(),
                        headers={"Content-Type": CONTENT_TYPE})


def _openapi(document: bytes) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # Built once per app, from the same route table the app serves.
    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    return openapi


async def _thread_pools(app: web.Application) -> AsyncIterator[None]:
    yield
    app[CALLS].close()


async def _end_followers(app: web.Application) -> None:
    app[CALLS].stop_following()
