"""A throw-away PKI for the HTTP tests: a CA, the server's certificate, tools' certificates.

EC P-256 keys, so making a dozen certificates takes milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC)


@attrs.frozen
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


def _name(cn: str, org: str | None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def _write(directory: Path, stem: str, *, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> Issued:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Issued(cert=cert_path, key=key_path)


class Authority:
    """A CA that issues server and client certificates into ``directory``."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name, "test")
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = _write(directory, name, cert=self.cert, key=self.key).cert

    def issue(self, stem: str, *, cn: str, org: str | None = "toolforge", server: bool = False,
              expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = NOW - timedelta(days=1), NOW + timedelta(days=7)
        if expired:
            start, end = NOW - timedelta(days=30), NOW - timedelta(days=2)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn, org))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]),
                critical=False)
        return _write(self.directory, stem, cert=builder.sign(self.key, hashes.SHA256()), key=key)


@attrs.frozen(kw_only=True)
class Pki:
    ca: Path
    server: Issued
    alpha: Issued
    beta: Issued
    expired: Issued
    foreign: Issued  # alpha's name, another CA's signature
    wrong_org: Issued  # our CA, but not O=toolforge

    @classmethod
    def create(cls, directory: Path) -> Pki:
        ca = Authority(directory, "ca")
        other = Authority(directory, "other-ca")
        return cls(
            ca=ca.file,
            server=ca.issue("server", cn="localhost", org=None, server=True),
            alpha=ca.issue("alpha", cn="alpha"),
            beta=ca.issue("beta", cn="beta"),
            expired=ca.issue("expired", cn="alpha", expired=True),
            foreign=other.issue("foreign", cn="alpha"),
            wrong_org=ca.issue("wrong-org", cn="alpha", org="admins"),
        )
