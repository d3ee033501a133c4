"""The keys of the application's and each request's state (aiohttp ``AppKey``/``RequestKey``).

Kept apart so the app factory, the middlewares and the handlers share them without importing
each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import attrs
from aiohttp import web

from tjf_core.identity import ToolIdentity
from tjf_core.service import JobService
from tjf_http.auth import ListenerKind, Listeners
from tjf_http.executor import CoreCalls
from tjf_http.metrics import Metrics
from tjf_http.operations import Flavour
from tjf_http.settings import HttpSettings

__all__ = [
    "CALLER",
    "CALLS",
    "CLOCK",
    "LISTENER",
    "LISTENERS",
    "METRICS",
    "REQUEST_ID",
    "ROUTE",
    "ROUTE_INFO",
    "SERVICE",
    "SETTINGS",
    "RouteInfo",
]


@attrs.frozen(kw_only=True)
class RouteInfo:
    """What the middlewares need to know about a matched route."""

    #: The route's template without a trailing slash: the ``route`` label of logs and metrics.
    template: str
    flavour: Flavour
    #: Served without an identity (health, metrics), on every listener.
    public: bool


SERVICE = web.AppKey("service", JobService)
SETTINGS = web.AppKey("settings", HttpSettings)
CALLS = web.AppKey("calls", CoreCalls)
METRICS = web.AppKey("metrics", Metrics)
LISTENERS = web.AppKey("listeners", Listeners)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
#: Route info by the aiohttp resource's canonical path (both slash spellings).
ROUTE_INFO = web.AppKey("route_info", dict[str, RouteInfo])

REQUEST_ID = web.RequestKey("request_id", str)
LISTENER: web.RequestKey[ListenerKind | None] = web.RequestKey("listener")
CALLER = web.RequestKey("caller", ToolIdentity)
#: The matched route's info, looked up once per request (None: no route took it).
ROUTE: web.RequestKey[RouteInfo | None] = web.RequestKey("route")
