"""The layered configuration: which file wins, the endpoint, TJF_API_URL, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tjf_cli.config import config_files, load_config
from tjf_core.errors import ConfigurationError


def _write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "home", tmp_path / "etc"


def test_the_files_in_order(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    assert config_files({}, home=home, system_dir=etc) == [
        etc / "common.yaml", etc / "jobs-cli.yaml", home / ".toolforge.yaml",
        home / ".config" / "toolforge.yaml"]
    assert config_files({"XDG_CONFIG_HOME": "/x"}, home=home, system_dir=etc)[-1] == Path(
        "/x/toolforge.yaml")


def test_later_files_override_single_keys(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    _write(etc / "common.yaml", {"api_gateway": {"url": "https://gateway:30003"},
                                 "builds": {"other": "client"}, "jobs": {"timeout": 10}})
    _write(etc / "jobs-cli.yaml", {"jobs": {"jobs_endpoint": "/jobs/api"}})
    config = load_config({}, home=home, system_dir=etc)
    assert config.api_url == "https://gateway:30003/jobs/api"
    assert config.api_url_source == f"api_gateway.url of the configuration file '{etc}/common.yaml'"
    assert config.timeout == 10
    assert config.mode == "api"
    _write(home / ".toolforge.yaml", {"jobs": {"timeout": 5.5}})
    _write(home / ".config" / "toolforge.yaml", {"api_gateway": {"url": "https://mine/"},
                                                 "jobs": {"mode": "direct"}})
    config = load_config({}, home=home, system_dir=etc)
    assert (config.api_url, config.timeout, config.mode) == ("https://mine/jobs/api", 5.5,
                                                             "direct")
    assert len(config.files) == 4


def test_the_default_endpoint_and_the_variable(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    _write(home / ".toolforge.yaml", {"api_gateway": {"url": "https://gw", "ca_file": "~/ca"}})
    config = load_config({}, home=home, system_dir=etc)
    assert config.api_url == "https://gw/jobs"
    assert config.ca_file is not None
    assert config.ca_file.endswith("/ca")
    assert not config.ca_file.startswith("~")
    overridden = load_config({"TJF_API_URL": "https://elsewhere:1/x"}, home=home,
                             system_dir=etc)
    assert overridden.api_url == "https://elsewhere:1/x"
    assert overridden.api_url_source == "the environment variable TJF_API_URL"


def test_a_unix_socket_gateway_takes_no_endpoint(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    _write(etc / "common.yaml", {"jobs": {"jobs_endpoint": "/jobs/api"}})
    _write(home / ".toolforge.yaml", {"api_gateway": {"url": "unix:///run/tjf/api.sock"}})
    config = load_config({}, home=home, system_dir=etc)
    assert config.api_url == "unix:///run/tjf/api.sock"
    assert config.api_url_source == (
        f"api_gateway.url of the configuration file '{home}/.toolforge.yaml'")
    _write(home / ".toolforge.yaml", {"api_gateway": {"url": "http+unix://%2Frun%2Fapi.sock"}})
    assert load_config({}, home=home, system_dir=etc).api_url == (
        "http+unix://%2Frun%2Fapi.sock/jobs/api")


def test_nothing_configured(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    config = load_config({}, home=home, system_dir=etc)
    assert (config.api_url, config.files) == (None, ())


@pytest.mark.parametrize(("document", "message"), [
    ({"jobs": {"timeout": 0}}, "jobs.timeout: 0 is not allowed"),
    ({"jobs": {"timeout": True}}, "jobs.timeout: True is not allowed"),
    ({"jobs": {"mode": "magic"}}, "jobs.mode: 'magic' is not allowed, use api or direct"),
    ({"api_gateway": {"url": 42}}, "api_gateway.url: 42 is not allowed, use text"),
    (["a", "list"], "must be a mapping of keys"),
])
def test_bad_values_name_the_file_and_key(layout: tuple[Path, Path], document: object,
                                          message: str) -> None:
    home, etc = layout
    _write(home / ".toolforge.yaml", document)
    with pytest.raises(ConfigurationError, match=message) as raised:
        load_config({}, home=home, system_dir=etc)
    assert str(home / ".toolforge.yaml") in str(raised.value)


def test_an_unreadable_file(layout: tuple[Path, Path]) -> None:
    home, etc = layout
    (home / ".toolforge.yaml").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_config({}, home=home, system_dir=etc)
