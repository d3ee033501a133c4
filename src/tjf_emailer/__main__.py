"""``tjf-emailer``: the emailer process, wiring the daemon to Kubernetes.

One :class:`Emailer` runs, for the life of the process: the health server, the ConfigMap
watch (settings change live), and the leader election. Only while this replica leads does
it watch pods and send: each term builds an :class:`~tjf_emailer.daemon.EmailerDaemon` and
a pod watch, and ends either

* cleanly (SIGTERM/SIGINT): the watch stops, what it still queued is fed, every pending
  digest is composed into the spool, the spool is sent for at most ``shutdown_grace``
  seconds (what remains stays spooled), and the Lease is released with the hand-over (the
  pod version seen up to, and the time watermark), so the standby takes over at once and
  repeats nothing; or
* at once, when the Lease could not be renewed: sending stops, pending digests go to the
  spool, and the replica campaigns again.

Bad settings or credentials end the process with one line on stderr, never a traceback.
``--check-config`` prints the effective settings as TOML (the username masked) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import attrs

from tjf_core.errors import ConfigurationError, TjfError
from tjf_emailer.configwatch import ConfigWatcher
from tjf_emailer.daemon import WATERMARK_MARGIN, EmailerDaemon, utc_now
from tjf_emailer.health import (
    EmailerMetrics,
    HealthServer,
    MeteredSender,
    MeteredSpool,
    WatchStats,
    health_app,
)
from tjf_emailer.kube import ListWatch, pod_watch, resource_version_of
from tjf_emailer.kubeapi import KubeApi
from tjf_emailer.leader import Handoff, LeaderElector, LeaseTiming
from tjf_emailer.settings import KEYS, EmailerSettings, load_settings

__all__ = ["Emailer", "describe_settings", "main", "own_namespace"]

log = logging.getLogger("tjf_emailer")

#: How long a term's end waits for the watch's threads to hand over what they queued.
_DRAIN_SECONDS = 2.0
_SECRET_KEYS = frozenset({"smtp_username"})
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(configured: str, *, service_account: Path = _SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The emailer's namespace: as configured, else its pod's, else ``default``."""
    if configured:
        return configured
    try:
        return service_account.read_text("utf-8").strip() or "default"
    except OSError:
        return "default"


def _at_most(pod: Mapping[str, Any], version: int) -> bool:
    metadata = pod.get("metadata")
    found = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return isinstance(found, str) and found.isdigit() and int(found) <= version


class Emailer:
    """The emailer process: health server, ConfigMap watch, leader election, daemon terms."""

    def __init__(
        self, settings: EmailerSettings, *, api: KubeApi, identity: str | None = None,
        clock: Callable[[], datetime] = utc_now, tick: float = 1.0,
    ) -> None:
        cluster = settings.cluster
        self.settings = settings
        self.api = api
        self.namespace = own_namespace(cluster.namespace)
        self.identity = (identity or cluster.lease_identity
                         or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")
        self.stats = WatchStats()
        self.elector: LeaderElector | None = None
        if cluster.lease_name:
            self.elector = LeaderElector(
                api, namespace=self.namespace, name=cluster.lease_name, identity=self.identity,
                timing=LeaseTiming(lease_duration=cluster.lease_duration,
                                   renew_deadline=cluster.renew_deadline,
                                   retry_period=cluster.retry_period),
                handoff=self._handoff,
            )
        self.metrics = EmailerMetrics(stats=self.stats, is_leader=self.is_leader)
        try:
            self.spool = MeteredSpool(settings.send.spool_dir, metrics=self.metrics)
        except OSError as error:
            raise ConfigurationError(
                f"spool_dir {settings.send.spool_dir} cannot be used: {error.strerror}"
            ) from None
        self.daemon: EmailerDaemon | None = None
        self.watch: ListWatch | None = None
        #: The health server's port once it listens.
        self.health_port: int | None = None
        self._clock = clock
        self._tick = tick
        self._stop = asyncio.Event()
        self._started = self.stats.clock()
        #: Per watched collection, the version up to which everything was fed to the daemon.
        self._fed: dict[str, str] = {}
        #: A version up to which everything was spooled (the hand-over for the next leader).
        self._safe: str | None = None

    def is_leader(self) -> bool:
        if self.elector is not None:
            return self.elector.is_leader
        return self.daemon is not None

    def apply(self, settings: EmailerSettings) -> None:
        """New settings from the ConfigMap: for the running daemon and the next one."""
        self.settings = settings
        logging.getLogger("tjf_emailer").setLevel(logging.DEBUG if settings.debug else
                                                  logging.INFO)
        if self.daemon is not None:
            self.daemon.update_settings(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; leaves after the last term ended (see the docstring)."""
        self._stop = stop
        cluster = self.settings.cluster
        app = health_app(report=self.report, metrics=self.metrics, spool=self.spool)
        server = HealthServer(app, host=cluster.health_address, port=cluster.health_port)
        async with server:
            self.health_port = server.port
            config: asyncio.Task[None] | None = None
            if cluster.configmap_name:
                watcher = ConfigWatcher(namespace=self.namespace, name=cluster.configmap_name,
                                        base=self.settings, apply=self.apply,
                                        metrics=self.metrics)
                config = asyncio.create_task(
                    watcher.run(self.api, timeout_seconds=self.settings.watch.pods_timeout),
                    name="tjf-emailer-config")
            try:
                if self.elector is not None:
                    await self.elector.run(self.lead, stop=stop)
                else:
                    await self.lead(None)
            finally:
                if config is not None:
                    config.cancel()
                    await asyncio.gather(config, return_exceptions=True)

    async def lead(self, handoff: Handoff | None) -> Handoff | None:
        """One term as leader: watch, compose and send until stopped (or cancelled)."""
        settings = self.settings
        self.stats.begin()
        daemon = EmailerDaemon(settings=settings, spool=self.spool, clock=self._clock,
                               tick=self._tick,
                               history_before=handoff.watermark if handoff else None)
        daemon.sender = MeteredSender(metrics=self.metrics, spool=self.spool,
                                      settings=lambda: daemon.settings, clock=self._clock)
        known = handoff.resource_version if handoff is not None else None
        watch = pod_watch(self.api, namespaces=settings.cluster.watch_namespaces,
                          timeout_seconds=settings.watch.pods_timeout, stats=self.stats)
        self.daemon, self.watch = daemon, watch
        self._fed = {}
        self._safe = known
        log.info("watching pods and sending (after %s)",
                 f"version {known}" if known else "a fresh start")
        try:
            async with daemon:
                feeding = asyncio.create_task(
                    self._feed(daemon, watch, int(known) if known else None),
                    name="tjf-emailer-feed")
                stopping = asyncio.create_task(self._stop.wait())
                try:
                    await asyncio.wait({feeding, stopping},
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    watch.stop()
                    # What the watch queued before it stopped is fed, so it is spooled too.
                    await asyncio.wait({feeding}, timeout=_DRAIN_SECONDS)
                    feeding.cancel()
                    for outcome in await asyncio.gather(feeding, return_exceptions=True):
                        if isinstance(outcome, Exception):
                            log.error("reading the pod watch failed: %r", outcome)
            # Left the daemon: every pending digest is in the spool.
            await self._flush(daemon)
            return self._handoff()
        finally:
            self.daemon = self.watch = None

    async def _feed(self, daemon: EmailerDaemon, watch: ListWatch, known: int | None) -> None:
        pipeline = daemon.pipeline
        async for item in watch:
            version = resource_version_of(item.object)
            if item.type in ("SYNCED", "BOOKMARK"):
                if version is not None:
                    self._fed[item.path] = version
                continue
            if item.type != "LISTED" and version is not None:
                self._fed[item.path] = version
            self.metrics.pod_events.inc()
            now = self._clock()
            if known is not None and _at_most(item.object, known):
                # The previous leader saw this pod as it is now, and mailed what it showed.
                pipeline.remember(item.object, now=now)
                continue
            news = pipeline.feed(item.object, now=now)
            if news:
                self.metrics.notifications.inc(news)

    async def _flush(self, daemon: EmailerDaemon) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.cluster.shutdown_grace
        while (left := deadline - loop.time()) > 0 and await self._spooled() > 0:
            try:
                result = await asyncio.wait_for(daemon.sender.send_round(), left)
            except TimeoutError:
                break
            if result.server_failed or not (result.sent or result.logged or result.buried):
                break
        remaining = await self._spooled()
        if remaining:
            log.warning("%d emails stay in the spool %s for the next start",
                        remaining, self.spool.directory)

    async def _spooled(self) -> int:
        return await asyncio.to_thread(self.spool.__len__)

    def _watermark(self, daemon: EmailerDaemon) -> datetime:
        return daemon.pipeline.book.watermark(now=self._clock()) - WATERMARK_MARGIN

    def _handoff(self) -> Handoff | None:
        """What this term spooled: for the Lease, in case another replica takes over."""
        daemon, watch = self.daemon, self.watch
        if daemon is None or watch is None:
            return None
        fed = [self._fed.get(path) for path in watch.paths]
        if daemon.pending == 0 and all(v is not None and v.isdigit() for v in fed):
            # Nothing fed waits to be spooled: all up to the smallest version was spooled.
            self._safe = str(min(int(v) for v in fed if v is not None))
        return Handoff(resource_version=self._safe, watermark=self._watermark(daemon))

    async def report(self) -> tuple[bool, dict[str, Any]]:
        """What /healthz shows, and whether this replica is healthy."""
        window = self.settings.cluster.watch_stuck_after
        leading = self.is_leader()
        stats = self.stats
        body: dict[str, Any] = {
            "identity": self.identity, "leader": leading,
            "spool": await self._spooled(),
            "watch": {"lag_seconds": round(stats.lag(), 3), "restarts": stats.restarts,
                      "relists": stats.relists, "events": stats.events,
                      "last_error": stats.last_error},
        }
        if leading:
            healthy = not stats.stuck(window)
        else:
            # A standby that cannot read the Lease could not take over.
            contact = self.elector.last_contact if self.elector is not None else None
            since = stats.clock() - (self._started if contact is None else contact)
            body["lease_contact_seconds_ago"] = None if contact is None else round(since, 3)
            healthy = since <= window
        body["watch"]["stuck"] = leading and not healthy
        body["status"] = "ok" if healthy else "stuck"
        return healthy, body


# --- the command ----------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, timedelta):
        return repr(value.total_seconds())
    if isinstance(value, Enum):
        return json.dumps(value.value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def describe_settings(settings: EmailerSettings) -> str:
    """The effective settings as TOML (readable by ``--config``), secrets masked."""
    lines = ["# tjf-emailer: effective settings (defaults < file < environment)"]
    for key, (group, field, _) in KEYS.items():
        value = getattr(getattr(settings, group) if group else settings, field)
        if value is None:
            lines.append(f"# {key} is not set")
        elif key in _SECRET_KEYS:
            lines.append(f'{key} = "********"')
        else:
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _tune_gc() -> None:
    # Parsing pod JSON makes many short-lived objects; at Python's default threshold the
    # young-generation scans take about a quarter of the pipeline's time (bench/emailer.py).
    # What exists after start-up lives for the whole process: no need to scan it ever again.
    gc.set_threshold(20_000, 10, 10)
    gc.freeze()


async def _serve(settings: EmailerSettings, api: KubeApi) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(name: str) -> None:
        if stop.is_set():
            log.warning("%s again: already stopping", name)
        else:
            log.info("%s: stopping (sending what is spooled for at most %g s)",
                     name, settings.cluster.shutdown_grace)
        stop.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, request_stop, signal.Signals(number).name)
    emailer = Emailer(settings, api=api)
    emailer.apply(settings)
    _tune_gc()
    await emailer.run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tjf-emailer",
        description="Emails Toolforge tools about their jobs (pods of jobs asking for emails).")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file (TOML; default: $TJF_EMAILER_CONFIG); "
                             "TJF_EMAILER_<KEY> variables override it")
    parser.add_argument("--kubeconfig", type=Path, metavar="FILE",
                        help="Kubernetes credentials (default: the kubeconfig setting, "
                             "else the in-cluster service account)")
    parser.add_argument("--check-config", action="store_true",
                        help="print the effective settings and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(path=args.config, environ=os.environ)
        if args.kubeconfig is not None:
            settings = attrs.evolve(settings, cluster=attrs.evolve(
                settings.cluster, kubeconfig=args.kubeconfig))
        if args.check_config:
            sys.stdout.write(describe_settings(settings))
            return 0
        api = KubeApi.from_kubeconfig(settings.cluster.kubeconfig)
    except TjfError as error:
        print(f"tjf-emailer: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings, api))
    except TjfError as error:
        print(f"tjf-emailer: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
