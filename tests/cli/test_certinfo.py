"""Reading a certificate's CN and validity from its DER agrees with cryptography's reading."""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.http.pki import Pki
from tjf_cli.certinfo import read_certificate

_KEY = ec.generate_private_key(ec.SECP256R1())


def _pem(subject: x509.Name, *, start: datetime, end: datetime) -> bytes:
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
        .public_key(_KEY.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .sign(_KEY, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


_TIMES = st.datetimes(min_value=datetime(1951, 1, 1), max_value=datetime(2200, 1, 1),
                      timezones=st.just(UTC)).map(lambda when: when.replace(microsecond=0))
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                 max_size=16)  # at most 64 bytes of UTF-8, as X.509 allows


@settings(max_examples=200)
@given(cn=_NAMES, start=_TIMES, days=st.integers(min_value=0, max_value=40000),
       organisation=st.booleans())
def test_the_reading_agrees_with_cryptography(cn: str, start: datetime, days: int,
                                              organisation: bool) -> None:
    end = start + timedelta(days=days)
    parts = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "toolforge"))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    pem = _pem(x509.Name(parts), start=start, end=end)
    facts = read_certificate(pem)
    parsed = x509.load_pem_x509_certificate(pem)
    assert facts.common_name == cn
    assert facts.not_before == parsed.not_valid_before_utc
    assert facts.not_after == parsed.not_valid_after_utc


def test_the_test_pki_certificates(pki: Pki) -> None:
    facts = read_certificate(pki.alpha.cert.read_bytes())
    assert facts.common_name == "alpha"
    assert facts.not_before < datetime.now(UTC) < facts.not_after
    expired = read_certificate(pki.expired.cert.read_bytes())
    assert expired.not_after < datetime.now(UTC)


def test_no_common_name() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pem = _pem(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")]), start=now,
               end=now)
    assert read_certificate(pem).common_name is None


@pytest.mark.parametrize("text", [
    b"", b"not a certificate",
    b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+w==\n-----END CERTIFICATE-----\n",
])
def test_garbage_is_a_value_error(text: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - every unreadable input is one
        read_certificate(text)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_random_der_never_crashes_otherwise(data: bytes) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(data) + b"\n-----END CERTIFICATE-----"
    with contextlib.suppress(ValueError):  # the one way it may refuse
        read_certificate(pem)
