"""The command line client against a live ``tjf-api`` over real TLS (the in-memory runtime).

The server, its PKI and its runtime are the HTTP tests' fixtures (imported, not copied). On
top of them, :class:`ToolHome` is a tool's login: a home with the tool's kubeconfig (the
certificate files next to it, named relatively), and a ``$XDG_CONFIG_HOME/toolforge.yaml``
naming the server and the CA that signed it. ``cli.invoke(...)`` runs a command in this
process with click's runner; ``cli.run_process(...)`` runs ``python -m tjf_cli`` for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from tests.http.conftest import Harness, h, make_harness, pki  # noqa: F401 - fixtures
from tests.http.pki import Issued
from tjf_cli.cli import cli as root_command
from tjf_cli.session import Session
from tjf_http.auth import ListenerKind


def api_url(harness: Harness) -> str:
    address = harness.server.addresses[ListenerKind.DIRECT][0]
    assert isinstance(address, tuple)
    return f"https://127.0.0.1:{address[1]}"


def write_kubeconfig(directory: Path, issued: Issued, *, user: str = "tf-alpha") -> Path:
    """A tool's kubeconfig naming its certificate files relatively, as maintain-kubeusers does."""
    certs = directory / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(issued.cert, certs / "client.crt")
    shutil.copy(issued.key, certs / "client.key")
    config = directory / "config"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "toolforge",
        "clusters": [{"name": "toolforge", "cluster": {"server": "https://k8s.invalid:6443"}}],
        "contexts": [{"name": "toolforge", "context": {"cluster": "toolforge", "user": user}}],
        "users": [{"name": user, "user": {"client-certificate": "certs/client.crt",
                                          "client-key": "certs/client.key"}}],
    }))
    return config


class ToolHome:
    """A tool's login on a host: home, kubeconfig, configuration, and ways to run the client."""

    def __init__(self, harness: Harness, root: Path) -> None:
        self.h = harness
        self.home = root / "home"
        self.xdg = root / "xdg"
        self.system_dir = root / "etc-toolforge"
        self.xdg.mkdir(parents=True)
        self.kubeconfig = write_kubeconfig(self.home / ".kube", harness.pki.alpha)
        self.configure({"api_gateway": {"url": api_url(harness), "ca_file": str(harness.pki.ca)},
                        "jobs": {"jobs_endpoint": ""}})

    def configure(self, document: dict[str, Any]) -> None:
        (self.xdg / "toolforge.yaml").write_text(yaml.safe_dump(document))

    @property
    def environ(self) -> dict[str, str]:
        # TJF_LOCAL_SOCKET names a socket that is never there, so a test with nothing
        # configured cannot find a local tjf-api this machine happens to run.
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.xdg),
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                "TJF_LOCAL_SOCKET": str(self.no_local_socket)}

    @property
    def no_local_socket(self) -> Path:
        return self.home.parent / "no-local-api.sock"

    def session(self, *, environ: dict[str, str] | None = None, **kwargs: Any) -> Session:
        values: dict[str, Any] = {"poll_first": 0.02, "poll_max": 0.05, "follow_grace": 5.0}
        values.update(kwargs)
        return Session(environ=self.environ if environ is None else environ, home=self.home,
                       system_dir=self.system_dir, **values)

    def invoke(self, *args: str, input: str | None = None, session: Session | None = None,
               env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(root_command, list(args), input=input, env=env,
                             obj=session or self.session(), catch_exceptions=False)

    def run_process(self, *args: str, env: dict[str, str] | None = None,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tjf_cli", *args], capture_output=True,
                              text=True, env={**self.environ, **(env or {})}, timeout=timeout,
                              check=False)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tjf_cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.environ, **(env or {})})


@pytest.fixture
def tool(h: Harness, tmp_path: Path) -> ToolHome:  # noqa: F811 - the imported fixture
    return ToolHome(h, tmp_path / "alpha")


def eventually(what: str, check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.01)


@pytest.fixture
def end_job(h: Harness) -> Iterator[Callable[..., None]]:  # noqa: F811
    """``end_job(name, exit_code)`` ends the job's pod from a thread once the pod exists."""
    import threading

    threads: list[threading.Thread] = []

    def end(name: str, exit_code: int = 0, *, delay: float = 0.1) -> None:
        def act() -> None:
            driver = h.driver()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if h.runtime.objects(h.tool(), "Job"):
                    pods = driver.pods_of(name)
                    if pods:
                        time.sleep(delay)
                        if exit_code == 0:
                            driver.set_succeeded(pods[-1])
                        else:
                            driver.set_failed(pods[-1], exit_code)
                        return
                time.sleep(0.01)

        thread = threading.Thread(target=act, daemon=True)
        thread.start()
        threads.append(thread)

    yield end
    for thread in threads:
        thread.join(30)
