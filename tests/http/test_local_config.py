"""Local mode's settings: which runtime by default, where things go, the embedded emailer's."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest

from tjf_core.errors import ConfigurationError
from tjf_emailer.settings import SmtpSecurity
from tjf_http.local_emailer import PodBridge, embedded_emailer_settings
from tjf_http.local_settings import LocalModeSettings, choose_runtime, default_local_dirs

RESOLVED = LocalModeSettings(socket="/s/api.sock", root="/srv/tools", state_dir="/var/tjf")


# --- which runtime -------------------------------------------------------------------------------


def test_without_a_cluster_the_runtime_is_local() -> None:
    assert choose_runtime(None, sections=["server", "tls"], environ={}) == "local"


def test_a_configured_cluster_makes_it_kubernetes() -> None:
    assert choose_runtime(None, sections=["kubernetes"], environ={}) == "kubernetes"
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert choose_runtime(None, sections=[], environ=in_cluster) == "kubernetes"


def test_a_named_runtime_wins() -> None:
    assert choose_runtime("memory", sections=["kubernetes"], environ={}) == "memory"
    assert choose_runtime("local", sections=["kubernetes"], environ={}) == "local"


# --- places --------------------------------------------------------------------------------------


def test_root_uses_the_machines_places() -> None:
    resolved = LocalModeSettings().resolved({"HOME": "/root"}, uid=0)
    assert resolved.socket == "/run/tjf/api.sock"
    assert resolved.root == "/var/lib/tjf/tools"
    assert resolved.state_dir == "/var/lib/tjf/state"


def test_a_user_gets_private_places() -> None:
    environ = {"HOME": "/home/ada", "XDG_RUNTIME_DIR": "/run/user/1000"}
    resolved = LocalModeSettings().resolved(environ, uid=1000)
    assert resolved.socket == "/run/user/1000/tjf/api.sock"
    assert resolved.root == "/home/ada/.local/state/tjf/tools"
    assert resolved.state_dir == "/home/ada/.local/state/tjf/state"
    with_state_home = {**environ, "XDG_STATE_HOME": "/data/ada/state"}
    assert default_local_dirs(with_state_home, uid=1000) == (
        PurePosixPath("/data/ada/state/tjf/tools"), PurePosixPath("/data/ada/state/tjf/state"))


def test_the_socket_variable_names_the_socket() -> None:
    for uid in (0, 1000):
        resolved = LocalModeSettings().resolved(
            {"TJF_LOCAL_SOCKET": "/tmp/x.sock", "HOME": "/home/ada"}, uid=uid)
        assert resolved.socket == "/tmp/x.sock"


def test_given_places_are_kept() -> None:
    given = LocalModeSettings(socket="/a.sock", socket_mode="600", root="/b", state_dir="/c")
    assert given.resolved({}, uid=1000) == given


def test_a_user_without_a_home_must_name_the_places() -> None:
    with pytest.raises(ConfigurationError, match=r"set local\.root and local\.state_dir"):
        LocalModeSettings().resolved({"HOME": "relative"}, uid=1000)


@pytest.mark.parametrize(("values", "message"), [
    ({"socket_mode": "rw"}, "local.socket_mode 'rw' is not octal permissions"),
    ({"home_mode": "800"}, "local.home_mode '800' is not octal permissions"),
    ({"root": "tools"}, "local.root 'tools' is not an absolute path"),
    ({"socket": "api.sock"}, "local.socket 'api.sock' is not an absolute path"),
    ({"grace_period": -1.0}, "local.grace_period -1.0 must be 0 or more"),
    ({"run_as": "tools"}, "local.run_as 'tools' does not hold {tool}"),
])
def test_bad_local_settings_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        LocalModeSettings(**values)  # type: ignore[arg-type]


def test_permissions_read_as_octal() -> None:
    settings = LocalModeSettings(socket_mode="660", home_mode="750")
    assert (settings.socket_permissions, settings.home_permissions) == (0o660, 0o750)


# --- the embedded emailer ------------------------------------------------------------------------


def test_the_emailer_is_off_unless_configured() -> None:
    assert embedded_emailer_settings({}, local=RESOLVED) is None
    assert embedded_emailer_settings({"group_wait": "5"}, local=RESOLVED) is None
    assert embedded_emailer_settings({"enabled": "false", "smtp_server_fqdn": "mx"},
                                     local=RESOLVED) is None


def test_a_mail_server_turns_the_emailer_on_with_local_defaults() -> None:
    settings = embedded_emailer_settings(
        {"smtp_server_fqdn": "mx.example.org", "smtp_server_port": 587, "smtp_tls": "starttls",
         "group_wait": 2}, local=RESOLVED)
    assert settings is not None
    assert (settings.smtp.host, settings.smtp.port) == ("mx.example.org", 587)
    assert settings.smtp.security is SmtpSecurity.STARTTLS
    assert settings.digest.group_wait == timedelta(seconds=2)
    assert settings.send.for_real is True
    assert settings.send.spool_dir == Path("/var/tjf/emailer-spool")
    assert settings.logs.home_template == "/srv/tools/{tool}"


def test_enabled_alone_turns_it_on_and_settings_may_say_otherwise() -> None:
    settings = embedded_emailer_settings(
        {"enabled": True, "send_emails_for_real": "no", "spool_dir": "/spool",
         "home_template": "/home/{tool}"}, local=RESOLVED)
    assert settings is not None
    assert settings.smtp.host == "mail.tools.wmcloud.org"  # the emailer's own default
    assert settings.send.for_real is False
    assert settings.send.spool_dir == Path("/spool")
    assert settings.logs.home_template == "/home/{tool}"


def test_a_settings_file_is_read_under_the_section(tmp_path: Path) -> None:
    file = tmp_path / "emailer.toml"
    file.write_text('smtp_server_fqdn = "relay"\ngroup_wait = 3\n')
    settings = embedded_emailer_settings({"config": str(file), "group_wait": "4"},
                                         local=RESOLVED)
    assert settings is not None
    assert settings.smtp.host == "relay"
    assert settings.digest.group_wait == timedelta(seconds=4)  # the section over the file


def test_bad_emailer_settings_are_named() -> None:
    with pytest.raises(ConfigurationError, match=r"\[emailer\] .*smtp_server_port"):
        embedded_emailer_settings({"smtp_server_fqdn": "mx", "smtp_server_port": "lots"},
                                  local=RESOLVED)
    with pytest.raises(ConfigurationError, match=r"emailer\.enabled 'perhaps' is not allowed"):
        embedded_emailer_settings({"enabled": "perhaps"}, local=RESOLVED)


# --- the bridge from the runtime's thread --------------------------------------------------------


def test_the_bridge_keeps_early_pods_and_hands_on_later_ones() -> None:
    async def scenario() -> list[str]:
        bridge = PodBridge()
        bridge({"n": "early"})
        queue = bridge.attach(asyncio.get_running_loop())
        await asyncio.to_thread(bridge, {"n": "from a thread"})
        got = [(await asyncio.wait_for(queue.get(), 5))["n"] for _ in range(2)]
        bridge.detach()
        bridge({"n": "dropped"})
        await asyncio.sleep(0)
        assert queue.empty()
        return got

    assert asyncio.run(scenario()) == ["early", "from a thread"]


# --- who may call, and as whom jobs run ------------------------------------------------------


def test_a_root_server_must_say_as_whom_jobs_run() -> None:
    with pytest.raises(ConfigurationError, match=r"local\.run_as .* or local\.single_user = "
                                                 r"true .* anyone's jobs would run as root"):
        LocalModeSettings().check_safe(uid=0)
    LocalModeSettings(run_as="tools.{tool}").check_safe(uid=0)
    LocalModeSettings(single_user=True).check_safe(uid=0)


def test_a_users_server_is_single_user_unless_jobs_run_as_tools() -> None:
    LocalModeSettings().check_safe(uid=1000)
    assert LocalModeSettings().is_single_user
    assert not LocalModeSettings(run_as="tools.{tool}").is_single_user
    with pytest.raises(ConfigurationError, match=r"single_user = false needs local\.run_as"):
        LocalModeSettings(single_user=False).check_safe(uid=1000)


def test_single_user_and_run_as_contradict() -> None:
    with pytest.raises(ConfigurationError, match="contradict each other"):
        LocalModeSettings(single_user=True, run_as="tools.{tool}")


def test_the_socket_is_open_to_all_only_when_jobs_run_as_their_tools() -> None:
    assert LocalModeSettings().socket_permissions == 0o660
    assert LocalModeSettings(single_user=True).resolved({}, uid=0).socket_mode == "660"
    assert LocalModeSettings(run_as="tools.{tool}").socket_permissions == 0o666
    assert LocalModeSettings(run_as="tools.{tool}", socket_mode="640").socket_permissions == (
        0o640)
