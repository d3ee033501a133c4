"""The two facts the client needs from a certificate, read without a crypto library.

Every command checks the tool's certificate before using it (:mod:`tjf_cli.certificate`):
which tool it names (its subject's CN) and when it is valid. ``cryptography`` would take a
tenth of a second to import on every run for that, so these few fields are read from the
DER here: an X.509 certificate is ``SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
serial, signature, issuer, validity SEQUENCE { notBefore, notAfter }, subject, … }, … }``
(RFC 5280 §4.1). Nothing is verified here: the TLS handshake does that.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

import attrs

__all__ = ["CertificateFacts", "read_certificate"]

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)
_SEQUENCE, _SET, _OID, _CONTEXT_0 = 0x30, 0x31, 0x06, 0xA0
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_COMMON_NAME = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_TEXT = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


@attrs.frozen(kw_only=True)
class CertificateFacts:
    common_name: str | None
    not_before: datetime
    not_after: datetime


def _element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The tag, value start and value end of the DER element at ``pos``."""
    if pos + 2 > end:
        raise ValueError("truncated element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or pos + size > end:
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + length > end:
        raise ValueError("truncated value")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        tag, value, after = _element(data, start, end)
        found.append((tag, value, after))
        start = after
    return found


def _time(tag: int, text: bytes) -> datetime:
    if tag == _UTC_TIME:  # YYMMDDHHMMSSZ; 50-99 are the 1900s (RFC 5280 §4.1.2.5.1)
        parsed = datetime.strptime(text.decode("ascii"), "%y%m%d%H%M%SZ")
        if parsed.year >= 2050:
            parsed = parsed.replace(year=parsed.year - 100)
    elif tag == _GENERALIZED_TIME:
        parsed = datetime.strptime(text.decode("ascii"), "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return parsed.replace(tzinfo=UTC)


def _common_name(data: bytes, start: int, end: int) -> str | None:
    for tag, value, after in _children(data, start, end):
        if tag != _SET:
            raise ValueError("a name is a sequence of sets")
        for _, attribute, attribute_end in _children(data, value, after):
            (oid_tag, oid, oid_end), (text_tag, text, text_end) = _children(
                data, attribute, attribute_end)[:2]
            if oid_tag == _OID and data[oid:oid_end] == _COMMON_NAME:
                if text_tag not in _TEXT:
                    raise ValueError("the CN is not text")
                return data[text:text_end].decode(_TEXT[text_tag])
    return None


def read_certificate(pem: bytes) -> CertificateFacts:
    """The CN and validity of the first certificate of ``pem``; ValueError if unreadable."""
    match = _PEM.search(pem)
    if match is None:
        raise ValueError("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
    try:
        der = base64.b64decode(match.group(1), validate=False)
    except binascii.Error as error:
        raise ValueError(f"the PEM text is not base64: {error}") from None
    try:
        tag, value, end = _element(der, 0, len(der))
        tbs_tag, tbs, tbs_end = _element(der, value, end)
        if tag != _SEQUENCE or tbs_tag != _SEQUENCE:
            raise ValueError("not a certificate")
        fields = _children(der, tbs, tbs_end)
        if fields and fields[0][0] == _CONTEXT_0:
            fields = fields[1:]  # the explicit version
        _serial, _signature, _issuer, validity, subject = fields[:5]
        (before_tag, before, before_end), (after_tag, after, after_end) = _children(
            der, validity[1], validity[2])[:2]
        return CertificateFacts(
            common_name=_common_name(der, subject[1], subject[2]),
            not_before=_time(before_tag, der[before:before_end]),
            not_after=_time(after_tag, der[after:after_end]))
    except (IndexError, UnicodeDecodeError) as error:
        raise ValueError(f"not a readable X.509 certificate ({error})") from None
