"""Health and metrics of the emailer: ``/healthz`` for Kubernetes probes, ``/metrics`` for
Prometheus, on a small aiohttp server (port 8080 by default).

``/healthz`` answers JSON: whether this replica leads, the pod watch's lag (seconds since its
last successful list, watch start or event, bookmarks included), its restarts and relists,
and how many emails wait in the spool. It answers 503 when the watch is stuck (no such sign
of life for ``watch_stuck_after`` seconds, while leading) or, on a standby, when the Lease
could not be read for as long: a replica that cannot take over is not healthy either.

Metrics live in a dedicated :class:`~prometheus_client.CollectorRegistry` per
:class:`EmailerMetrics`, so tests (and two emailers in one process) do not share counters.
Counting happens at the edges: :class:`MeteredSpool` counts what is spooled and
:class:`MeteredSender` what each sending round did; the watch counts into
:class:`WatchStats` from its threads, read when scraped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tjf_core.errors import ConfigurationError
from tjf_emailer.sender import RoundResult, Sender
from tjf_emailer.spool import Spool, SpooledEmail

__all__ = [
    "EmailerMetrics",
    "HealthReport",
    "HealthServer",
    "MeteredSender",
    "MeteredSpool",
    "WatchStats",
    "health_app",
]


class WatchStats:
    """What the pod watch did, for health and metrics; written by the watch's threads."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.started_at = clock()
        #: The last successful list page, watch start or watch event (bookmarks too).
        self.last_activity: float | None = None
        self.lists = 0
        self.relists = 0
        self.watches = 0
        self.restarts = 0
        self.events = 0
        self.last_error: str | None = None

    def begin(self) -> None:
        """A new watch starts (this replica became leader): its lag counts from now."""
        with self._lock:
            self.started_at = self.clock()
            self.last_activity = None

    def touch(self, *, events: int = 0) -> None:
        with self._lock:
            self.last_activity = self.clock()
            self.events += events

    def count(self, what: str, *, error: str | None = None) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)
            if error is not None:
                self.last_error = error

    def lag(self) -> float:
        """Seconds since the last sign that the watch works (since it began, before any)."""
        last = self.last_activity
        return max(0.0, self.clock() - (self.started_at if last is None else last))

    def stuck(self, window: float) -> bool:
        return self.lag() > window


class _Live(Collector):
    """Values read when scraped: the watch's counters, leadership, the spool's size."""

    def __init__(self, metrics: EmailerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        stats = self._metrics.stats
        for name, value, text in (
            ("watch_restarts", stats.restarts, "Pod watches restarted after an error."),
            ("watch_relists", stats.relists, "Pod lists after the watch expired (410 Gone)."),
            ("watch_requests", stats.watches, "Pod watch requests opened."),
        ):
            yield CounterMetricFamily(f"tjf_emailer_{name}", text, value=value)
        yield GaugeMetricFamily("tjf_emailer_watch_lag_seconds",
                                "Seconds since the pod watch last showed it works.",
                                value=stats.lag())
        yield GaugeMetricFamily("tjf_emailer_is_leader", "1 when this replica sends emails.",
                                value=1.0 if self._metrics.is_leader() else 0.0)
        yield GaugeMetricFamily("tjf_emailer_spool_emails", "Emails waiting in the spool.",
                                value=self._metrics.spool_size)


class EmailerMetrics:
    """The emailer's Prometheus metrics, in a registry of their own."""

    def __init__(self, *, stats: WatchStats | None = None,
                 is_leader: Callable[[], bool] = lambda: False) -> None:
        self.registry = CollectorRegistry()
        self.stats = stats if stats is not None else WatchStats()
        self.is_leader = is_leader
        self.spool_size = 0

        def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"tjf_emailer_{name}", text, labels, registry=self.registry)

        self.pod_events = counter("pod_events", "Pod sightings the watch handed over.")
        self.notifications = counter("notifications_queued",
                                     "Job events that are news for a digest email.")
        self.spooled = counter("emails_spooled", "Emails composed into the spool.")
        self.sent = counter("emails_sent", "Emails the mail server accepted.")
        self.logged = counter("emails_logged", "Emails logged instead of sent (not for real).")
        self.failed = counter("emails_failed", "Emails the mail server did not take.",
                              ("reason",))
        self.server_failures = counter("smtp_failures",
                                       "Sending rounds that could not use the mail server.")
        self.config_reloads = counter("config_reloads", "ConfigMap changes seen.", ("outcome",))
        self.registry.register(_Live(self))

    def observe_round(self, result: RoundResult) -> None:
        self.sent.inc(result.sent)
        self.logged.inc(result.logged)
        self.failed.labels("deferred").inc(result.deferred)
        self.failed.labels("refused").inc(result.buried)
        if result.server_failed:
            self.server_failures.inc()

    def render(self, spool: Spool | None) -> bytes:
        """The text exposition (blocking: counts the spool's files)."""
        if spool is not None:
            self.spool_size = len(spool)
        return generate_latest(self.registry)


class MeteredSpool(Spool):
    """A spool that counts what is put in it."""

    def __init__(self, directory: Path, *, metrics: EmailerMetrics) -> None:
        super().__init__(directory)
        self._metrics = metrics

    def put(self, data: bytes, *, message_id: str, now: datetime) -> SpooledEmail | None:
        item = super().put(data, message_id=message_id, now=now)
        if item is not None:
            self._metrics.spooled.inc()
        return item


class MeteredSender(Sender):
    """A sender that counts what each round did."""

    def __init__(self, *, metrics: EmailerMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def send_round(self) -> RoundResult:
        result = await super().send_round()
        self._metrics.observe_round(result)
        return result


#: (healthy, what to show): called for every /healthz.
HealthReport = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
_REPORT: web.AppKey[HealthReport] = web.AppKey("report")
_METRICS = web.AppKey("metrics", EmailerMetrics)
_SPOOL = web.AppKey("spool", Spool)


async def _healthz(request: web.Request) -> web.Response:
    healthy, body = await request.app[_REPORT]()
    return web.json_response(body, status=200 if healthy else 503)


async def _metrics(request: web.Request) -> web.Response:
    app = request.app
    spool = app.get(_SPOOL)
    text = await asyncio.to_thread(app[_METRICS].render, spool)
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


def health_app(*, report: HealthReport, metrics: EmailerMetrics,
               spool: Spool | None = None) -> web.Application:
    app = web.Application()
    app[_REPORT] = report
    app[_METRICS] = metrics
    if spool is not None:
        app[_SPOOL] = spool
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    return app


class HealthServer:
    """Serves :func:`health_app` while entered (``async with``); ``port`` is the bound one."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port: int | None = None

    async def __aenter__(self) -> HealthServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise ConfigurationError(
                f"the health server cannot listen on {self._host}:{self._port} "
                f"({error.strerror or error}): set health_address and health_port") from None
        address = self._runner.addresses[0]
        self.port = int(address[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()
