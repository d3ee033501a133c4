"""Settings of ``tjf-api``'s local mode (``runtime = "local"``): where jobs run, where it listens.

Without a cluster, ``tjf-api`` runs jobs as processes of this machine
(:class:`tjf_core.local.LocalRuntime`) and serves the API on a unix socket whose callers are
known by their peer credentials. This module holds the ``[local]`` section's settings and the
rules that depend on who runs the server, pure (the caller passes the environment and the
uid), so ``--check-config`` shows and the tests pin what the server will do:

* **which runtime** when none is named (:func:`choose_runtime`): ``kubernetes`` when a
  cluster is configured (a ``[kubernetes]`` section or ``TJF_KUBERNETES_*`` setting, or the
  in-cluster service account's ``KUBERNETES_SERVICE_HOST``), else ``local``, the embedded
  default;
* **where** (:meth:`LocalModeSettings.resolved`): the socket where
  :func:`tjf_core.local_identity.default_socket_path` says (``$TJF_LOCAL_SOCKET``, which is
  also ``local.socket`` in the environment, else the user's runtime directory, else
  ``/run/tjf/api.sock``); the tools' homes and the state under ``/var/lib/tjf`` for root, under
  ``$XDG_STATE_HOME/tjf`` (``~/.local/state/tjf``) for anyone else.

Who may call, and as whom jobs run (:meth:`LocalModeSettings.check_safe`):

* with ``local.run_as`` (e.g. ``tools.{tool}``, the server running as root) the server is
  *multi-user*: a caller's unix user must be ``<user_prefix><tool>``, and that tool's jobs run
  as that unix user. The socket is mode 666 by default: each caller can only ever be its own
  tool, since identity comes from the kernel and never from the request.
* without it, jobs run as the server's own user, so the server is *single-user*
  (``local.single_user``): only that user may call (others get 403), and its name, less the
  prefix if it has one, is the tool. That is the default for a server not run by root; a root
  server with neither setting refuses to start, as it would run anyone's jobs as root. The
  socket is mode 660 by default.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import PurePosixPath

import attrs

from tjf_core.errors import ConfigurationError
from tjf_core.local_identity import USER_PREFIX, default_socket_path

__all__ = ["LocalModeSettings", "choose_runtime", "default_local_dirs"]

#: Where root's server keeps the tools' homes and its state.
SYSTEM_DIR = PurePosixPath("/var/lib/tjf")


def _octal(value: str, *, name: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise ConfigurationError(f"local.{name} {value!r} is not octal permissions, use e.g. "
                                 "666 or 700")
    return mode


def _absolute(value: str | None, *, name: str) -> None:
    if value is not None and not PurePosixPath(value).is_absolute():
        raise ConfigurationError(f"local.{name} {value!r} is not an absolute path: name it "
                                 "from the root, e.g. /var/lib/tjf/tools")


@attrs.frozen(kw_only=True)
class LocalModeSettings:
    """The ``[local]`` section: the local runtime and its unix socket (None: the default)."""

    #: The unix socket callers connect to (``TJF_LOCAL_SOCKET``); None: the default place.
    socket: str | None = None
    #: Its permissions: who may connect (each caller is only ever its own tool); None: 666
    #: when jobs run as their tool's user (``run_as``), else 660.
    socket_mode: str | None = None
    #: Tool ``t``'s home is ``root/t``: jobs run there and their log files are written there.
    root: str | None = None
    #: The runtime's SQLite state, pod logs and the embedded emailer's spool.
    state_dir: str | None = None
    #: Permissions of a tool's home the server creates (at the tool's first job).
    home_mode: str = "700"
    #: The image catalog (YAML, the images-v1.yaml shape); None: the catalog shipped with tjf.
    images_file: str | None = None
    #: A caller's unix user less this prefix is its tool (``tools.mytool`` is ``mytool``).
    user_prefix: str = USER_PREFIX
    #: Run each tool's jobs as this unix user, ``{tool}`` filled in (the server running as
    #: root), e.g. ``tools.{tool}``; None: as the server's own user.
    run_as: str | None = None
    #: Only the server's own user may call, and it is the tool (its jobs run as that user).
    #: None: yes unless ``run_as`` is set (a root server must say one or the other).
    single_user: bool | None = None
    #: SIGTERM to SIGKILL when a job is stopped; None: the pod's grace period (15 s).
    grace_period: float | None = None
    #: Limit each job's address space to its memory limit (RLIMIT_AS).
    enforce_memory: bool = True

    def __attrs_post_init__(self) -> None:
        if self.socket_mode is not None:
            _octal(self.socket_mode, name="socket_mode")
        _octal(self.home_mode, name="home_mode")
        for name in ("socket", "root", "state_dir", "images_file"):
            _absolute(getattr(self, name), name=name)
        if self.grace_period is not None and self.grace_period < 0:
            raise ConfigurationError(
                f"local.grace_period {self.grace_period} must be 0 or more seconds")
        if self.run_as is not None and "{tool}" not in self.run_as:
            raise ConfigurationError(
                f"local.run_as {self.run_as!r} does not hold {{tool}}: every tool would run "
                "as one user; use e.g. tools.{tool}, or leave it unset")
        if self.run_as is not None and self.single_user:
            raise ConfigurationError(
                f"local.single_user and local.run_as {self.run_as!r} contradict each other: a "
                "single-user server runs jobs as its own user; set only one of them")

    @property
    def socket_permissions(self) -> int:
        if self.socket_mode is None:
            return 0o666 if self.run_as is not None else 0o660
        return int(self.socket_mode, 8)

    @property
    def is_single_user(self) -> bool:
        """Whether only the server's own user may call (``single_user``, or no ``run_as``)."""
        return self.single_user if self.single_user is not None else self.run_as is None

    def check_safe(self, *, uid: int) -> None:
        """Refuse settings under which a server run by ``uid`` would run others' jobs as
        itself: root with neither ``run_as`` nor ``single_user``, or anyone with
        ``single_user = false`` and no ``run_as`` (ConfigurationError)."""
        if self.run_as is not None or self.single_user:
            return
        if uid == 0 and self.single_user is None:
            raise ConfigurationError(
                "local mode as root needs local.run_as (e.g. \"tools.{tool}\": each tool's "
                "jobs run as its unix user) or local.single_user = true (only root may call, "
                "jobs run as root): without either, anyone's jobs would run as root")
        if self.single_user is False:
            raise ConfigurationError(
                "local.single_user = false needs local.run_as (e.g. \"tools.{tool}\"): "
                "without it every caller's jobs would run as this server's user")

    @property
    def home_permissions(self) -> int:
        return int(self.home_mode, 8)

    def resolved(self, environ: Mapping[str, str], *, uid: int) -> LocalModeSettings:
        """These settings with every default place filled in, for a server run by ``uid``."""
        root, state = self.root, self.state_dir
        if root is None or state is None:
            default_root, default_state = default_local_dirs(environ, uid=uid)
            root, state = root or str(default_root), state or str(default_state)
        return attrs.evolve(
            self, socket=self.socket or str(default_socket_path(environ, uid=uid)), root=root,
            state_dir=state, socket_mode=self.socket_mode or oct(self.socket_permissions)[2:])


def default_local_dirs(environ: Mapping[str, str], *,
                       uid: int) -> tuple[PurePosixPath, PurePosixPath]:
    """The tools' homes and the state directory of a server run by ``uid``.

    Root's are the machine's, under ``/var/lib/tjf``; anyone else's are private, under
    ``$XDG_STATE_HOME/tjf`` (an absolute path, as the XDG specification requires) or
    ``$HOME/.local/state/tjf``.
    """
    if uid == 0:
        base = SYSTEM_DIR
    else:
        state_home = environ.get("XDG_STATE_HOME", "")
        home = environ.get("HOME", "")
        if state_home and PurePosixPath(state_home).is_absolute():
            base = PurePosixPath(state_home) / "tjf"
        elif home and PurePosixPath(home).is_absolute():
            base = PurePosixPath(home) / ".local" / "state" / "tjf"
        else:
            raise ConfigurationError(
                "local mode needs a place for the tools' homes and its state, and neither "
                "XDG_STATE_HOME nor HOME is an absolute path: set local.root and "
                "local.state_dir (TJF_LOCAL_ROOT, TJF_LOCAL_STATE_DIR)")
    return base / "tools", base / "state"


def choose_runtime(given: str | None, *, sections: Collection[str],
                   environ: Mapping[str, str]) -> str:
    """The runtime to serve: ``given``, else ``kubernetes`` when a cluster is configured, else
    ``local`` (the embedded default).

    ``sections`` are the configuration's sections that hold settings (from the file, the
    environment or flags).
    """
    if given is not None:
        return given
    if "kubernetes" in sections or environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return "local"
