"""The emailer's settings: ConfigMap keys, TOML, environment, and errors naming key and value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tjf_core.errors import ConfigurationError
from tjf_emailer.settings import (
    KEYS,
    EmailerSettings,
    InvalidSettingsError,
    SmtpSecurity,
    load_settings,
    settings_from_env,
    settings_from_mapping,
    settings_from_toml,
)

#: A production ConfigMap, as the predecessor's deployment wrote it.
CONFIGMAP = {
    "email_from_addr": "noreply@toolforge.org",
    "email_to_domain": "tools.wmflabs.org",
    "email_to_prefix": "tools",
    "send_emails_for_real": "yes",
    "smtp_server_fqdn": "mail.tools.wmcloud.org",
    "smtp_server_port": "25",
    "task_compose_emails_loop_sleep": "400",
    "task_read_configmap_sleep": "10",
    "task_send_emails_loop_sleep": "10",
    "task_send_emails_max": "10",
    "task_watch_pods_timeout": "60",
    "debug": "no",
}


def test_defaults_are_a_working_configuration() -> None:
    settings = EmailerSettings()
    assert settings.digest.group_wait == timedelta(seconds=60)
    assert settings.digest.group_interval == timedelta(seconds=400)
    assert settings.logs.lines == 10
    assert settings.send.for_real is False


def test_a_configmap_is_parsed_into_typed_values() -> None:
    settings = settings_from_mapping(CONFIGMAP)
    assert settings.addressing.to_domain == "tools.wmflabs.org"
    assert settings.send.for_real is True
    assert settings.debug is False
    assert settings.smtp.port == 25
    assert settings.digest.group_interval == timedelta(seconds=400)
    assert settings.send.round_seconds == 10.0
    assert settings.send.max_per_round == 10
    assert settings.watch.pods_timeout == 60.0
    assert settings.watch.configmap_seconds == 10.0


def test_every_key_of_reference_9_is_known() -> None:
    assert set(CONFIGMAP) <= set(KEYS)


@pytest.mark.parametrize("text", ["yes", "YES", "true", "1", "on"])
def test_booleans_are_parsed(text: str) -> None:
    assert settings_from_mapping({"send_emails_for_real": text}).send.for_real is True


def test_every_invalid_value_is_reported_with_its_key_and_value() -> None:
    with pytest.raises(InvalidSettingsError) as caught:
        settings_from_mapping({
            "smtp_server_port": "99999", "send_emails_for_real": "maybe",
            "task_send_emails_max": "ten", "email_from_addr": "nobody",
            "task_send_emails_loop_sleep": "0", "smtp_tls": "ssl", "colour": "blue",
        })
    problems = {p.path: p.message for p in caught.value.problems}
    assert problems["smtp_server_port"] == "'99999' is out of range, use 1 to 65535"
    assert problems["send_emails_for_real"] == "'maybe' is not a boolean, use yes or no"
    assert problems["task_send_emails_max"] == "'ten' is not a whole number"
    assert problems["email_from_addr"].startswith("'nobody' is not an email address")
    assert "'0' is out of range" in problems["task_send_emails_loop_sleep"]
    assert problems["smtp_tls"] == "'ssl' is not allowed, use plain, starttls, tls"
    assert problems["colour"].startswith("is not a setting, use one of email_from_addr")
    assert isinstance(caught.value, ConfigurationError)
    assert "smtp_server_port: '99999'" in str(caught.value)


def test_a_password_is_never_sent_without_tls() -> None:
    with pytest.raises(InvalidSettingsError, match="smtp_username: 'me' would send a password"):
        settings_from_mapping({"smtp_username": "me", "smtp_password_file": "/run/pw"})
    settings = settings_from_mapping({"smtp_username": "me", "smtp_password_file": "/run/pw",
                                      "smtp_tls": "starttls", "smtp_ca_file": "/etc/ca.pem"})
    assert settings.smtp.security is SmtpSecurity.STARTTLS
    assert settings.smtp.password_file == Path("/run/pw")


def test_a_configmap_goes_over_a_base() -> None:
    base = settings_from_mapping({"log_lines": "3"})
    live = settings_from_mapping({"group_wait": "5"}, base=base)
    assert (live.logs.lines, live.digest.group_wait) == (3, timedelta(seconds=5))


def test_home_template_must_name_the_tool() -> None:
    with pytest.raises(InvalidSettingsError, match="home_template: '/data/project' must be"):
        settings_from_mapping({"home_template": "/data/project"})


def test_toml_file_with_native_types(tmp_path: Path) -> None:
    path = tmp_path / "emailer.toml"
    path.write_text('[emailer]\nsmtp_server_port = 587\nsmtp_tls = "starttls"\n'
                    'send_emails_for_real = true\ngroup_wait = 2.5\n')
    settings = settings_from_toml(path)
    assert settings.smtp.port == 587
    assert settings.send.for_real
    assert settings.digest.group_wait == timedelta(seconds=2.5)
    path.write_text("smtp_server_port = 1.5\n")
    with pytest.raises(InvalidSettingsError, match=r"smtp_server_port: 1\.5 is not a whole"):
        settings_from_toml(path)
    path.write_text("smtp_server_port = \n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        settings_from_toml(path)


def test_environment_variables_name_themselves_in_errors() -> None:
    settings = settings_from_env({"TJF_EMAILER_SMTP_SERVER_FQDN": "relay", "HOME": "/root"})
    assert settings.smtp.host == "relay"
    with pytest.raises(InvalidSettingsError, match="TJF_EMAILER_LOG_LINES: '-1' is out of range"):
        settings_from_env({"TJF_EMAILER_LOG_LINES": "-1"})


def test_load_layers_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "emailer.toml"
    path.write_text('smtp_server_fqdn = "from-file"\nlog_lines = 4\n')
    settings = load_settings(environ={"TJF_EMAILER_CONFIG": str(path),
                                      "TJF_EMAILER_SMTP_SERVER_FQDN": "from-env"})
    assert (settings.smtp.host, settings.logs.lines) == ("from-env", 4)
    assert load_settings() == EmailerSettings()
