"""Who may call: certificates on the direct listener, headers only on the trusted one."""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import stat
from datetime import UTC, datetime, timedelta

import pytest

from tests.http.conftest import ALPHA_DN, Client, Harness, HarnessFactory
from tests.http.pki import Issued
from tjf_core.model import JobSpec

REFUSED = (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)


def _refused_in_tls(h: Harness, client: Client, *, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tjf_http.access")
    calls_before = sum(h.runtime.calls.values())
    with pytest.raises(REFUSED):
        client.get("/v1/tool/alpha/jobs")
    # the refusal happened in the TLS layer: no request was ever seen, no runtime call made
    assert sum(h.runtime.calls.values()) == calls_before
    assert not [r for r in caplog.records if r.name == "tjf_http.access"]


def test_no_certificate_is_refused(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    _refused_in_tls(h, h.tls(use_default=False), caplog=caplog)


@pytest.mark.parametrize("which", ["foreign", "expired"])
def test_certificates_the_ca_did_not_sign_or_that_expired_are_refused(
    h: Harness, caplog: pytest.LogCaptureFixture, which: str,
) -> None:
    issued: Issued = getattr(h.pki, which)
    _refused_in_tls(h, h.tls(issued), caplog=caplog)


def test_a_certificate_of_another_organisation_is_401(h: Harness) -> None:
    reply = h.tls(h.pki.wrong_org).get("/v1/tool/alpha/jobs")
    assert reply.status == 401
    assert "O=toolforge" in reply.errors[0]


def test_one_tools_certificate_on_another_tools_path_is_403(h: Harness) -> None:
    h.service.run(h.tool("beta"), JobSpec(name="secret", command="x", image="bookworm"))
    api = h.tls(h.pki.alpha)
    for method, path in (("GET", "/v1/tool/beta/jobs"), ("GET", "/v1/tool/beta/jobs/secret"),
                         ("DELETE", "/v1/tool/beta/jobs/secret"),
                         ("DELETE", "/v1/tool/beta/jobs"), ("GET", "/v1/tool/beta/quotas")):
        reply = api.request(method, path)
        assert reply.status == 403, (method, path)
        assert "'beta' in the path is not the authenticated tool 'alpha'" in reply.errors[0]
    assert [j.spec.name for j in h.service.list(h.tool("beta")).jobs] == ["secret"]


def test_a_spoofed_subject_header_on_the_direct_listener_is_ignored(h: Harness) -> None:
    h.service.run(h.tool("beta"), JobSpec(name="secret", command="x", image="bookworm"))
    spoof = {"ssl-client-subject-dn": "CN=beta,O=toolforge", "x-toolforge-tool": "beta"}
    api = h.tls(h.pki.alpha, headers=spoof)
    assert api.get("/v1/tool/beta/jobs").status == 403
    assert api.get("/api/v1/list/").json() == []  # still alpha
    assert api.get("/v1/tool/alpha/jobs").status == 200


def test_the_trusted_socket_believes_the_proxys_header(h: Harness) -> None:
    h.service.run(h.tool("beta"), JobSpec(name="theirs", command="x", image="bookworm"))
    beta = h.trusted("CN=beta,O=toolforge")
    assert [j["name"] for j in beta.get("/v1/tool/beta/jobs").json()["jobs"]] == ["theirs"]
    assert beta.get("/v1/tool/alpha/jobs").status == 403
    oneline = h.trusted("/O=toolforge/CN=beta")  # OpenSSL's one-line form
    assert oneline.get("/v1/tool/beta/jobs").status == 200


def test_the_trusted_socket_refuses_a_missing_or_bad_header(h: Harness) -> None:
    missing = h.trusted(dn=None).get("/v1/tool/alpha/jobs")
    assert missing.status == 401
    assert "ssl-client-subject-dn" in missing.errors[0]
    assert h.trusted("CN=alpha,O=admins").get("/v1/tool/alpha/jobs").status == 401
    assert h.trusted("CN=alpha,O=toolforge,garbage").get("/v1/tool/alpha/jobs").status == 401


def test_the_gateway_tool_header_is_read_on_the_trusted_socket(h: Harness) -> None:
    gateway = h.trusted(dn=None, headers={"x-toolforge-tool": "beta"})
    assert gateway.get("/v1/tool/beta/jobs").status == 200
    assert h.trusted(dn=None, headers={"x-toolforge-tool": "Not A Tool"}).get(
        "/v1/tool/beta/jobs").status == 401


def test_the_ops_listener_serves_no_jobs(h: Harness) -> None:
    ops = h.ops()
    reply = ops.get("/v1/tool/alpha/jobs", headers={"ssl-client-subject-dn": ALPHA_DN})
    assert reply.status == 404
    assert ops.get("/api/v1/list/").status == 404


def test_the_unix_socket_is_private(h: Harness) -> None:
    mode = stat.S_IMODE(os.stat(h.socket_path).st_mode)
    assert mode == 0o600


def test_the_request_id_of_a_trusted_proxy_is_kept_and_others_are_not(h: Harness) -> None:
    trusted = h.trusted(headers={"X-Request-Id": "proxy-123"}).get("/v1/tool/alpha/jobs")
    assert trusted.headers["X-Request-Id"] == "proxy-123"
    direct = h.tls(headers={"X-Request-Id": "spoofed"}).get("/v1/tool/alpha/jobs")
    assert direct.headers["X-Request-Id"] != "spoofed"


def test_the_identity_checks_validity_at_the_apps_clock(make_harness: HarnessFactory) -> None:
    # The TLS layer checks validity by the system clock; the identity checks it again by the
    # app's (injected) clock, so a certificate is never taken outside its window.
    late = make_harness(app_clock=lambda: datetime.now(UTC) + timedelta(days=365))
    reply = late.tls().get("/v1/tool/alpha/jobs")
    assert reply.status == 401
    assert "expired" in reply.errors[0]
