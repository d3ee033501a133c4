"""Settings of the REST API server, as small frozen attrs classes grouped by concern.

Four kinds of listener, each its own group, because each trusts its callers differently:

* ``tls`` (direct): aiohttp terminates TLS and requires a client certificate signed by
  ``client_ca_file``; the tool is the certificate's CN. Headers never carry identity here.
* ``trusted``: a unix socket or a loopback port behind a TLS-terminating proxy (nginx, an API
  gateway) that has verified the client already and passes the subject DN in a header. Only
  this listener reads that header, so it must never be reachable by anyone but the proxy:
  a unix socket (``socket_mode`` restricts who may connect) or a loopback address.
* ``ops``: plain HTTP for probes and Prometheus, serving ``/v1/healthz`` and ``/metrics`` only.
* ``local`` (local mode only, :mod:`tjf_http.local_settings`): a unix socket whose callers are
  known by the kernel's peer credentials: the caller's unix user is the tool.

Every value has a working default except the TLS files; :mod:`tjf_http.config` reads them from
a TOML file, ``TJF_*`` environment variables and flags, and the checks here say which setting
is wrong and what is allowed.
"""

from __future__ import annotations

import ipaddress

import attrs

from tjf_core.errors import ConfigurationError
from tjf_http.local_settings import LocalModeSettings

__all__ = [
    "HttpSettings",
    "OpsListenerSettings",
    "ServerSettings",
    "TlsListenerSettings",
    "TrustedListenerSettings",
    "is_loopback",
]

_LOG_LEVELS = ("debug", "info", "warning", "error")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(section: str, port: int | None, *, into: list[str]) -> None:
    if port is not None and not 0 <= port <= 65535:
        into.append(f"{section}.port {port} is out of range, use 0 to 65535 (0: any free)")


def _raise(problems: list[str]) -> None:
    if problems:
        raise ConfigurationError("invalid settings: " + "; ".join(problems))


@attrs.frozen(kw_only=True)
class TlsListenerSettings:
    """The direct listener: TLS with a required client certificate."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 8443
    #: The server's certificate chain and key (PEM).
    cert_file: str | None = None
    key_file: str | None = None
    #: The CA that signs the tools' client certificates (maintain-kubeusers' CA).
    client_ca_file: str | None = None

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        _check_port("tls", self.port, into=problems)
        if self.enabled:
            for name in ("cert_file", "key_file", "client_ca_file"):
                if not getattr(self, name):
                    problems.append(f"tls.{name} is required while tls.enabled is true "
                                    "(or set tls.enabled = false)")
        _raise(problems)


@attrs.frozen(kw_only=True)
class TrustedListenerSettings:
    """The listener behind a TLS-terminating proxy, which passes the identity in headers."""

    #: A unix socket path; the usual choice (nginx in the same pod).
    unix_socket: str | None = None
    #: Octal permissions of the unix socket: whoever may connect may claim any tool.
    socket_mode: str = "600"
    #: Or a loopback TCP address (host and port both set).
    host: str | None = None
    port: int | None = None
    #: The proxy's header with the verified client certificate's subject DN.
    subject_dn_header: str = "ssl-client-subject-dn"
    #: An API gateway's header naming the tool it authenticated; read when set, before the DN.
    tool_header: str | None = None
    #: Take a caller's ``X-Request-Id`` (the proxy's) instead of making a new one.
    accept_request_id: bool = True

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        _check_port("trusted", self.port, into=problems)
        if (self.host is None) != (self.port is None):
            problems.append("trusted.host and trusted.port go together: set both or neither")
        if self.host is not None and not is_loopback(self.host):
            problems.append(
                f"trusted.host {self.host!r} is not a loopback address: the trusted listener "
                "believes identity headers, so use 127.0.0.1, ::1 or a unix socket"
            )
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            problems.append(f"trusted.socket_mode {self.socket_mode!r} is not octal "
                            "permissions, use e.g. 600 or 660")
        if not self.subject_dn_header:
            problems.append("trusted.subject_dn_header must not be empty")
        _raise(problems)

    @property
    def enabled(self) -> bool:
        return self.unix_socket is not None or self.host is not None

    @property
    def mode(self) -> int:
        return int(self.socket_mode, 8)


@attrs.frozen(kw_only=True)
class OpsListenerSettings:
    """Plain HTTP for health probes and metrics (None host: off)."""

    host: str | None = None
    port: int = 9100

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        _check_port("ops", self.port, into=problems)
        _raise(problems)

    @property
    def enabled(self) -> bool:
        return self.host is not None


@attrs.frozen(kw_only=True)
class ServerSettings:
    """How requests are served: threads, limits, timeouts, shutdown."""

    #: Threads that run core calls (the core is synchronous); more requests wait for one.
    threads: int = 16
    #: A core call taking longer is answered 504 (it may still finish).
    call_timeout_seconds: float = 30.0
    #: Larger request bodies are refused with 413.
    max_body_bytes: int = 1024 * 1024
    #: Log streams followed at once (each holds a thread of its own); more get 503.
    log_followers: int = 32
    #: How often a followed log file is looked at for new lines.
    follow_interval_seconds: float = 1.0
    #: After SIGTERM: how long in-flight requests may take before the server exits.
    shutdown_grace_seconds: float = 20.0
    #: ``Retry-After`` of 503 answers.
    retry_after_seconds: int = 10
    log_level: str = "info"
    #: One JSON line per request on the ``tjf_http.access`` logger.
    access_log: bool = True

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        for name in ("threads", "max_body_bytes", "log_followers", "retry_after_seconds"):
            if getattr(self, name) < 1:
                problems.append(f"server.{name} {getattr(self, name)} must be at least 1")
        for name in ("call_timeout_seconds", "follow_interval_seconds"):
            if not getattr(self, name) > 0:
                problems.append(f"server.{name} {getattr(self, name)} must be above 0")
        if self.shutdown_grace_seconds < 0:
            problems.append(f"server.shutdown_grace_seconds {self.shutdown_grace_seconds} "
                            "must be 0 or more")
        if self.log_level not in _LOG_LEVELS:
            problems.append(f"server.log_level {self.log_level!r} is not known, use one of "
                            + ", ".join(_LOG_LEVELS))
        _raise(problems)


@attrs.frozen(kw_only=True)
class HttpSettings:
    """Everything the HTTP adapter needs (the core's own settings travel with the service)."""

    server: ServerSettings = ServerSettings()
    tls: TlsListenerSettings = TlsListenerSettings(enabled=False)
    trusted: TrustedListenerSettings = TrustedListenerSettings()
    ops: OpsListenerSettings = OpsListenerSettings()
    #: Local mode's listener (a unix socket, callers known by their peer credentials); None:
    #: not in local mode (:mod:`tjf_http.local`).
    local: LocalModeSettings | None = None

    def check_listeners(self) -> None:
        """At least one listener must serve the API (ops alone serves no jobs)."""
        if not (self.tls.enabled or self.trusted.enabled or self.local is not None):
            raise ConfigurationError(
                "no listener serves the API: set tls.cert_file, tls.key_file and "
                "tls.client_ca_file, or trusted.unix_socket (or trusted.host and trusted.port)"
            )
