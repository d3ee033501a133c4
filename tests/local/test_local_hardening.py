"""Regressions of the local mode review: homes made in one place, bounded waits, the binder.

* a tool's home is made by the runtime (``LocalSettings.home_mode``) when a job is created,
  after the manifest was checked; a refused manifest makes nothing;
* a timed-out exec health check whose grandchild left the group (``setsid``) and holds the
  pipe does not hang the checker;
* shutting down gives up, with an error logged, on a process that outlives SIGKILL;
* unix sockets are bound without touching the process's umask, and a live server's socket is
  never taken over.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.local.harness import FAST, LocalHarness, alive, read_pid
from tjf_core.errors import ConfigurationError, TjfError
from tjf_core.images import ImageCatalog
from tjf_core.local import LocalRuntime
from tjf_core.local import kubelet as kubelet_module
from tjf_core.local.health import run_probe
from tjf_core.model import JobSpec
from tjf_core.service import JobService
from tjf_core.settings import Settings
from tjf_http.server import bind_unix_socket


def _catalog() -> ImageCatalog:
    import importlib.resources

    text = (importlib.resources.files("tjf_core") / "data" / "images.yaml").read_text("utf-8")
    return ImageCatalog.from_yaml(text)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    with LocalRuntime(root=tmp_path / "homes", state_dir=tmp_path / "state", catalog=_catalog(),
                      settings=attrs.evolve(FAST, home_mode=0o750)) as opened:
        yield opened


def test_the_home_is_made_with_home_mode_when_a_job_is_created(runtime: LocalRuntime) -> None:
    service = JobService(runtime, settings=Settings(identity=runtime.identity_settings()))
    tool = runtime.tool_identity_for("alpha")
    home = Path(tool.home)
    assert not home.exists()
    service.run(tool, JobSpec(name="later", command="echo hi", image="bookworm",
                              schedule="0 0 1 1 *"))  # created, nothing runs yet
    assert home.is_dir()
    assert home.stat().st_mode & 0o777 == 0o750


def test_a_refused_manifest_makes_no_home(runtime: LocalRuntime) -> None:
    tool = runtime.tool_identity_for("beta")
    with pytest.raises(TjfError):
        runtime.create(tool, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
    assert not Path(tool.home).exists()


def test_a_hung_health_checks_grandchild_does_not_hang_the_checker(tmp_path: Path) -> None:
    # The grandchild leaves the check's process group and keeps stderr open.
    probe = {"exec": {"command": ["/bin/sh", "-c", "setsid sleep 30 & echo $! > gc; sleep 30"]},
             "timeoutSeconds": 0.3}
    found: list[str | None] = []
    thread = threading.Thread(target=lambda: found.append(
        run_probe(probe, home=str(tmp_path), env={"PATH": os.environ["PATH"]})), daemon=True)
    thread.start()
    try:
        thread.join(timeout=20)
        assert not thread.is_alive(), "the health check hung on its grandchild's pipe"
        assert found == ["command timed out after 0.3s"]
    finally:
        os.kill(read_pid(tmp_path / "gc"), signal.SIGKILL)


def test_shutdown_gives_up_on_a_process_that_outlives_sigkill(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kubelet_module, "SHUTDOWN_MARGIN", 0.2)
    opened = LocalHarness.open(tmp_path, settings=attrs.evolve(FAST, grace_period=0.0))
    h = next(opened)
    pid = 0
    try:
        h.service.run(h.tool, JobSpec(name="stuck", command="echo $$ > pid; exec sleep 60",
                                      image="bookworm"))
        pid = read_pid(h.home / "pid")
        # As a process in uninterruptible sleep would: signals do not end it.
        monkeypatch.setattr(kubelet_module, "signal_group", lambda pid, signum: None)
        with caplog.at_level(logging.ERROR, logger="tjf_core.local.kubelet"):
            opened.close()  # returns: it no longer waits for ever
        assert "giving up on 1 process(es) that outlived SIGKILL" in caplog.text
        assert alive(pid)
    finally:
        opened.close()
        if pid:
            os.kill(pid, signal.SIGKILL)
            for process in h.runtime._kubelet.abandoned:
                process.reap()
            assert not alive(pid)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tjf-bind-", dir="/tmp"))  # socket paths are short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_binding_never_changes_the_umask(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_umask(mask: int) -> int:
        raise AssertionError("the process-wide umask must not change while jobs may start")

    monkeypatch.setattr(os, "umask", no_umask)
    path = str(short_dir / "sub" / "api.sock")
    with bind_unix_socket(path, 0o660, setting="local.socket") as sock:
        assert os.stat(path).st_mode & 0o777 == 0o660
        with socket.socket(socket.AF_UNIX) as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(path)  # bound, not listening: nobody gets in before the mode is set
        sock.listen()


def test_a_live_servers_socket_is_not_taken_over(short_dir: Path) -> None:
    path = str(short_dir / "api.sock")
    with bind_unix_socket(path, 0o600, setting="trusted.unix_socket") as live:
        live.listen()
        with pytest.raises(ConfigurationError, match=r"trusted\.unix_socket .* another server "
                                                     r"listens there"):
            bind_unix_socket(path, 0o600, setting="trusted.unix_socket")
    # left by a server that is gone: replaced
    bind_unix_socket(path, 0o600, setting="local.socket").close()
    (short_dir / "file").write_text("")
    with pytest.raises(ConfigurationError, match="exists and is not a socket"):
        bind_unix_socket(str(short_dir / "file"), 0o600, setting="local.socket")
