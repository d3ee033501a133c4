"""Binding the listeners, serving until told to stop, and stopping gracefully.

One ``web.AppRunner`` serves the app on every configured listener (a site each): the direct
TLS port, the trusted unix socket or loopback port, the ops port, and in local mode the local
unix socket (:mod:`tjf_http.local`). Each bound address is recorded in the app's
:class:`~tjf_http.auth.Listeners` with its kind, which is how a request is later known to come
from the trusted proxy and not from anyone else.

The unix sockets (trusted and local) are bound by hand (:func:`bind_unix_socket`) and given
their mode before they listen, so there is no moment in which anyone else may connect; the
process's umask is never touched.

Stopping (SIGTERM, SIGINT): the listening sockets close first (new connections are refused),
log followers are told to end, requests in flight get ``shutdown_grace_seconds`` to finish,
and then the rest is cancelled and the thread pools released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from tjf_core.errors import ConfigurationError
from tjf_http.auth import ListenerKind, Listeners
from tjf_http.settings import HttpSettings, TlsListenerSettings
from tjf_http.state import LISTENERS

__all__ = ["Server", "bind_unix_socket", "serve", "tls_context"]

log = logging.getLogger(__name__)


def tls_context(tls: TlsListenerSettings) -> ssl.SSLContext:
    """The direct listener's TLS: our certificate, and client certificates REQUIRED."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(f"tls.cert_file {tls.cert_file!r} / tls.key_file "
                                 f"{tls.key_file!r} cannot be loaded: {error}") from None
    try:
        context.load_verify_locations(cafile=str(tls.client_ca_file))
    except (OSError, ssl.SSLError) as error:
        raise ConfigurationError(f"tls.client_ca_file {tls.client_ca_file!r} cannot be "
                                 f"loaded: {error}") from None
    return context


def bind_unix_socket(path: str, mode: int, *, setting: str) -> socket.socket:
    """A unix socket bound at ``path`` with permissions ``mode``, its directory made; not
    listening yet (``setting`` names the path's setting in error messages).

    No umask is changed (it is the whole process's, and job processes may be starting):
    until ``listen()``, which the caller does after this returns, a connection is refused
    whatever the file's permissions, so setting them after binding leaves no window. A socket
    left by a server that stopped uncleanly is replaced; one a live server answers on, or any
    other kind of file, is refused (ConfigurationError).
    """
    target = Path(path)
    try:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"{setting} {path!r}: its directory cannot be made: "
                                 f"{error.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigurationError(f"{setting} {path!r} exists and is not a socket: "
                                     "refusing to replace it")
        if _answers(path):
            raise ConfigurationError(f"{setting} {path!r}: another server listens there: "
                                     "stop it first, or listen elsewhere")
        os.unlink(path)  # left by a server that did not stop cleanly
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
    except OSError as error:
        sock.close()
        raise ConfigurationError(f"{setting} {path!r} cannot be bound: "
                                 f"{error.strerror}") from None
    return sock


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


class Server:
    """The listeners of one app; ``start()``, then ``stop()``."""

    def __init__(self, app: web.Application, settings: HttpSettings) -> None:
        self.app = app
        self.settings = settings
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    shutdown_timeout=settings.server.shutdown_grace_seconds)
        #: The bound addresses by kind (ports chosen by the system included).
        self.addresses: dict[ListenerKind, list[object]] = {kind: [] for kind in ListenerKind}
        self._unix_paths: list[str] = []

    @property
    def listeners(self) -> Listeners:
        return self.app[LISTENERS]

    async def start(self) -> None:
        settings = self.settings
        await self.runner.setup()
        try:
            if settings.tls.enabled:
                tls = settings.tls
                await self._start(web.TCPSite(self.runner, tls.host, tls.port,
                                              ssl_context=tls_context(tls)),
                                  ListenerKind.DIRECT, expected=(tls.host, tls.port))
            trusted = settings.trusted
            if trusted.unix_socket is not None:
                sock = bind_unix_socket(trusted.unix_socket, trusted.mode,
                                        setting="trusted.unix_socket")
                self._unix_paths.append(trusted.unix_socket)
                await self._start(web.SockSite(self.runner, sock), ListenerKind.TRUSTED,
                                  expected=trusted.unix_socket)
            local = settings.local
            if local is not None and local.socket is not None:
                sock = bind_unix_socket(local.socket, local.socket_permissions,
                                        setting="local.socket")
                self._unix_paths.append(local.socket)
                await self._start(web.SockSite(self.runner, sock), ListenerKind.LOCAL,
                                  expected=local.socket)
            if trusted.host is not None and trusted.port is not None:
                await self._start(web.TCPSite(self.runner, trusted.host, trusted.port),
                                  ListenerKind.TRUSTED, expected=(trusted.host, trusted.port))
            if settings.ops.host is not None:
                ops = settings.ops
                await self._start(web.TCPSite(self.runner, ops.host, ops.port),
                                  ListenerKind.OPS, expected=(ops.host, ops.port))
        except BaseException:
            await self.stop()
            raise

    async def _start(self, site: web.BaseSite, kind: ListenerKind, *, expected: object) -> None:
        # Known before binding where possible, so no early connection is refused as unknown.
        if not (isinstance(expected, tuple) and expected[1] == 0):
            self.listeners.add(expected, kind)
        before = set(self.runner.addresses)
        try:
            await site.start()
        except OSError as error:
            raise ConfigurationError(f"cannot listen on {site.name}: {error.strerror}") from None
        for address in self.runner.addresses:
            if address not in before:
                self.listeners.add(address, kind)
                self.addresses[kind].append(address)
        log.info("listening on %s (%s)", site.name, kind.value)

    async def stop(self) -> None:
        """Close the listeners, let requests in flight finish (grace period), clean up."""
        await self.runner.cleanup()
        for path in self._unix_paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._unix_paths = []


async def serve(
    app: web.Application, settings: HttpSettings, *,
    ready: Callable[[Server], None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, then stop gracefully."""
    server = Server(app, settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        if ready is not None:
            ready(server)
        await stop.wait()
        log.info("stopping: no new connections; requests in flight get %g s",
                 settings.server.shutdown_grace_seconds)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await server.stop()
    log.info("stopped")
