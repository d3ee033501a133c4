"""The command line client and a local ``tjf-api``: its socket found by default, no certificate.

The server is the unix socket API of the HTTP tests (:mod:`tests.http.test_client_unix`: the
real app, the caller known by its peer credentials); the client's unix user is
``tools.alpha``. Nothing here has a kubeconfig: on a unix socket none is needed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from tests.http.test_client_unix import (
    HELLO,
    UnixApi,
    as_tools_alpha,  # noqa: F401 - a fixture
    short_socket_dir,
    start_unix_api,
)
from tjf_cli.backend import with_local_api
from tjf_cli.cli import cli as root_command
from tjf_cli.config import CliConfig
from tjf_cli.session import Session
from tjf_core.errors import ConfigurationError, InvalidInputError
from tjf_core.local_identity import tool_from_username


class LocalHome:
    """A user's login without any jobs configuration: a home, an empty config directory."""

    def __init__(self, root: Path, *, environ: dict[str, str] | None = None) -> None:
        self.home = root / "home"
        self.xdg = root / "xdg"
        self.system_dir = root / "etc-toolforge"
        self.home.mkdir(parents=True)
        self.xdg.mkdir()
        self.extra = environ or {}

    @property
    def environ(self) -> dict[str, str]:
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.xdg),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                **self.extra}

    def configure(self, document: dict[str, Any]) -> None:
        (self.xdg / "toolforge.yaml").write_text(yaml.safe_dump(document))

    def invoke(self, *args: str, uid: int | None = None, **environ: str) -> Result:
        session = Session(environ={**self.environ, **environ}, home=self.home,
                          system_dir=self.system_dir, uid=uid, poll_first=0.02, poll_max=0.05)
        return CliRunner().invoke(root_command, list(args), obj=session, catch_exceptions=False)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A user's ``$XDG_RUNTIME_DIR`` (short: socket paths are limited)."""
    directory = Path(short_socket_dir())
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def local_api(runtime_dir: Path, tmp_path: Path, as_tools_alpha: None) -> Iterator[UnixApi]:  # noqa: F811
    """A local API listening at ``runtime_dir/tjf/api.sock``, a user's default socket."""
    (runtime_dir / "tjf").mkdir()
    api = start_unix_api(str(runtime_dir / "tjf"), tmp_path / "homes")
    yield api
    api.stop()
    api.loop.close()


@pytest.fixture
def user(tmp_path: Path) -> LocalHome:
    return LocalHome(tmp_path / "user")


# --- finding the socket ------------------------------------------------------------------------


def test_the_users_runtime_directory_is_looked_in(local_api: UnixApi, user: LocalHome,
                                                  runtime_dir: Path) -> None:
    runtime = {"XDG_RUNTIME_DIR": str(runtime_dir)}
    created = user.invoke("run", "hello", "--command", "echo hi", "--image", "bookworm",
                          uid=1000, **runtime)
    assert created.exit_code == 0, created.stderr
    listed = user.invoke("list", "-o", "name", uid=1000, **runtime)
    assert (listed.exit_code, listed.stdout) == (0, "hello\n")
    (local_api.homes / "alpha" / "hello.out").write_text("hi\n")
    logs = user.invoke("logs", "hello", uid=1000, **runtime)
    assert (logs.exit_code, logs.stdout) == (0, "hi\n")


def test_the_variable_names_the_socket(local_api: UnixApi, user: LocalHome) -> None:
    result = user.invoke("list", "--debug", TJF_LOCAL_SOCKET=local_api.path)
    assert result.exit_code == 0, result.stderr
    assert (f"debug: jobs API: unix://{local_api.path} (from the environment variable "
            "TJF_LOCAL_SOCKET), mode api, tool alpha") in result.stderr


def test_a_configured_url_may_be_the_socket(local_api: UnixApi, user: LocalHome) -> None:
    by_variable = user.invoke("run", "hello", "--command", "x", "--image", "bookworm",
                              TJF_API_URL=f"unix://{local_api.path}")
    assert by_variable.exit_code == 0, by_variable.stderr
    user.configure({"api_gateway": {"url": f"unix://{local_api.path}"}})
    shown = user.invoke("show", "hello", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert '"name": "hello"' in shown.stdout


def test_nothing_configured_and_no_socket_says_what_to_do(user: LocalHome,
                                                          runtime_dir: Path) -> None:
    if Path("/run/tjf/api.sock").exists():  # pragma: no cover - a machine running tjf-api
        pytest.skip("this machine runs a local tjf-api")
    result = user.invoke("list", uid=1000, XDG_RUNTIME_DIR=str(runtime_dir))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: no jobs API is configured, and no local one runs here (no socket at "
        f"{runtime_dir}/tjf/api.sock or /run/tjf/api.sock): set api_gateway.url in "
        "~/.toolforge.yaml (or /etc/toolforge/common.yaml), or the environment variable "
        "TJF_API_URL; or start `tjf-api` in local mode (or set TJF_LOCAL_SOCKET to its "
        "socket)"]


def test_a_stopped_server_is_unreachable_and_says_how_to_start_it(local_api: UnixApi,
                                                                  user: LocalHome) -> None:
    local_api.stop()
    # aiohttp removes its socket when it stops; one left behind by a crash stays.
    Path(local_api.path).touch()
    result = user.invoke("list", TJF_LOCAL_SOCKET=local_api.path)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot reach the jobs API at unix://{local_api.path}: ")
    assert "start `tjf-api` in local mode" in line
    assert "(it comes from the environment variable TJF_LOCAL_SOCKET)" in line


def test_with_local_api_rules(tmp_path: Path) -> None:
    there = {"/run/tjf/api.sock"}
    nothing = CliConfig()
    found = with_local_api(nothing, environ={"XDG_RUNTIME_DIR": "/run/user/7"}, uid=7,
                           exists=there.__contains__)
    assert (found.api_url, found.api_url_source) == (
        "unix:///run/tjf/api.sock", "the default local socket, as no jobs API URL is configured")
    mine = with_local_api(nothing, environ={"XDG_RUNTIME_DIR": "/run/user/7"}, uid=7,
                          exists={"/run/user/7/tjf/api.sock", *there}.__contains__)
    assert mine.api_url == "unix:///run/user/7/tjf/api.sock"
    configured = CliConfig(api_url="https://api", api_url_source="x")
    assert with_local_api(configured, environ={}, uid=0, exists=there.__contains__) is configured
    direct = CliConfig(mode="direct")
    assert with_local_api(direct, environ={}, uid=0, exists=lambda _: False) is direct
    with pytest.raises(ConfigurationError, match="TJF_LOCAL_SOCKET 'rel' is not an absolute"):
        with_local_api(nothing, environ={"TJF_LOCAL_SOCKET": "rel"}, uid=7,
                       exists=there.__contains__)
    assert PurePosixPath(str(found.api_url).removeprefix("unix://")).is_absolute()


def test_the_local_mode_imports_nothing_heavy(tmp_path: Path) -> None:
    try:  # a real process: its tool is the name of the user running the tests
        tool_from_username(pwd.getpwuid(os.geteuid()).pw_name)
    except (KeyError, InvalidInputError):  # pragma: no cover - depends on the machine
        pytest.skip("the user running the tests is not named like a tool")
    probe = ("import sys\nfrom tjf_cli.__main__ import main\ncode = main(['list'])\n"
             "heavy = ('kubernetes', 'aiohttp', 'urllib3', 'tjf_core.kube', 'tjf_http.app', "
             "'tjf_http.server', 'tjf_cli.direct')\n"
             "print(code, sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in "
             "heavy) or '-', file=sys.stderr)")
    user = LocalHome(tmp_path / "u")
    environ = {**user.environ, "TJF_API_URL": f"unix://{tmp_path}/none.sock"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=environ, timeout=60, check=False)
    *error, last = done.stderr.splitlines()
    assert last == "2 -", done.stderr
    assert error == [f"Error: cannot reach the jobs API at unix://{tmp_path}/none.sock: the "
                     f"socket {tmp_path}/none.sock does not exist; start `tjf-api` in local "
                     "mode (it listens there), or configure the jobs API's URL (TJF_API_URL, "
                     "or api_gateway.url); check the URL (it comes from the environment "
                     "variable TJF_API_URL), or try again later"]


def test_the_server_sees_a_run_as_the_cli_made_it(local_api: UnixApi, user: LocalHome) -> None:
    result = user.invoke("run", "hello", "--command", "echo hi", "--image", "bookworm",
                         TJF_LOCAL_SOCKET=local_api.path)
    assert result.exit_code == 0, result.stderr
    [job] = local_api.service.list(local_api.service.identity("alpha")).jobs
    assert job.spec == HELLO
