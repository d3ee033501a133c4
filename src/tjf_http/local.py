"""``tjf-api`` without a cluster: the local runtime, and who is calling on its unix socket.

In local mode (``runtime = "local"``, the default when no cluster is configured) the server's
runtime is :class:`tjf_core.local.LocalRuntime`: jobs run as processes of this machine, in
``root/<tool>``. The API is served on a unix socket (the *local* listener, bound by
:func:`tjf_http.server.bind_unix_socket`) whose callers are known by the kernel: the socket's
peer credentials (``SO_PEERCRED``) give the caller's uid, the user database its name, and
:func:`tjf_core.local_identity.tool_from_username` its tool. Nothing the request says can
change that: identity headers are never read on this listener. The TLS listener, when
configured, still takes client certificates as usual.

Two kinds of server (:class:`~tjf_http.local_settings.LocalModeSettings`):

* *multi-user* (``local.run_as``, e.g. ``tools.{tool}``, the server running as root): a
  caller must be the unix user ``tools.<tool>`` (401 otherwise: a person's account ``foo`` is
  not the tool ``foo``), and the tool's jobs run as that user;
* *single-user* (``local.single_user``, the default without ``run_as`` for a server not run
  by root): only the server's own uid may call (403 for anyone else); its user name, less the
  prefix if it has one, is the tool, and jobs run as that user. A root server with neither
  setting refuses to start.

:func:`open_local_mode` builds the runtime and the service and starts supervising;
:meth:`LocalMode.install` gives an app the peer identification (:data:`PEERS`) and, when
configured, the embedded emailer (:mod:`tjf_http.local_emailer`), started and stopped with the
app. :meth:`LocalMode.close` stops every job process (the jobs stay defined: the next start
brings continuous jobs back and scheduled ones fire again). Tool homes are the runtime's to
make (``LocalSettings.home_mode``, from ``local.home_mode``).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import pwd
import socket
import struct
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from tjf_core.errors import (
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    InvalidInputError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.local import LocalRuntime, LocalSettings
from tjf_core.local_identity import tool_from_username
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_emailer.settings import EmailerSettings
from tjf_http.local_emailer import EmbeddedEmailer, PodBridge
from tjf_http.local_settings import LocalModeSettings

if TYPE_CHECKING:
    from tjf_http.config import Config

__all__ = [
    "PEERS",
    "LocalMode",
    "PeerIdentifier",
    "identify_peer",
    "local_mode_for",
    "open_local_mode",
    "peer_uid",
]

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: Any) -> int:
    """The uid of the process at the other end of the unix socket ``sock`` (SO_PEERCRED)."""
    _pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(uid)


def _user_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


class PeerIdentifier:
    """Who calls on the local listener: peer uid, then user name, then tool.

    A connection's peer never changes, so its tool is found once per connection.
    ``user_name`` maps a uid to a unix user name (default: the user database). With
    ``only_uid`` (a single-user server: its own uid) every other uid is refused and the
    prefix is optional; without it, a user must have the prefix to be a tool.
    """

    def __init__(self, *, identity: IdentitySettings, prefix: str,
                 user_name: Callable[[int], str] = _user_name,
                 only_uid: int | None = None) -> None:
        self.identity = identity
        self.prefix = prefix
        self.only_uid = only_uid
        self._user_name = user_name
        self._known: weakref.WeakKeyDictionary[Any, ToolIdentity] = (
            weakref.WeakKeyDictionary())

    def identify(self, request: web.BaseRequest) -> ToolIdentity:
        """The calling tool; AuthenticationError (401) when there is none."""
        transport = request.transport
        if transport is None:
            raise AuthenticationError("the connection is gone")
        with contextlib.suppress(TypeError):  # a transport that takes no weak reference
            known = self._known.get(transport)
            if known is not None:
                return known
        tool = self._tool_of(transport.get_extra_info("socket"))
        with contextlib.suppress(TypeError):
            self._known[transport] = tool
        return tool

    def _tool_of(self, sock: Any) -> ToolIdentity:
        try:
            uid = peer_uid(sock)
        except (OSError, AttributeError, struct.error):
            raise AuthenticationError("the caller's unix user cannot be told on this "
                                      "connection (no peer credentials)") from None
        if self.only_uid is not None and uid != self.only_uid:
            raise ForbiddenError(
                f"this server is single-user (local.single_user): only uid {self.only_uid}, "
                f"who runs it, may call it, not uid {uid}; use the machine's multi-user "
                "server (local.run_as) to run jobs as another user")
        try:
            name = self._user_name(uid)
        except KeyError:
            raise AuthenticationError(
                f"the calling uid {uid} has no unix user on this machine, so it is no "
                "tool: run the client as the tool's user") from None
        try:
            tool = tool_from_username(name, prefix=self.prefix, settings=self.identity,
                                      require_prefix=self.only_uid is None)
            return ToolIdentity.for_tool(tool, settings=self.identity)
        except InvalidInputError as error:
            raise AuthenticationError(f"{error}: run the client as the tool's unix user "
                                      f"({self.prefix}<tool>)") from None


#: The app's peer identification, set by :meth:`LocalMode.install`.
PEERS = web.AppKey("local_peers", PeerIdentifier)


def identify_peer(request: web.BaseRequest) -> ToolIdentity:
    """The tool calling on the local listener of ``request``'s app; 401 when there is none."""
    peers = request.app.get(PEERS) if isinstance(request, web.Request) else None
    if peers is None:
        raise AuthenticationError("this server's local listener knows no callers: it is not "
                                  "in local mode")
    return peers.identify(request)


def _catalog(images_file: str | None) -> ImageCatalog:
    if images_file is None:
        text = (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text(
            "utf-8")
        return ImageCatalog.from_yaml(text)
    try:
        text = Path(images_file).read_text("utf-8")
    except OSError as error:
        raise ConfigurationError(f"local.images_file {images_file!r} cannot be read: "
                                 f"{error.strerror}") from None
    try:
        return ImageCatalog.from_yaml(text)
    except InvalidInputError as error:
        raise ConfigurationError(f"local.images_file {images_file!r}: {error}") from None


@attrs.define
class LocalMode:
    """The local runtime serving one app: install it on the app, close it after."""

    settings: LocalModeSettings
    runtime: LocalRuntime
    service: JobService
    peers: PeerIdentifier
    #: The embedded emailer, when configured; the app runs it (:meth:`install`).
    emailer: EmbeddedEmailer | None

    def install(self, app: web.Application) -> None:
        """Identify the local listener's callers; run the emailer while the app runs."""
        app[PEERS] = self.peers
        emailer = self.emailer
        if emailer is not None:
            async def run_emailer(app: web.Application) -> AsyncIterator[None]:
                await emailer.start()
                yield
                await emailer.stop()

            app.cleanup_ctx.append(run_emailer)

    def close(self) -> None:
        """Stop every job process and supervising (the jobs stay defined)."""
        self.runtime.close()


def open_local_mode(*, local: LocalModeSettings, core: Settings,
                    emailer: EmailerSettings | None = None, follow_interval: float = 1.0,
                    shutdown_grace: float = 10.0,
                    user_name: Callable[[int], str] = _user_name,
                    uid: int | None = None) -> LocalMode:
    """The runtime (supervising) and service of local mode, as ``local`` (resolved) says.

    ``uid`` is the server's (default: the effective uid): a root server without
    ``local.run_as`` nor ``local.single_user`` is refused (ConfigurationError), as it would run
    anyone's jobs as root. ``core``'s identity settings are kept but for the home, which is
    ``local.root/{tool}``. With ``emailer``, every pod change from now on is kept for the
    emailer the app runs.
    """
    if local.root is None or local.state_dir is None:
        raise ConfigurationError("local mode: local.root and local.state_dir must be set "
                                 "(LocalModeSettings.resolved fills them in)")
    uid = os.geteuid() if uid is None else uid
    local.check_safe(uid=uid)
    runtime_settings = LocalSettings(grace_period=local.grace_period, run_as=local.run_as,
                                     enforce_memory=local.enforce_memory,
                                     home_mode=local.home_permissions)
    catalog = _catalog(local.images_file)
    runtime = LocalRuntime(root=Path(local.root), state_dir=Path(local.state_dir),
                           catalog=catalog, settings=runtime_settings)
    try:  # from here on the runtime holds the state directory's lock: release it on failure
        identity = attrs.evolve(core.identity, home_template=f"{runtime.root}/{{tool}}")
        service = JobService(runtime, settings=attrs.evolve(core, identity=identity),
                             follow_interval=follow_interval)
        embedded = None
        if emailer is not None:
            bridge = PodBridge()
            runtime.subscribe(bridge)
            embedded = EmbeddedEmailer(emailer, bridge=bridge, shutdown_grace=shutdown_grace)
        peers = PeerIdentifier(identity=identity, prefix=local.user_prefix,
                               user_name=user_name,
                               only_uid=uid if local.is_single_user else None)
        runtime.start()
    except BaseException:
        runtime.close()
        raise
    log.info("local mode: jobs run in %s, state in %s (%s)", runtime.root, runtime.state_dir,
             "single-user" if local.is_single_user else f"as {local.run_as}")
    return LocalMode(settings=local, runtime=runtime, service=service, peers=peers,
                     emailer=embedded)


def local_mode_for(config: Config) -> LocalMode:
    """The local mode the server's configuration asks for (``runtime = "local"``)."""
    return open_local_mode(local=config.local, core=config.core,
                           emailer=config.emailer_settings(),
                           follow_interval=config.http.server.follow_interval_seconds,
                           shutdown_grace=config.http.server.shutdown_grace_seconds)
