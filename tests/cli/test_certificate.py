"""The tool's certificate is checked before use: each usual problem has its own message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli.conftest import ToolHome
from tests.http.pki import Pki
from tjf_cli.certificate import load_tool_certificate
from tjf_core.errors import CertificateError, ConfigurationError
from tjf_http.credentials import ClientCertificate

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _write(directory: Path, subject: list[x509.NameAttribute[str]], *, start: datetime,
           end: datetime) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder().subject_name(x509.Name(subject))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end).sign(key, hashes.SHA256()))
    cert, key_file = directory / "client.crt", directory / "client.key"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


def _load(tool: ToolHome) -> str:
    return load_tool_certificate(tool.environ, home=tool.home, now=NOW).tool


def test_the_tool_is_the_cn_and_the_dates_are_cryptographys(pki: Pki) -> None:
    facts = ClientCertificate.from_files(pki.alpha.cert, pki.alpha.key).read()
    parsed = x509.load_pem_x509_certificate(pki.alpha.cert.read_bytes())
    assert facts.common_name == "alpha"
    assert (facts.not_before, facts.not_after) == (parsed.not_valid_before_utc,
                                                   parsed.not_valid_after_utc)


def test_a_valid_certificate_names_its_tool(tool: ToolHome) -> None:
    certs = tool.home / ".kube" / "certs"
    _write(certs, [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "toolforge"),
                   x509.NameAttribute(NameOID.COMMON_NAME, "mytool")],
           start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
    assert _load(tool) == "mytool"


def test_a_certificate_not_valid_yet_says_check_the_clock(tool: ToolHome) -> None:
    _write(tool.home / ".kube" / "certs", [x509.NameAttribute(NameOID.COMMON_NAME, "mytool")],
           start=NOW + timedelta(hours=1), end=NOW + timedelta(days=1))
    with pytest.raises(CertificateError, match=r"only valid from 2026-11-26 13:00 UTC: check "
                                               "this machine's clock"):
        _load(tool)


def test_a_certificate_without_a_cn_names_no_tool(tool: ToolHome) -> None:
    _write(tool.home / ".kube" / "certs", [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "x")],
           start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
    with pytest.raises(CertificateError, match="has no CN, so it names no tool"):
        _load(tool)


@pytest.mark.parametrize("text", [b"", b"not a certificate",
                                  b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"])
def test_a_file_that_is_no_certificate(tool: ToolHome, text: bytes) -> None:
    (tool.home / ".kube" / "certs" / "client.crt").write_bytes(text)
    with pytest.raises(ConfigurationError, match=r"cannot be read \(.*\): is it a PEM "
                                                 "certificate\\?"):
        _load(tool)
    result = tool.invoke("list")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the client certificate of kubeconfig ")
    assert len(result.stderr.splitlines()) == 1
