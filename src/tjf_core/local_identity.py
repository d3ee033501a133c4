"""Who calls a local ``tjf-api``, and where its socket is: the rules its server and clients share.

Without a cluster, ``tjf-api`` runs jobs as local processes and listens on a unix socket; it
knows a caller by the socket's peer credentials, so the caller's unix user is the tool. On
Toolforge a tool's unix user is ``tools.<tool>``, and a server that serves many users requires
that prefix: a person's account ``foo`` is never the tool ``foo`` (nor are ``root`` or
``nobody`` tools). A *single-user* server (``local.single_user``, a developer's own server on a
laptop) serves only its own user, whose name is the tool with the prefix taken off if it has
one. The client does not know which kind of server it talks to, so it takes the prefix off if
present and keeps the name otherwise: for every caller a server accepts, that is the server's
answer too (a multi-user server refuses the others). The server and the command line client must
agree on that rule, and on where the socket is when nothing says, so both live here, pure: the
caller reads the user name, the environment and the uid, and checks which path exists.

Where the socket is (:func:`default_socket_path`, :func:`socket_candidates`):

1. ``$TJF_LOCAL_SOCKET`` when set (an absolute path), for the server and the clients alike;
2. else, for a user other than root with ``$XDG_RUNTIME_DIR`` set (an absolute path, as the
   XDG base directory specification requires), ``$XDG_RUNTIME_DIR/tjf/api.sock``: a developer's
   own server, in the user's private runtime directory;
3. else ``/run/tjf/api.sock``: the machine's server, run by root (or by a service user whose
   ``/run/tjf`` the system made, e.g. systemd's ``RuntimeDirectory=tjf``).

A server listens on the first that applies to it; a client tries 2 and then 3, since a tool's
user has a runtime directory of its own while the server it wants may be the machine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from tjf_core.errors import ConfigurationError, InvalidInputError
from tjf_core.settings import IdentitySettings

__all__ = [
    "SOCKET_NAME",
    "SOCKET_VARIABLE",
    "SYSTEM_SOCKET",
    "USER_PREFIX",
    "default_socket_path",
    "socket_candidates",
    "tool_from_username",
]

#: The environment variable that names the socket, for the server and its clients.
SOCKET_VARIABLE = "TJF_LOCAL_SOCKET"
#: The machine's socket, when nothing else applies.
SYSTEM_SOCKET = PurePosixPath("/run/tjf/api.sock")
#: The socket's path under a user's ``$XDG_RUNTIME_DIR``.
SOCKET_NAME = PurePosixPath("tjf/api.sock")
#: What Toolforge puts before a tool's name to make its unix user.
USER_PREFIX = "tools."


def tool_from_username(name: str, *, prefix: str = USER_PREFIX,
                       settings: IdentitySettings | None = None,
                       require_prefix: bool = False) -> str:
    """The tool the unix user ``name`` is: ``name`` without ``prefix`` if it has it, else ``name``.

    With ``require_prefix`` (a multi-user server) a name without ``prefix`` is no tool. The tool
    must be a valid tool name by the rules of :meth:`~tjf_core.identity.ToolIdentity.for_tool`
    under ``settings`` (default: Toolforge's); otherwise InvalidInputError, naming the user.
    """
    # Imported here: the identity module loads cryptography (a quarter of a second cold), and
    # a client finding its socket needs only default_socket_path.
    from tjf_core.identity import ToolIdentity

    if require_prefix and not (prefix and name.startswith(prefix)):
        raise InvalidInputError(
            f"only users named {prefix}<tool> are tools on this server",
            summary=f"the unix user {name!r} names no tool")
    tool = name.removeprefix(prefix) if prefix else name
    try:
        return ToolIdentity.for_tool(tool, settings=settings or IdentitySettings()).tool
    except InvalidInputError as error:
        named = f"the unix user {name!r}" + (f" (tool {tool!r})" if tool != name else "")
        raise InvalidInputError(error.problems, summary=f"{named} names no tool") from None


def default_socket_path(env: Mapping[str, str], *, uid: int) -> PurePosixPath:
    """Where a ``tjf-api`` started by ``uid`` with environment ``env`` listens (module docstring).

    ConfigurationError when ``$TJF_LOCAL_SOCKET`` is set to a relative path.
    """
    given = env.get(SOCKET_VARIABLE)
    if given:
        path = PurePosixPath(given)
        if not path.is_absolute():
            raise ConfigurationError(
                f"{SOCKET_VARIABLE} {given!r} is not an absolute path: name the socket from "
                f"the root, e.g. {SOCKET_VARIABLE}=/run/tjf/api.sock")
        return path
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if uid != 0 and runtime_dir and PurePosixPath(runtime_dir).is_absolute():
        return PurePosixPath(runtime_dir) / SOCKET_NAME
    return SYSTEM_SOCKET


def socket_candidates(env: Mapping[str, str], *, uid: int) -> tuple[PurePosixPath, ...]:
    """Where a client of user ``uid`` looks for the socket, in order: use the first that exists.

    Only ``$TJF_LOCAL_SOCKET`` when it is set; else the user's own default, then the machine's.
    """
    first = default_socket_path(env, uid=uid)
    if env.get(SOCKET_VARIABLE) or first == SYSTEM_SOCKET:
        return (first,)
    return (first, SYSTEM_SOCKET)
