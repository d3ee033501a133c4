"""``python -m tjf_http``: --check-config, and a real server process stopped with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.http.conftest import Client, Reply, UnixConnection
from tests.http.pki import Pki
from tjf_http.__main__ import main

DN = {"ssl-client-subject-dn": "CN=alpha,O=toolforge"}


def _eventually(what: str, check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TJF_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environ")
def test_check_config_prints_the_effective_configuration(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "api.toml"
    config.write_text(f'[tls]\ncert_file = "{pki.server.cert}"\nkey_file = "{pki.server.key}"\n'
                      f'client_ca_file = "{pki.ca}"\n[kubernetes]\nmode = "impersonation"\n')
    monkeypatch.setenv("TJF_SERVER_THREADS", "3")
    code = main(["--config", str(config), "--port", "9443", "--set", "ops.host=127.0.0.1",
                 "--check-config"])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["runtime"] == "kubernetes"
    assert shown["tls"]["port"] == 9443
    assert shown["tls"]["cert_file"] == str(pki.server.cert)
    assert shown["server"]["threads"] == 3
    assert shown["ops"]["host"] == "127.0.0.1"
    assert shown["kubernetes"]["mode"] == "impersonation"
    assert shown["identity"]["organisation"] == "toolforge"


@pytest.mark.usefixtures("clean_environ")
def test_check_config_refuses_what_cannot_work(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--runtime", "memory", "--cert", str(pki.server.cert), "--key",
                 str(pki.alpha.key), "--client-ca", str(pki.ca), "--check-config"]) == 2
    assert "tls.cert_file" in capsys.readouterr().err  # a key that is not the certificate's
    assert main(["--runtime", "memory", "--check-config"]) == 2
    assert "tls.cert_file is required" in capsys.readouterr().err
    assert main(["--runtime", "memory", "--no-tls", "--trusted-socket", "/s",
                 "--set", "bogus", "--check-config"]) == 2
    assert "is not section.key=value" in capsys.readouterr().err


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    socket_path = f"/tmp/tjf-main-{os.getpid()}.sock"
    config = tmp_path / "api.toml"
    config.write_text(f'runtime = "memory"\n[tls]\nenabled = false\n[trusted]\n'
                      f'unix_socket = "{socket_path}"\n[memory]\ndelay_seconds = 0.4\n'
                      f'[server]\nshutdown_grace_seconds = 5\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TJF_")}
    process = subprocess.Popen([sys.executable, "-m", "tjf_http", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environ)
    try:
        yield process, socket_path
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
        if os.path.exists(socket_path):
            os.unlink(socket_path)


def _client(socket_path: str) -> Client:
    return Client(lambda: UnixConnection(socket_path, timeout=10), DN)


def _up(socket_path: str) -> bool:
    try:
        return _client(socket_path).get("/v1/healthz").status == 200
    except OSError:
        return False


def _in_flight(socket_path: str) -> float:
    text = _client(socket_path).get("/metrics").body.decode()
    line = next(x for x in text.splitlines() if x.startswith("tjf_http_requests_in_flight "))
    return float(line.split()[1]) - 1  # not counting this request


def test_sigterm_finishes_requests_in_flight_then_exits(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, socket_path = server_process
    _eventually("the server answers", lambda: _up(socket_path))
    replies: list[Reply] = []
    slow = threading.Thread(target=lambda: replies.append(
        _client(socket_path).get("/v1/tool/alpha/jobs")))
    slow.start()
    _eventually("the slow request is in flight", lambda: _in_flight(socket_path) >= 1)
    process.send_signal(signal.SIGTERM)
    _eventually("new connections are refused", lambda: not _up(socket_path))
    slow.join(10)
    assert [reply.status for reply in replies] == [200]  # answered although stopping
    assert process.wait(10) == 0
    _, stderr = process.communicate()
    assert "stopping: no new connections" in stderr
    assert not os.path.exists(socket_path)
