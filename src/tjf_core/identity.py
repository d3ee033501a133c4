"""Who is calling: a tool's identity, read from its client certificate.

Every Toolforge tool holds an x509 client certificate issued by maintain-kubeusers with
``CN=<tool>`` and ``O=toolforge``. The caller's tool is the CN, but only when the certificate
was issued for the configured organisation: a certificate of another organisation (an admin's,
a node's) must never pass as a tool. The certificate reaches us in two shapes:

- whole, when our own TLS listener terminates the connection (:func:`identity_from_certificate`);
- as the ``ssl-client-subject-dn`` header of the TLS-terminating nginx, which has already
  verified the chain (:func:`identity_from_subject_dn`). nginx writes RFC 4514 text
  (``CN=mytool,O=toolforge``); older setups write OpenSSL's one-line form
  (``/O=toolforge/CN=mytool``). Both are parsed strictly: an auth header that does not parse
  exactly is refused, never guessed at.

Checking the chain of trust is the TLS layer's job; this module reads the identity out of a
certificate that layer already accepted, and checks its validity window against a given time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import PurePosixPath

import attrs
from cryptography import x509
from cryptography.x509.oid import NameOID

from tjf_core.errors import CertificateError, ConfigurationError, InvalidInputError, Problem
from tjf_core.settings import IdentitySettings

__all__ = [
    "ToolIdentity",
    "identity_from_certificate",
    "identity_from_subject_dn",
    "parse_subject_dn",
]

#: A DNS-1123 label, what Kubernetes accepts as a namespace name.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_LABEL_MAX = 63
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z")
#: Attribute types spelled as OIDs, named as the rest of the module names them.
_OID_NAMES = {"2.5.4.3": "CN", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C"}
#: Characters RFC 4514 forbids unescaped in a value (',' and '+' end it instead).
_MUST_ESCAPE = frozenset('";<>\x00')
_HEX = frozenset("0123456789abcdefABCDEF")
#: ASN.1 string types a '#'-encoded RFC 4514 value may carry, with their codecs.
_BER_STRINGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


@attrs.frozen
class ToolIdentity:
    """An authenticated tool: its name, its Kubernetes namespace and its home directory."""

    tool: str
    namespace: str
    home: PurePosixPath

    @classmethod
    def for_tool(cls, tool: str, *, settings: IdentitySettings) -> ToolIdentity:
        """The identity of ``tool``; its name must make a valid namespace."""
        if not _LABEL.match(tool):
            raise InvalidInputError(
                [
                    Problem(
                        "tool",
                        f'"{tool}" is not a valid tool name: use lower case letters, digits '
                        "and '-', starting and ending with a letter or digit",
                    )
                ]
            )
        namespace = _fill(settings.namespace_template, "namespace_template", tool)
        if len(namespace) > _LABEL_MAX:
            raise InvalidInputError(
                [
                    Problem(
                        "tool",
                        f'"{tool}" is too long: its namespace "{namespace}" would have '
                        f"{len(namespace)} characters, at most {_LABEL_MAX} are allowed",
                    )
                ]
            )
        if not _LABEL.match(namespace):
            # The tool name was fine, so the template is what makes a bad namespace.
            raise ConfigurationError(
                f'namespace_template "{settings.namespace_template}" makes the namespace '
                f'"{namespace}", which is not a DNS-1123 label'
            )
        home = PurePosixPath(_fill(settings.home_template, "home_template", tool))
        return cls(tool=tool, namespace=namespace, home=home)


def identity_from_subject_dn(value: str, *, settings: IdentitySettings) -> ToolIdentity:
    """The tool named by a client certificate subject DN (the ``ssl-client-subject-dn`` header)."""
    return _identity_from_attributes(parse_subject_dn(value), settings=settings)


def identity_from_certificate(
    cert: x509.Certificate | bytes, *, settings: IdentitySettings, now: datetime
) -> ToolIdentity:
    """The tool a client certificate (PEM bytes or parsed) was issued to, if valid at ``now``."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if isinstance(cert, bytes):
        try:
            cert = x509.load_pem_x509_certificate(cert)
        except ValueError as exc:
            raise CertificateError(f"client certificate is not a PEM certificate: {exc}") from exc
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    # X.509 validity includes both ends of the window.
    if now < not_before:
        raise CertificateError(f"client certificate is not valid before {_zulu(not_before)}")
    if now > not_after:
        raise CertificateError(f"client certificate expired at {_zulu(not_after)}")
    attributes = [
        (name, _attribute_text(attribute.value))
        for name, oid in (("CN", NameOID.COMMON_NAME), ("O", NameOID.ORGANIZATION_NAME))
        for attribute in cert.subject.get_attributes_for_oid(oid)
    ]
    return _identity_from_attributes(attributes, settings=settings)


def parse_subject_dn(value: str) -> tuple[tuple[str, str], ...]:
    """The (type, value) attributes of a subject DN, in order, types upper case.

    Accepts RFC 4514 text (``CN=mytool,O=toolforge``, multi-valued RDNs joined by ``+``,
    escapes ``\\,`` and ``\\2C``, ``#``-encoded values) and OpenSSL's one-line form
    (``/O=toolforge/CN=mytool``, ``\\xHH`` escapes). Anything else is a :class:`CertificateError`.
    """
    if value.startswith("/"):
        return _parse_oneline(value)
    return _parse_rfc4514(value)


def _identity_from_attributes(
    attributes: Sequence[tuple[str, str]], *, settings: IdentitySettings
) -> ToolIdentity:
    common_names = [text for kind, text in attributes if kind == "CN"]
    organisations = [text for kind, text in attributes if kind == "O"]
    required = f"the certificate must be issued for O={settings.organisation}"
    if not common_names:
        raise CertificateError("client certificate subject has no CN")
    if len(common_names) > 1:
        raise CertificateError(
            f"client certificate subject has {len(common_names)} CNs "
            f"({', '.join(common_names)}): exactly one is allowed"
        )
    if not organisations:
        raise CertificateError(f"client certificate subject has no O: {required}")
    if len(organisations) > 1:
        raise CertificateError(
            f"client certificate subject has {len(organisations)} Os "
            f"({', '.join(organisations)}): exactly one is allowed, {required}"
        )
    if organisations[0] != settings.organisation:
        raise CertificateError(f'organisation "{organisations[0]}" is not allowed: {required}')
    try:
        return ToolIdentity.for_tool(common_names[0], settings=settings)
    except InvalidInputError as exc:
        # A bad name in a certificate is a refused credential (401), not a bad request (400).
        reason = "; ".join(problem.message for problem in exc.problems)
        raise CertificateError(f"client certificate CN {reason}") from exc


def _parse_rfc4514(dn: str) -> tuple[tuple[str, str], ...]:
    if not dn:
        return ()
    attributes: list[tuple[str, str]] = []
    pos = 0
    while True:
        equals = dn.find("=", pos)
        if equals < 0:
            raise _malformed(dn, f"expected TYPE=value at position {pos}")
        kind = _attribute_type(dn, dn[pos:equals])
        text, pos = _read_rfc4514_value(dn, equals + 1)
        attributes.append((kind, text))
        if pos == len(dn):
            return tuple(attributes)
        # ',' starts the next RDN and '+' the next value of a multi-valued one; only the
        # attributes matter here, so both simply continue.
        pos += 1


def _read_rfc4514_value(dn: str, start: int) -> tuple[str, int]:
    """The value starting at ``start`` and the position of the ',' / '+' / end after it."""
    if dn.startswith("#", start):
        end = start + 1
        while end < len(dn) and dn[end] not in ",+":
            end += 1
        return _decode_ber_string(dn, dn[start + 1 : end]), end
    data = bytearray()
    pos = start
    while pos < len(dn) and dn[pos] not in ",+":
        char = dn[pos]
        if char == "\\":
            pair = dn[pos + 1 : pos + 3]
            if len(pair) == 2 and set(pair) <= _HEX:
                data.append(int(pair, 16))
                pos += 3
            elif pair and pair[0] in '"+,;<>\\ #=':
                data.extend(pair[0].encode())
                pos += 2
            else:
                raise _malformed(dn, f"bad escape at position {pos}")
            continue
        if char in _MUST_ESCAPE:
            raise _malformed(dn, f"unescaped {char!r} at position {pos}")
        if char == " " and (pos == start or _ends_value(dn, pos + 1)):
            raise _malformed(dn, f"space at position {pos}: spaces around '=' are not allowed")
        data.extend(char.encode())
        pos += 1
    return _utf8(dn, bytes(data)), pos


def _ends_value(dn: str, pos: int) -> bool:
    return pos == len(dn) or dn[pos] in ",+"


def _decode_ber_string(dn: str, hex_text: str) -> str:
    """The text of a ``#``-encoded value: BER of one ASN.1 string, in hex."""
    if not hex_text or len(hex_text) % 2 or not set(hex_text) <= _HEX:
        raise _malformed(dn, f'"#{hex_text}" is not an even number of hex digits')
    data = bytes.fromhex(hex_text)
    if len(data) < 2:
        raise _malformed(dn, f'"#{hex_text}" is too short to be an encoded string')
    tag, length, offset = data[0], data[1], 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 2 or len(data) < 2 + size:
            raise _malformed(dn, f'"#{hex_text}" has a bad length')
        length, offset = int.from_bytes(data[2 : 2 + size], "big"), 2 + size
    content = data[offset:]
    if len(content) != length:
        raise _malformed(dn, f'"#{hex_text}" has a bad length')
    codec = _BER_STRINGS.get(tag)
    if codec is None:
        raise _malformed(dn, f'"#{hex_text}" is not an encoded string (ASN.1 tag {tag:#04x})')
    try:
        return content.decode(codec)
    except UnicodeDecodeError as exc:
        raise _malformed(dn, f'"#{hex_text}" is not valid {codec}') from exc


def _parse_oneline(dn: str) -> tuple[tuple[str, str], ...]:
    attributes: list[tuple[str, str]] = []
    for component in dn[1:].split("/"):
        kind, equals, raw = component.partition("=")
        if not equals:
            # OpenSSL does not escape '/' inside values, so "/CN=a/b" is ambiguous: refuse it.
            raise _malformed(dn, f'component "{component}" is not TYPE=value')
        kind = _attribute_type(dn, kind)
        if raw != raw.strip():
            raise _malformed(dn, f"value {raw!r}: spaces around '=' are not allowed")
        attributes.append((kind, _utf8(dn, _unescape_oneline(raw))))
    return tuple(attributes)


def _unescape_oneline(raw: str) -> bytes:
    """OpenSSL's one-line form writes bytes outside printable ASCII as ``\\xHH``."""
    data = bytearray()
    pos = 0
    while pos < len(raw):
        pair = raw[pos + 2 : pos + 4]
        if raw.startswith("\\x", pos) and len(pair) == 2 and set(pair) <= _HEX:
            data.append(int(pair, 16))
            pos += 4
        else:
            data.extend(raw[pos].encode())
            pos += 1
    return bytes(data)


def _attribute_type(dn: str, kind: str) -> str:
    if kind != kind.strip():
        raise _malformed(dn, f"attribute type {kind!r}: spaces around '=' are not allowed")
    if _NUMERICOID.match(kind):
        return _OID_NAMES.get(kind, kind)
    if _DESCR.match(kind):
        return kind.upper()
    raise _malformed(dn, f"{kind!r} is not an attribute type")


def _utf8(dn: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(dn, "escaped bytes are not valid UTF-8") from exc


def _malformed(dn: str, detail: str) -> CertificateError:
    return CertificateError(f"malformed subject DN {dn!r}: {detail}")


def _attribute_text(value: str | bytes) -> str:
    # cryptography gives str for CN and O; bytes only for bit-string types we never ask for.
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _fill(template: str, setting: str, tool: str) -> str:
    try:
        return template.format(tool=tool)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigurationError(
            f'{setting} "{template}" cannot be filled: use {{tool}} as the only placeholder'
        ) from exc


def _zulu(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
