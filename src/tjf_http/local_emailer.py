"""The emailer inside ``tjf-api`` in local mode: the local runtime's pods in, emails out.

On a cluster, ``tjf-emailer`` is a process of its own that watches pods. On one machine the
pods are the local runtime's, which tells its subscribers of every change
(:meth:`tjf_core.local.LocalRuntime.subscribe`), so the same pipeline
(:class:`tjf_emailer.daemon.EmailerDaemon`: policy, digest, compose, spool, send) runs in the
server's event loop, fed by that subscription. Nothing about what is mailed differs.

The subscription calls from the runtime's supervisor thread; :class:`PodBridge` hands each
pod to the event loop (``call_soon_threadsafe``) and keeps the pods of the moments before a
loop is attached, so a pod that changed while the server was starting is not missed.

Settings are the ``[emailer]`` section of the server's configuration, with the keys of
``tjf-emailer`` (:data:`tjf_emailer.settings.KEYS`; ``TJF_EMAILER_<KEY>`` in the environment),
plus ``enabled``. It is off unless configured: ``enabled = true``, or a mail server
(``smtp_server_fqdn``) or a settings file (``config``) named. Local defaults differ from the
cluster's where the cluster's cannot apply: the spool is ``<state_dir>/emailer-spool``, log
tails are read from ``<root>/{tool}``, and emails are sent for real (turning the emailer on is
the request to send; ``send_emails_for_real = false`` logs them instead).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from tjf_core.errors import ConfigurationError
from tjf_emailer.daemon import EmailerDaemon, utc_now
from tjf_emailer.settings import (
    EmailerSettings,
    InvalidSettingsError,
    settings_from_mapping,
    settings_from_toml,
)
from tjf_http.local_settings import LocalModeSettings

__all__ = ["EmbeddedEmailer", "PodBridge", "embedded_emailer_settings"]

log = logging.getLogger("tjf_http.emailer")

Pod = Mapping[str, Any]

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
#: Pods kept while no loop is attached; beyond that the oldest go (only at start-up).
_EARLY_PODS = 10_000


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ConfigurationError(f"emailer.enabled {value!r} is not allowed, use true or false")


def embedded_emailer_settings(section: Mapping[str, Any], *,
                              local: LocalModeSettings) -> EmailerSettings | None:
    """The embedded emailer's settings from the ``[emailer]`` section; None when it is off.

    ``local`` must be resolved (:meth:`LocalModeSettings.resolved`): its places are the
    defaults of the spool and the homes.
    """
    values = dict(section)
    enabled_value = values.pop("enabled", None)
    config_file = values.pop("config", None)
    if enabled_value is None:
        enabled = "smtp_server_fqdn" in values or bool(config_file)
    else:
        enabled = _flag(enabled_value)
    if not enabled:
        return None
    base = EmailerSettings()
    base = attrs.evolve(
        base,
        send=attrs.evolve(base.send, for_real=True,
                          spool_dir=Path(str(local.state_dir)) / "emailer-spool"),
        logs=attrs.evolve(base.logs, home_template=f"{local.root}/{{tool}}"),
    )
    try:
        if config_file:
            base = settings_from_toml(Path(str(config_file)), base=base)
        # The parsers take TOML's own types as well as text.
        return settings_from_mapping(typing.cast(Mapping[str, str], values), base=base)
    except InvalidSettingsError as error:
        raise ConfigurationError(f"[emailer] {error}") from None


class PodBridge:
    """Pods from the runtime's thread to an event loop: call it with a pod, from any thread.

    Until :meth:`attach`, pods are kept (at most ``_EARLY_PODS``); after :meth:`detach`, or once
    the loop is closed, they are dropped.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._early: collections.deque[Pod] = collections.deque(maxlen=_EARLY_PODS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Pod] | None = None
        self._detached = False

    def __call__(self, pod: Pod) -> None:
        with self._lock:
            if self._detached:
                return
            if self._loop is None or self._queue is None:
                self._early.append(pod)
                return
            loop, queue = self._loop, self._queue
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody reads
            loop.call_soon_threadsafe(queue.put_nowait, pod)

    def attach(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[Pod]:
        """Start handing pods to ``loop``: the queue they arrive on (early ones first)."""
        queue: asyncio.Queue[Pod] = asyncio.Queue()
        with self._lock:
            while self._early:
                queue.put_nowait(self._early.popleft())
            self._loop, self._queue = loop, queue
        return queue

    def detach(self) -> None:
        """Drop every pod from now on."""
        with self._lock:
            self._detached = True
            self._loop = self._queue = None
            self._early.clear()


async def _pods(queue: asyncio.Queue[Pod]) -> AsyncIterator[Pod]:
    while True:
        yield await queue.get()


class EmbeddedEmailer:
    """The emailer daemon fed by a :class:`PodBridge`: :meth:`start`, then :meth:`stop`."""

    def __init__(self, settings: EmailerSettings, *, bridge: PodBridge,
                 shutdown_grace: float = 10.0, tick: float = 1.0,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.bridge = bridge
        self.shutdown_grace = shutdown_grace
        self._tick = tick
        self._clock = clock
        self.daemon: EmailerDaemon | None = None
        self._queue: asyncio.Queue[Pod] | None = None
        self._feeding: asyncio.Task[int] | None = None

    async def start(self) -> None:
        """Open the spool, start composing and sending, and take pods from the bridge."""
        try:
            daemon = await asyncio.to_thread(EmailerDaemon, settings=self.settings,
                                             clock=self._clock, tick=self._tick)
        except OSError as error:
            raise ConfigurationError(
                f"the emailer's spool_dir {self.settings.send.spool_dir} cannot be used: "
                f"{error.strerror}") from None
        await daemon.__aenter__()
        self.daemon = daemon
        self._queue = self.bridge.attach(asyncio.get_running_loop())
        self._feeding = asyncio.create_task(daemon.consume(_pods(self._queue)),
                                            name="tjf-api-emailer-feed")
        log.info("emailer: mailing about local jobs via %s:%d (%s)", self.settings.smtp.host,
                 self.settings.smtp.port,
                 "sending" if self.settings.send.for_real else "logging, not sending")

    async def stop(self) -> None:
        """Feed what arrived, spool every pending digest, send for ``shutdown_grace`` at most.

        What could not be sent stays in the spool for the next start.
        """
        self.bridge.detach()
        daemon, self.daemon = self.daemon, None
        if daemon is None:
            return
        if self._feeding is not None:
            self._feeding.cancel()
            await asyncio.gather(self._feeding, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            daemon.pipeline.feed(self._queue.get_nowait(), now=self._clock())
        await daemon.stop()
        await _send_for(daemon, seconds=self.shutdown_grace)


async def _send_for(daemon: EmailerDaemon, *, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0 and await asyncio.to_thread(
            daemon.spool.__len__) > 0:
        try:
            result = await asyncio.wait_for(daemon.sender.send_round(), left)
        except TimeoutError:
            break
        if result.server_failed or not (result.sent or result.logged or result.buried):
            break
    remaining = await asyncio.to_thread(daemon.spool.__len__)
    if remaining:
        log.warning("emailer: %d emails stay in the spool %s for the next start", remaining,
                    daemon.spool.directory)
