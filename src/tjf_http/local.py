"""``tjf-api`` without a cluster: the local runtime, its unix socket, and who is calling there.

In local mode (``runtime = "local"``, the default when no cluster is configured) the server's
runtime is :class:`tjf_core.local.LocalRuntime`: jobs run as processes of this machine, in
``root/<tool>``. The API is served on a unix socket (the *local* listener) whose callers are
known by the kernel: the socket's peer credentials (``SO_PEERCRED``) give the caller's uid,
the user database its name, and :func:`tjf_core.local_identity.tool_from_username` its tool
(``tools.mytool`` is ``mytool``; a user without the prefix is a tool of its own name). Nothing
the request says can change that: identity headers are never read on this listener, and a
caller whose user names no tool is refused (401). The TLS listener, when configured, still
takes client certificates as usual.

:func:`open_local_mode` builds the runtime and the service and starts supervising;
:meth:`LocalMode.install` gives an app the peer identification (:data:`PEERS`) and, when
configured, the embedded emailer (:mod:`tjf_http.local_emailer`), started and stopped with the
app. :meth:`LocalMode.close` stops every job process (the jobs stay defined: the next start
brings continuous jobs back and scheduled ones fire again).

Tool homes are made when a tool's first job is created (``local.home_mode``, 700 by default:
the jobs run as the server's user, or as ``local.run_as``, who is then given the home).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import pwd
import socket
import stat
import struct
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from tjf_core.errors import AuthenticationError, ConfigurationError, InvalidInputError
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.local import LocalRuntime, LocalSettings
from tjf_core.local_identity import tool_from_username
from tjf_core.runtime import Manifest
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
    "bind_local_socket",
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
    ``user_name`` maps a uid to a unix user name (default: the user database).
    """

    def __init__(self, *, identity: IdentitySettings, prefix: str,
                 user_name: Callable[[int], str] = _user_name) -> None:
        self.identity = identity
        self.prefix = prefix
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
        try:
            name = self._user_name(uid)
        except KeyError:
            raise AuthenticationError(
                f"the calling uid {uid} has no unix user on this machine, so it is no "
                "tool: run the client as the tool's user") from None
        try:
            tool = tool_from_username(name, prefix=self.prefix, settings=self.identity)
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


def bind_local_socket(path: str, mode: int) -> socket.socket:
    """The local listener's socket at ``path``, with permissions ``mode``, its directory made.

    A socket file left by a server that stopped uncleanly is replaced; one a live server
    answers on, or any other kind of file, is refused (ConfigurationError).
    """
    target = Path(path)
    try:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"local.socket {path!r}: its directory cannot be made: "
                                 f"{error.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ConfigurationError(f"local.socket {path!r} exists and is not a socket: "
                                     "refusing to replace it")
        if _answers(path):
            raise ConfigurationError(f"local.socket {path!r}: another server listens there: "
                                     "stop it first, or set local.socket (TJF_LOCAL_SOCKET)")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # nobody may connect before the mode is set
    try:
        sock.bind(path)
    except OSError as error:
        sock.close()
        raise ConfigurationError(f"local.socket {path!r} cannot be bound: "
                                 f"{error.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, mode)
    return sock


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


class _ServedRuntime(LocalRuntime):
    """The local runtime as the server runs it: a tool's home is made at its first job."""

    def __init__(self, *, home_mode: int, run_as: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home_mode = home_mode
        self._run_as = run_as

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._make_home(tool)
        return super().create(tool, manifest)

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._make_home(tool)
        return super().replace(tool, manifest)

    def _make_home(self, tool: ToolIdentity) -> None:
        home = self.root / tool.tool
        if home.is_dir():
            return
        try:
            self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
            home.mkdir(mode=self._home_mode, exist_ok=True)
            os.chmod(home, self._home_mode)  # mkdir's mode is masked by the umask
            if self._run_as is not None and os.geteuid() == 0:
                with contextlib.suppress(KeyError):  # no such user: the runtime says so
                    user = pwd.getpwnam(self._run_as.replace("{tool}", tool.tool))
                    os.chown(home, user.pw_uid, user.pw_gid)
        except OSError as error:
            raise ConfigurationError(f"the home of tool {tool.tool!r}, {home}, cannot be "
                                     f"made: {error.strerror}") from None
        log.info("made the home of tool %s: %s", tool.tool, home)


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
                    user_name: Callable[[int], str] = _user_name) -> LocalMode:
    """The runtime (supervising) and service of local mode, as ``local`` (resolved) says.

    ``core``'s identity settings are kept but for the home, which is ``local.root/{tool}``.
    With ``emailer``, every pod change from now on is kept for the emailer the app runs.
    """
    if local.root is None or local.state_dir is None:
        raise ConfigurationError("local mode: local.root and local.state_dir must be set "
                                 "(LocalModeSettings.resolved fills them in)")
    root = Path(local.root)
    runtime_settings = LocalSettings(grace_period=local.grace_period, run_as=local.run_as,
                                     enforce_memory=local.enforce_memory)
    runtime = _ServedRuntime(root=root, state_dir=Path(local.state_dir),
                             catalog=_catalog(local.images_file), settings=runtime_settings,
                             home_mode=local.home_permissions, run_as=local.run_as)
    identity = attrs.evolve(core.identity, home_template=f"{runtime.root}/{{tool}}")
    service = JobService(runtime, settings=attrs.evolve(core, identity=identity),
                         follow_interval=follow_interval)
    embedded = None
    if emailer is not None:
        bridge = PodBridge()
        runtime.subscribe(bridge)
        embedded = EmbeddedEmailer(emailer, bridge=bridge, shutdown_grace=shutdown_grace)
    try:
        runtime.start()
    except BaseException:
        runtime.close()
        raise
    log.info("local mode: jobs run in %s, state in %s", runtime.root, runtime.state_dir)
    return LocalMode(settings=local, runtime=runtime, service=service,
                     peers=PeerIdentifier(identity=identity, prefix=local.user_prefix,
                                          user_name=user_name),
                     emailer=embedded)


def local_mode_for(config: Config) -> LocalMode:
    """The local mode the server's configuration asks for (``runtime = "local"``)."""
    return open_local_mode(local=config.local, core=config.core,
                           emailer=config.emailer_settings(),
                           follow_interval=config.http.server.follow_interval_seconds,
                           shutdown_grace=config.http.server.shutdown_grace_seconds)
