"""The server's configuration: file, environment and flags, checked with useful messages."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tjf_core.errors import ConfigurationError
from tjf_http.config import SECTIONS, load_config, masked, parse_assignment

TRUSTED_ONLY = {"TJF_TLS_ENABLED": "false", "TJF_TRUSTED_UNIX_SOCKET": "/run/tjf.sock"}


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tjf.toml"
    path.write_text(text)
    return path


def test_later_sources_win(tmp_path: Path) -> None:
    config_file = _file(tmp_path, 'runtime = "memory"\n[server]\nthreads = 4\n'
                                  'call_timeout_seconds = 12\n[tls]\nenabled = false\n'
                                  '[trusted]\nunix_socket = "/a.sock"\n')
    config = load_config(file=config_file,
                         environ={"TJF_SERVER_THREADS": "8", "TJF_OPS_HOST": "127.0.0.1",
                                  "PATH": "/bin", "TJF_EMAILER_DEBUG": "1"},
                         overrides={("trusted", "unix_socket"): "/b.sock"})
    assert config.runtime == "memory"
    assert config.http.server.threads == 8  # environment over file
    assert config.http.server.call_timeout_seconds == 12.0  # file over default
    assert config.http.trusted.unix_socket == "/b.sock"  # flags over everything
    assert config.http.ops.host == "127.0.0.1"
    assert config.http.server.max_body_bytes == 1024 * 1024  # default


def test_core_settings_come_from_their_sections(tmp_path: Path) -> None:
    config = load_config(environ={**TRUSTED_ONLY, "TJF_RUNTIME": "memory",
                                  "TJF_IDENTITY_ORGANISATION": "toolsbeta",
                                  "TJF_RENDER_TTL_SECONDS_AFTER_FINISHED": "60"})
    assert config.core.identity.organisation == "toolsbeta"
    assert config.core.render.ttl_seconds_after_finished == 60


def test_kubernetes_settings_are_checked_at_load() -> None:
    config = load_config(environ={**TRUSTED_ONLY, "TJF_KUBERNETES_MODE": "impersonation",
                                  "TJF_KUBERNETES_IMPERSONATE_GROUPS": "toolforge, tools"})
    kube = config.kube_settings()
    assert kube.mode == "impersonation"
    assert kube.impersonate_groups == ("toolforge", "tools")
    with pytest.raises(ConfigurationError, match="'sideways' is not allowed"):
        load_config(environ={**TRUSTED_ONLY, "TJF_KUBERNETES_MODE": "sideways"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TJF_SERVER_THREDS": "4"}, "setting 'server.threds' is not known: did you mean "
                                     "'server.threads'?"),
        ({"TJF_SERVER_THREADS": "many"}, "server.threads: 'many' is not allowed, use a whole "
                                         "number"),
        ({"TJF_SERVER_THREADS": "0"}, "server.threads 0 must be at least 1"),
        ({"TJF_RUNTIME": "docker"},
         "runtime 'docker' is not known, use local, kubernetes or memory"),
        ({"TJF_TRUSTED_HOST": "0.0.0.0", "TJF_TRUSTED_PORT": "8080"},
         "trusted.host '0.0.0.0' is not a loopback address"),
        ({"TJF_TRUSTED_SOCKET_MODE": "rw"}, "trusted.socket_mode 'rw' is not octal"),
        ({"TJF_SERVER_LOG_LEVEL": "loud"}, "server.log_level 'loud' is not known"),
        ({"TJF_TLS_PORT": "70000"}, "tls.port 70000 is out of range"),
    ],
)
def test_bad_settings_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(environ={**TRUSTED_ONLY, "TJF_RUNTIME": "memory", **environ})
    assert message in str(caught.value)


def test_tls_needs_its_files() -> None:
    with pytest.raises(ConfigurationError, match=r"tls\.cert_file is required"):
        load_config(environ={"TJF_RUNTIME": "memory"})


def test_some_listener_must_serve_the_api() -> None:
    with pytest.raises(ConfigurationError, match="no listener serves the API"):
        load_config(environ={"TJF_RUNTIME": "memory", "TJF_TLS_ENABLED": "false"})


def test_unknown_sections_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="section 'sever' is not known: did you mean "
                                                 "'server'"):
        load_config(file=_file(tmp_path, "[sever]\nthreads = 1\n"))
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        load_config(file=_file(tmp_path, "[server\n"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_config(file=tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match="True is not allowed, use a whole number"):
        load_config(file=_file(tmp_path, '[server]\nthreads = true\n[tls]\nenabled = false\n'
                                         '[trusted]\nunix_socket = "/s"\n'))


def test_secrets_are_masked() -> None:
    data = {"kubernetes": {"token": "abc", "password": None, "ca_file": "/ca"},
            "runtime": "memory"}
    assert masked(data) == {"kubernetes": {"token": "***", "password": None,
                                           "ca_file": "/ca"}, "runtime": "memory"}


def test_assignments() -> None:
    assert parse_assignment("tls.port=8443") == ("tls", "port", "8443")
    assert parse_assignment("kubernetes.ca_file=/a=b") == ("kubernetes", "ca_file", "/a=b")
    with pytest.raises(ConfigurationError, match=r"is not section\.key=value"):
        parse_assignment("port=8443")


def test_every_setting_is_in_the_admin_guide() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "admin.md").read_text()
    for section, cls in SECTIONS.items():
        for field in attrs.fields(cls):
            assert f"`TJF_{section.upper()}_{field.name.upper()}`" in guide, (section, field.name)
