"""The emailer process on a scripted API: a watch that expires mid-run loses and repeats
nothing, health and metrics answer over HTTP; and the ``tjf-emailer`` command line."""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import aiohttp
import attrs
import pytest

from tests.emailer.conftest import Server, settings_for
from tests.emailer.fake_kube import FakeApi, event, failed, gone, listing, pod
from tjf_core.errors import ConfigurationError
from tjf_core.notification_digest import DigestSettings
from tjf_emailer.__main__ import Emailer, describe_settings, main
from tjf_emailer.settings import (
    ClusterSettings,
    InvalidSettingsError,
    load_settings,
    settings_from_mapping,
    settings_from_toml,
)


def lines_in(server: Server) -> list[str]:
    found = []
    for data in list(server.recorder.messages):
        body = message_from_bytes(data, policy=default).get_content()
        found += [line for line in body.splitlines() if line.startswith("  - ")]
    return found


def test_a_watch_that_expires_mid_run_loses_and_repeats_nothing(
    smtp_server: Server, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    at = (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api = FakeApi()
    api.lists.append(listing(10, pod("a-1", 5)))
    api.watches.append([event("MODIFIED", failed("a-1", 11, at=at)), gone()])
    # While the watch was gone, b-1 failed: only the new list shows it.
    api.lists.append(listing(30, failed("a-1", 11, at=at), failed("b-1", 25, at=at)))
    base = settings_for(smtp_server.port, tmp_path / "spool")
    settings = attrs.evolve(
        base, digest=DigestSettings(group_wait=timedelta(seconds=0.2),
                                    group_interval=timedelta(seconds=0.2)),
        cluster=ClusterSettings(namespace="tjf", lease_name="", configmap_name="",
                                health_address="127.0.0.1", health_port=0))
    emailer = Emailer(settings, api=api.as_api(), identity="solo", tick=0.05)
    answers: dict[str, tuple[int, str]] = {}

    async def get(session: aiohttp.ClientSession, path: str) -> None:
        async with session.get(f"http://127.0.0.1:{emailer.health_port}{path}") as response:
            answers[path] = (response.status, await response.text())

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(emailer.run(stop))
        while len(lines_in(smtp_server)) < 2 or not api.quiet.is_set():
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as session:
            await get(session, "/healthz")
            await get(session, "/metrics")
            emailer.stats.last_activity = emailer.stats.clock() - 10_000  # no sign of life
            await get(session, "/stuck")
            answers["stuck"] = answers.pop("/stuck")
            await get(session, "/healthz")
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(run(), 20))
    assert sorted(lines_in(smtp_server)) == [
        f"  - {at[:10]} {at[11:19]} UTC: failed, exit code 3 (Error) (pod {name})"
        for name in ("a-1", "b-1")]
    assert emailer.stats.relists == 1
    assert answers["stuck"][0] == 404
    status, text = answers["/healthz"]
    assert status == 503
    assert '"status": "stuck"' in text
    status, text = answers["/metrics"]
    assert status == 200
    for sample in ("tjf_emailer_watch_relists_total 1.0", "tjf_emailer_is_leader 1.0",
                   "tjf_emailer_pod_events_total 4.0", "tjf_emailer_notifications_queued_total 2.0",
                   "tjf_emailer_emails_spooled_total", "tjf_emailer_spool_emails"):
        assert sample in text


def test_a_health_report_says_what_the_watch_and_spool_do(tmp_path: Path) -> None:
    settings = attrs.evolve(settings_from_mapping({"spool_dir": str(tmp_path)}),
                            cluster=ClusterSettings(namespace="tjf", watch_stuck_after=60))
    emailer = Emailer(settings, api=FakeApi().as_api(), identity="standby")
    healthy, body = asyncio.run(emailer.report())
    assert healthy
    assert body["leader"] is False
    assert body["spool"] == 0
    assert body["identity"] == "standby"
    assert body["lease_contact_seconds_ago"] is None


def test_check_config_prints_the_settings_as_toml_that_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[emailer]\nemail_to_domain = "toolforge.org"\nlease_name = "lease"\n'
                      'watch_namespaces = ["tool-a", "tool-b"]\n')
    monkeypatch.setenv("TJF_EMAILER_GROUP_WAIT", "7")
    monkeypatch.setenv("TJF_EMAILER_NAMESPACE", "tjf-emailer")
    assert main(["--config", str(config), "--check-config"]) == 0
    printed = capsys.readouterr().out
    copy = tmp_path / "printed.toml"
    copy.write_text(printed)
    expected = load_settings(path=config, environ=dict(os.environ))
    assert settings_from_toml(copy) == expected
    assert expected.cluster.watch_namespaces == ("tool-a", "tool-b")
    assert 'namespace = "tjf-emailer"' in printed


def test_check_config_masks_the_username(tmp_path: Path) -> None:
    settings = settings_from_mapping({"smtp_tls": "starttls", "smtp_username": "secret-user",
                                      "smtp_password_file": str(tmp_path / "password")})
    printed = describe_settings(settings)
    assert "secret-user" not in printed
    assert 'smtp_username = "********"' in printed


@pytest.mark.parametrize(("environ", "message"), [
    ({"TJF_EMAILER_SMTP_SERVER_PORT": "lots"},
     "tjf-emailer: invalid emailer settings: TJF_EMAILER_SMTP_SERVER_PORT: 'lots' is not a "
     "whole number\n"),
    ({"TJF_EMAILER_KUBECONFIG": "/nonexistent/kubeconfig"},
     "tjf-emailer: the service's own Kubernetes credentials (kubeconfig "
     "/nonexistent/kubeconfig) cannot be loaded: "),
])
def test_bad_settings_end_the_command_with_one_line(
    environ: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    error = capsys.readouterr().err
    assert error.startswith(message)
    assert error.count("\n") == 1
    assert "Traceback" not in error


def test_cluster_settings_are_parsed_and_checked() -> None:
    settings = settings_from_mapping({"watch_namespaces": "tool-a, tool-b",
                                      "lease_duration": "30", "health_port": "9090"})
    assert settings.cluster.watch_namespaces == ("tool-a", "tool-b")
    assert settings.cluster.lease_duration == 30.0
    assert settings.cluster.health_port == 9090
    with pytest.raises(InvalidSettingsError) as caught:
        settings_from_mapping({"watch_namespaces": "Tool_A", "lease_renew_deadline": "20"})
    problems = {p.path: p.message for p in caught.value.problems}
    assert problems["watch_namespaces"].startswith("'Tool_A' is not a Kubernetes name")
    with pytest.raises(InvalidSettingsError) as caught:
        settings_from_mapping({"lease_renew_deadline": "20"})
    assert str(caught.value) == (
        "invalid emailer settings: lease_renew_deadline: 20.0 must be below lease_duration "
        "(15.0) and above lease_retry_period (2.0)")


def test_a_health_port_in_use_is_a_configuration_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = attrs.evolve(
            settings_from_mapping({"spool_dir": str(tmp_path)}),
            cluster=ClusterSettings(namespace="tjf", health_address="127.0.0.1",
                                    health_port=port, lease_name="", configmap_name=""))
        emailer = Emailer(settings, api=FakeApi().as_api(), identity="solo")
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(asyncio.wait_for(emailer.run(asyncio.Event()), 10))
