"""Prometheus metrics of one application, in a registry of its own (never the global one).

A registry per app keeps two servers in one process (tests, a demo beside production) from
sharing counters. Labels are bounded: ``route`` is the route's template
(``/v1/tool/{tool}/jobs/{name}``), never the path a caller typed, and ``unmatched`` for
requests no route took. Being bounded, the labelled series of each (route, method, status)
are looked up once and kept: the registry's own lookup takes a lock and builds a key each time.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tjf_http_requests", "Requests answered, by route, method and status.",
            ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "tjf_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route and method.",
            ["route", "method"], buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter(
            "tjf_http_errors", "Error answers, by route and error (the error class's name).",
            ["route", "error"], registry=self.registry)
        self.in_flight = Gauge(
            "tjf_http_requests_in_flight", "Requests being handled now.",
            registry=self.registry)
        self.followers = Gauge(
            "tjf_http_log_followers", "Log streams being followed now.", registry=self.registry)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, *, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (self.requests.labels(route, method, str(status)),
                                          self.latency.labels(route, method))
        series[0].inc()
        series[1].observe(seconds)

    def error(self, *, route: str, error: str) -> None:
        self.errors.labels(route, error).inc()

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
