"""A real SMTP server (aiosmtpd) on a free loopback port, and a test CA for its TLS."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tjf_emailer.settings import EmailerSettings

HOST = "127.0.0.1"
USER, PASSWORD = "tjf", "s3cret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class Recorder:
    """An aiosmtpd handler that keeps what it accepted and can refuse on request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        #: How many of the next DATA commands to refuse, and with what.
        self.refusals = 0
        self.answer = "451 4.3.0 try again later"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.refusals > 0:
                self.refusals -= 1
                return self.answer
            assert isinstance(envelope.content, bytes)
            self.messages.append(envelope.content)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self._lock:
            return [str(message_from_bytes(m)["Message-ID"]) for m in self.messages]


@attrs.frozen
class Server:
    port: int
    recorder: Recorder


@attrs.frozen
class LocalCA:
    ca_file: Path
    server_context: ssl.SSLContext


def _authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                  data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


def _serve(**kwargs: Any) -> Iterator[Server]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield Server(port, recorder)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    yield from _serve()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    directory = tmp_path_factory.mktemp("ca")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tjf test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return LocalCA(ca_file, context)


@pytest.fixture
def starttls_server(test_ca: LocalCA) -> Iterator[Server]:
    yield from _serve(tls_context=test_ca.server_context, require_starttls=True,
                      authenticator=_authenticate, auth_required=True)


def settings_for(port: int, spool: Path, **send: Any) -> EmailerSettings:
    """Settings that send to the test server right away, with fast retries."""
    base = EmailerSettings()
    return attrs.evolve(
        base,
        smtp=attrs.evolve(base.smtp, host=HOST, port=port, timeout=5.0),
        send=attrs.evolve(base.send, **{
            "spool_dir": spool, "for_real": True, "round_seconds": 0.05,
            "backoff_initial": 1.0, "backoff_max": 8.0, **send}),
    )
