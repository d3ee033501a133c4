"""Tests of tool identities: names, subject DN headers and real client certificates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import PurePosixPath

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import CertificateError, ConfigurationError, InvalidInputError, Problem
from tjf_core.identity import (
    ToolIdentity,
    identity_from_certificate,
    identity_from_subject_dn,
    parse_subject_dn,
)
from tjf_core.settings import IdentitySettings

SETTINGS = IdentitySettings()
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2026, 1, 1, tzinfo=UTC)
MYTOOL = ToolIdentity(
    tool="mytool", namespace="tool-mytool", home=PurePosixPath("/data/project/mytool")
)


# --- ToolIdentity.for_tool -------------------------------------------------------------------


def test_for_tool_fills_the_templates() -> None:
    assert ToolIdentity.for_tool("mytool", settings=SETTINGS) == MYTOOL
    custom = IdentitySettings(namespace_template="{tool}-ns", home_template="/home/{tool}")
    assert ToolIdentity.for_tool("a-1", settings=custom) == ToolIdentity(
        tool="a-1", namespace="a-1-ns", home=PurePosixPath("/home/a-1")
    )


@pytest.mark.parametrize("tool", ["", "MyTool", "my_tool", "my.tool", "-tool", "tool-", "tööl"])
def test_for_tool_refuses_names_that_make_no_namespace(tool: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        ToolIdentity.for_tool(tool, settings=SETTINGS)
    (problem,) = info.value.problems
    assert problem.path == "tool"
    assert problem.message.startswith(f'"{tool}" is not a valid tool name: use lower case')


def test_for_tool_refuses_a_namespace_over_63_characters() -> None:
    ToolIdentity.for_tool("a" * 58, settings=SETTINGS)
    with pytest.raises(InvalidInputError) as info:
        ToolIdentity.for_tool("a" * 59, settings=SETTINGS)
    assert info.value.problems == (
        Problem(
            "tool",
            f'"{"a" * 59}" is too long: its namespace "tool-{"a" * 59}" would have 64 '
            "characters, at most 63 are allowed",
        ),
    )


@pytest.mark.parametrize("template", ["tool_{tool}", "{user}", "{0}", "{tool"])
def test_for_tool_reports_bad_templates_as_configuration(template: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace_template"):
        ToolIdentity.for_tool("mytool", settings=IdentitySettings(namespace_template=template))


# --- parse_subject_dn ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dn", "attributes"),
    [
        ("CN=mytool,O=toolforge", (("CN", "mytool"), ("O", "toolforge"))),
        ("O=toolforge,CN=mytool", (("O", "toolforge"), ("CN", "mytool"))),
        ("cn=mytool,o=toolforge", (("CN", "mytool"), ("O", "toolforge"))),
        ("CN=mytool+O=toolforge", (("CN", "mytool"), ("O", "toolforge"))),
        ("2.5.4.3=mytool,2.5.4.10=toolforge", (("CN", "mytool"), ("O", "toolforge"))),
        ("1.2.3.4=x", (("1.2.3.4", "x"),)),
        (r"CN=my\,tool,O=a\+b", (("CN", "my,tool"), ("O", "a+b"))),
        (r"CN=\2Cx\3d", (("CN", ",x="),)),
        (r"CN=caf\C3\A9", (("CN", "café"),)),
        (r"CN=\ lead\ and\ trail\ ", (("CN", " lead and trail "),)),
        (r"CN=\#hash,O=q\"uote\\", (("CN", "#hash"), ("O", 'q"uote\\'))),
        ("CN=a=b", (("CN", "a=b"),)),
        ("CN=,O=x", (("CN", ""), ("O", "x"))),
        ("CN=#0C066d79746f6f6c", (("CN", "mytool"),)),
        ("CN=#13026869,O=x", (("CN", "hi"), ("O", "x"))),
        ("CN=#1e0400680069", (("CN", "hi"),)),
        ("", ()),
        ("/O=toolforge/CN=mytool", (("O", "toolforge"), ("CN", "mytool"))),
        ("/CN=mytool/O=toolforge", (("CN", "mytool"), ("O", "toolforge"))),
        ("/CN=a,b+c/O=x", (("CN", "a,b+c"), ("O", "x"))),
        (r"/CN=caf\xC3\xA9", (("CN", "café"),)),
        (r"/CN=back\slash\x4", (("CN", r"back\slash\x4"),)),
    ],
)
def test_parse_subject_dn(dn: str, attributes: tuple[tuple[str, str], ...]) -> None:
    assert parse_subject_dn(dn) == attributes


@pytest.mark.parametrize(
    ("dn", "fragment"),
    [
        ("CN = mytool", "spaces around '=' are not allowed"),
        ("CN= mytool", "spaces around '=' are not allowed"),
        ("CN=mytool ,O=x", "spaces around '=' are not allowed"),
        ("CN=mytool, O=x", "spaces around '=' are not allowed"),
        ("mytool", "expected TYPE=value at position 0"),
        ("CN=a,", "expected TYPE=value at position 5"),
        ("CN=a;O=b", "unescaped ';'"),
        ('CN=a"b', "unescaped '\"'"),
        ("CN=a<b", "unescaped '<'"),
        (r"CN=a\q", "bad escape"),
        ("CN=a\\", "bad escape"),
        (r"CN=\C3", "not valid UTF-8"),
        ("1CN=a", "is not an attribute type"),
        ("=a", "is not an attribute type"),
        ("CN=#0C", "too short"),
        ("CN=#0C1", "even number of hex digits"),
        ("CN=#zz", "even number of hex digits"),
        ("CN=#0C05616263", "bad length"),
        ("CN=#020105", "not an encoded string"),
        ("CN=#0C02c3", "bad length"),
        ("CN=#0C01ff", "not valid utf-8"),
        ("/O=toolforge/CN=my/tool", 'component "tool" is not TYPE=value'),
        ("/", 'component "" is not TYPE=value'),
        ("/CN= mytool", "spaces around '=' are not allowed"),
        ("/CN =mytool", "spaces around '=' are not allowed"),
        (r"/CN=\xff", "not valid UTF-8"),
    ],
)
def test_parse_subject_dn_refuses_malformed(dn: str, fragment: str) -> None:
    with pytest.raises(CertificateError) as info:
        parse_subject_dn(dn)
    assert str(info.value).startswith(f"malformed subject DN {dn!r}: ")
    assert fragment in str(info.value)
    assert info.value.http_status == 401


# --- identity_from_subject_dn ----------------------------------------------------------------


@pytest.mark.parametrize(
    "dn",
    [
        "CN=mytool,O=toolforge",
        "O=toolforge,CN=mytool",
        "CN=mytool+O=toolforge",
        "OU=tools,CN=mytool,O=toolforge",
        "/O=toolforge/CN=mytool",
        r"CN=\6Dytool,O=toolforge",
    ],
)
def test_identity_from_subject_dn(dn: str) -> None:
    assert identity_from_subject_dn(dn, settings=SETTINGS) == MYTOOL


@pytest.mark.parametrize(
    ("dn", "message"),
    [
        ("O=toolforge", "client certificate subject has no CN"),
        ("", "client certificate subject has no CN"),
        (
            "CN=a,CN=b,O=toolforge",
            "client certificate subject has 2 CNs (a, b): exactly one is allowed",
        ),
        (
            "CN=mytool",
            "client certificate subject has no O: the certificate must be issued for O=toolforge",
        ),
        (
            "/CN=mytool/O=toolforge/O=admins",
            "client certificate subject has 2 Os (toolforge, admins): exactly one is allowed, "
            "the certificate must be issued for O=toolforge",
        ),
        (
            "CN=mytool,O=system:masters",
            'organisation "system:masters" is not allowed: '
            "the certificate must be issued for O=toolforge",
        ),
        (
            "CN=My_Tool,O=toolforge",
            'client certificate CN "My_Tool" is not a valid tool name: use lower case letters, '
            "digits and '-', starting and ending with a letter or digit",
        ),
    ],
)
def test_identity_from_subject_dn_refusals(dn: str, message: str) -> None:
    with pytest.raises(CertificateError) as info:
        identity_from_subject_dn(dn, settings=SETTINGS)
    assert str(info.value) == message


def test_identity_from_subject_dn_uses_the_configured_organisation() -> None:
    toolsbeta = IdentitySettings(organisation="toolsbeta")
    assert identity_from_subject_dn("CN=mytool,O=toolsbeta", settings=toolsbeta) == MYTOOL
    with pytest.raises(CertificateError, match="must be issued for O=toolsbeta"):
        identity_from_subject_dn("CN=mytool,O=toolforge", settings=toolsbeta)


tool_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200)
@given(tool_names)
def test_both_dn_forms_agree_with_for_tool(tool: str) -> None:
    expected = ToolIdentity.for_tool(tool, settings=SETTINGS)
    assert identity_from_subject_dn(f"CN={tool},O=toolforge", settings=SETTINGS) == expected
    assert identity_from_subject_dn(f"/O=toolforge/CN={tool}", settings=SETTINGS) == expected


def rfc4514_escape(value: str) -> str:
    """Escape every character as a UTF-8 hex pair: valid RFC 4514 for any text."""
    return "".join(f"\\{byte:02X}" for byte in value.encode())


@settings(max_examples=200)
@given(st.text(), st.text())
def test_hex_escaped_values_round_trip(common_name: str, organisation: str) -> None:
    dn = f"CN={rfc4514_escape(common_name)},O={rfc4514_escape(organisation)}"
    assert parse_subject_dn(dn) == (("CN", common_name), ("O", organisation))


# --- identity_from_certificate ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolforge-ca")])


@pytest.fixture(scope="module")
def client_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())



def issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name],
    client_key: ec.EllipticCurvePrivateKey,
    subject: Sequence[tuple[x509.ObjectIdentifier, str]],
    *,
    not_before: datetime = NOT_BEFORE,
    not_after: datetime = NOT_AFTER,
) -> x509.Certificate:
    ca_key, ca_name = ca
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in subject]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )


CN = NameOID.COMMON_NAME
O = NameOID.ORGANIZATION_NAME  # noqa: E741


def test_valid_certificate_gives_the_tool(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(O, "toolforge"), (CN, "mytool")])
    assert identity_from_certificate(cert, settings=SETTINGS, now=NOW) == MYTOOL
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert identity_from_certificate(pem, settings=SETTINGS, now=NOW) == MYTOOL


def test_validity_window_includes_both_ends(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(CN, "mytool"), (O, "toolforge")])
    for moment in (NOT_BEFORE, NOT_AFTER):
        assert identity_from_certificate(cert, settings=SETTINGS, now=moment) == MYTOOL
    # Any time zone is fine as long as it is explicit.
    local = NOW.astimezone(timezone(timedelta(hours=-7)))
    assert identity_from_certificate(cert, settings=SETTINGS, now=local) == MYTOOL


def test_expired_certificate_is_refused(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(CN, "mytool"), (O, "toolforge")])
    later = NOT_AFTER + timedelta(seconds=1)
    with pytest.raises(CertificateError) as info:
        identity_from_certificate(cert, settings=SETTINGS, now=later)
    assert str(info.value) == "client certificate expired at 2026-01-01T00:00:00Z"
    assert info.value.http_status == 401


def test_not_yet_valid_certificate_is_refused(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(CN, "mytool"), (O, "toolforge")])
    earlier = NOT_BEFORE - timedelta(seconds=1)
    with pytest.raises(CertificateError) as info:
        identity_from_certificate(cert, settings=SETTINGS, now=earlier)
    assert str(info.value) == "client certificate is not valid before 2025-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ([(O, "toolforge")], "client certificate subject has no CN"),
        (
            [(CN, "a"), (CN, "b"), (O, "toolforge")],
            "client certificate subject has 2 CNs (a, b): exactly one is allowed",
        ),
        (
            [(CN, "mytool"), (O, "admins")],
            'organisation "admins" is not allowed: the certificate must be issued for O=toolforge',
        ),
        (
            [(CN, "mytool")],
            "client certificate subject has no O: the certificate must be issued for O=toolforge",
        ),
        (
            [(CN, "mytool"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "toolforge")],
            "client certificate subject has no O: the certificate must be issued for O=toolforge",
        ),
        (
            [(CN, "my.tool"), (O, "toolforge")],
            'client certificate CN "my.tool" is not a valid tool name',
        ),
    ],
)
def test_certificate_subject_refusals(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name],
    client_key: ec.EllipticCurvePrivateKey,
    subject: list[tuple[x509.ObjectIdentifier, str]],
    message: str,
) -> None:
    cert = issue(ca, client_key, subject)
    with pytest.raises(CertificateError) as info:
        identity_from_certificate(cert, settings=SETTINGS, now=NOW)
    assert str(info.value).startswith(message)


def test_certificate_and_its_subject_dn_agree(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(O, "toolforge"), (CN, "mytool")])
    # What a TLS terminator would forward as ssl-client-subject-dn.
    header = cert.subject.rfc4514_string()
    assert identity_from_subject_dn(header, settings=SETTINGS) == identity_from_certificate(
        cert, settings=SETTINGS, now=NOW
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_non_pem_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        identity_from_certificate(data, settings=SETTINGS, now=NOW)


def test_der_bytes_are_refused(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    der = issue(ca, client_key, [(CN, "mytool"), (O, "toolforge")]).public_bytes(
        serialization.Encoding.DER
    )
    with pytest.raises(CertificateError, match="not a PEM certificate"):
        identity_from_certificate(der, settings=SETTINGS, now=NOW)


def test_naive_now_is_a_programming_error(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Name], client_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = issue(ca, client_key, [(CN, "mytool"), (O, "toolforge")])
    with pytest.raises(ValueError, match="timezone-aware"):
        identity_from_certificate(cert, settings=SETTINGS, now=NOW.replace(tzinfo=None))
