"""Who is calling, decided by the listener a request came in on.

One aiohttp application serves every listener (so handlers, thread pool and metrics are
shared), and the listener is told apart by the socket the connection was accepted on: the
server records each bound address in :class:`Listeners` as it binds it, and a request's
``transport.get_extra_info("sockname")`` finds its listener again. A direct listener must also
be TLS and the others must not, so a misrecorded address fails closed; an address nobody
recorded is refused (401).

* direct: the tool is the CN of the client certificate the TLS layer verified against the
  configured CA (:func:`~tjf_core.identity.identity_from_certificate` checks O and validity).
  Identity headers are ignored here: anyone could send them.
* trusted: the proxy in front verified the certificate; its ``ssl-client-subject-dn`` header
  (or, when configured, an API gateway's tool header) names the tool.
* ops: no identity; only the health and metrics routes are served there.
* local (local mode): the caller's unix user, from the socket's peer credentials, is the tool
  (:mod:`tjf_http.local`, which the app holds). Headers are ignored.

A client keeps its connection and its certificate for many requests, so what a certificate
says (its parsed form, its validity window and the tool it names) is remembered for the
connection, and by the certificate's DER bytes for the next connection; only the validity
window is checked again at each request's time.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import ipaddress
import weakref
from datetime import datetime
from typing import Any

import attrs
from aiohttp import web
from cryptography import x509

from tjf_core.errors import AuthenticationError, CertificateError, InvalidInputError
from tjf_core.identity import ToolIdentity, identity_from_certificate, identity_from_subject_dn
from tjf_core.settings import IdentitySettings
from tjf_http.settings import TrustedListenerSettings

__all__ = ["ListenerKind", "Listeners", "identify"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class ListenerKind(enum.Enum):
    DIRECT = "direct"
    TRUSTED = "trusted"
    OPS = "ops"
    #: Local mode's unix socket: the caller is its peer credentials' unix user.
    LOCAL = "local"


@functools.lru_cache(maxsize=256)  # a handful of bound and peer addresses, asked every request
def _host(host: str) -> str:
    """A comparable spelling of an address (IPv4-mapped IPv6 as IPv4)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class Listeners:
    """The bound addresses of the server and the kind of listener each one is."""

    def __init__(self) -> None:
        self._unix: dict[str, ListenerKind] = {}
        self._tcp: list[tuple[str, int, ListenerKind]] = []

    def add(self, address: object, kind: ListenerKind) -> None:
        """Record a bound address: a unix socket path, or a (host, port, …) tuple."""
        if isinstance(address, str):
            self._unix[address] = kind
        elif isinstance(address, tuple) and len(address) >= 2:
            self._tcp.append((str(address[0]), int(address[1]), kind))
        else:
            raise ValueError(f"cannot record listener address {address!r}")

    def kind_of(self, request: web.BaseRequest) -> ListenerKind | None:
        """The kind of listener ``request`` came in on; None when it is not one of ours."""
        transport = request.transport
        if transport is None:
            return None
        sockname = transport.get_extra_info("sockname")
        kind = self._lookup(sockname)
        tls = transport.get_extra_info("ssl_object") is not None
        if kind is None or tls != (kind is ListenerKind.DIRECT):
            return None
        return kind

    def _lookup(self, sockname: object) -> ListenerKind | None:
        if isinstance(sockname, str):
            return self._unix.get(sockname)
        if not isinstance(sockname, tuple) or len(sockname) < 2:
            return None
        host, port = _host(str(sockname[0])), sockname[1]
        for bound_host, bound_port, kind in self._tcp:
            if port == bound_port and (bound_host in _WILDCARDS or _host(bound_host) == host):
                return kind
        return None


def identify(
    request: web.BaseRequest, kind: ListenerKind, *, identity: IdentitySettings,
    trusted: TrustedListenerSettings, now: datetime,
) -> ToolIdentity:
    """The tool calling, by the rules of the listener ``kind``; AuthenticationError if none."""
    if kind is ListenerKind.DIRECT:
        return _from_certificate(request, identity=identity, now=now)
    if kind is ListenerKind.TRUSTED:
        return _from_headers(request, identity=identity, trusted=trusted)
    if kind is ListenerKind.LOCAL:
        from tjf_http.local import identify_peer

        return identify_peer(request)
    raise AuthenticationError("this listener serves health and metrics only")


def _from_certificate(request: web.BaseRequest, *, identity: IdentitySettings,
                      now: datetime) -> ToolIdentity:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    known = None
    if ssl_object is not None:
        with contextlib.suppress(TypeError):
            known = _BY_CONNECTION.get(ssl_object)
    if known is None or known.settings is not identity:
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise AuthenticationError("no client certificate was presented: use the tool's "
                                      "certificate from its kubeconfig")
        known = _certificate_identity(der, identity)
        with contextlib.suppress(TypeError):  # an SSL object that takes no weak reference
            _BY_CONNECTION[ssl_object] = known
    if not known.not_before <= now <= known.not_after:
        # Outside its window now: the full check says which end, as it always does.
        return identity_from_certificate(known.certificate, settings=identity, now=now)
    return known.tool


@attrs.frozen
class _Known:
    """What a client certificate says, found once: its window and the tool it names."""

    settings: IdentitySettings
    certificate: x509.Certificate
    not_before: datetime
    not_after: datetime
    tool: ToolIdentity


#: By TLS connection (its ``SSLObject``), for as long as the connection lives.
_BY_CONNECTION: weakref.WeakKeyDictionary[Any, _Known] = weakref.WeakKeyDictionary()


@functools.lru_cache(maxsize=1024)
def _certificate_identity(der: bytes, settings: IdentitySettings) -> _Known:
    """A certificate the TLS layer accepted, parsed, and the tool it names.

    Checked at the start of its window, where it is valid, so what may fail is what does not
    change with time (its subject); that raises and is not remembered.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError as error:
        raise CertificateError(f"the client certificate cannot be read: {error}") from None
    not_before = certificate.not_valid_before_utc
    tool = identity_from_certificate(certificate, settings=settings, now=not_before)
    return _Known(settings=settings, certificate=certificate, not_before=not_before,
                  not_after=certificate.not_valid_after_utc, tool=tool)


def _from_headers(request: web.BaseRequest, *, identity: IdentitySettings,
                  trusted: TrustedListenerSettings) -> ToolIdentity:
    if trusted.tool_header is not None:
        tool = request.headers.get(trusted.tool_header)
        if tool:
            try:
                return ToolIdentity.for_tool(tool, settings=identity)
            except InvalidInputError as error:
                raise AuthenticationError(
                    f"the {trusted.tool_header} header does not name a tool: {error}") from None
    subject = request.headers.get(trusted.subject_dn_header)
    if not subject:
        raise AuthenticationError(
            f"no {trusted.subject_dn_header} header: the proxy must pass the subject of the "
            "verified client certificate")
    return identity_from_subject_dn(subject, settings=identity)
