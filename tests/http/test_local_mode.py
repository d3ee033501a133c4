"""``tjf-api`` in local mode: jobs really run, callers are known by their unix user.

The server here is the real one (app, :class:`~tjf_http.server.Server`, local listener) over
the real :class:`~tjf_core.local.LocalRuntime`, in an event loop of its own thread; the user
database is the test's (``tools.alpha`` for this process's uid) unless a test needs the real
one. One test starts ``tjf-api`` itself, with no runtime named and no cluster.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.controller import Controller

from tests.emailer.conftest import HOST, Recorder, free_port
from tests.emailer.conftest import Server as SmtpServer
from tests.http.conftest import BackgroundLoop, Client, UnixConnection
from tests.http.pki import Pki
from tjf_cli.waiting import wait_for_job
from tjf_core.errors import ConfigurationError, TjfError
from tjf_core.local_identity import tool_from_username
from tjf_core.model import JobSpec
from tjf_core.settings import Settings
from tjf_http.__main__ import main
from tjf_http.app import make_app
from tjf_http.auth import ListenerKind
from tjf_http.client import ClientCertificate, JobsClient
from tjf_http.config import load_config
from tjf_http.local import LocalMode, open_local_mode
from tjf_http.local_emailer import embedded_emailer_settings
from tjf_http.local_settings import LocalModeSettings
from tjf_http.runtimes import make_service
from tjf_http.server import Server
from tjf_http.settings import HttpSettings, ServerSettings, TlsListenerSettings

DEADLINE = 20.0


def eventually(what: str, check: Callable[[], Any], *, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@attrs.define
class LocalApi:
    mode: LocalMode
    server: Server
    loop: BackgroundLoop
    local: LocalModeSettings
    #: The user database the server consults: uid -> name (missing: the real one).
    users: dict[int, str]
    clients: list[Client] = attrs.field(factory=list)

    @property
    def socket(self) -> str:
        assert self.local.socket is not None
        return self.local.socket

    @property
    def root(self) -> Path:
        return Path(str(self.local.root))

    def raw(self, headers: dict[str, str] | None = None) -> Client:
        client = Client(lambda: UnixConnection(self.socket, timeout=10), headers or {})
        self.clients.append(client)
        return client

    def client(self) -> JobsClient:
        return JobsClient(f"unix://{self.socket}", certificate=None, timeout=10.0)

    def tls_port(self) -> int:
        address = self.server.addresses[ListenerKind.DIRECT][0]
        assert isinstance(address, tuple)
        return int(address[1])


@pytest.fixture
def as_tools_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's unix user, as the server's user table has it."""
    monkeypatch.setattr("tjf_http.client.unix_user_name", lambda: "tools.alpha")


@pytest.fixture
def start_local_api(tmp_path: Path) -> Iterator[Callable[..., LocalApi]]:
    started: list[LocalApi] = []
    socket_dir = tempfile.mkdtemp(prefix="tjf-local-", dir="/tmp")  # socket paths are short

    def start(*, emailer: dict[str, Any] | None = None, tls: Pki | None = None,
              run_as: str | None = None) -> LocalApi:
        local = LocalModeSettings(socket=f"{socket_dir}/api-{len(started)}.sock",
                                  root=str(tmp_path / "tools"), state_dir=str(tmp_path / "state"),
                                  grace_period=1.0, single_user=run_as is None, run_as=run_as)
        users = {os.geteuid(): "tools.alpha"}

        def user_name(uid: int) -> str:
            return users[uid] if uid in users else pwd.getpwuid(uid).pw_name

        mode = open_local_mode(
            local=local, core=Settings(),
            emailer=embedded_emailer_settings(emailer, local=local) if emailer else None,
            follow_interval=0.05, shutdown_grace=2.0, user_name=user_name)
        tls_settings = TlsListenerSettings(enabled=False)
        if tls is not None:
            tls_settings = TlsListenerSettings(
                host="127.0.0.1", port=0, cert_file=str(tls.server.cert),
                key_file=str(tls.server.key), client_ca_file=str(tls.ca))
        settings = HttpSettings(
            server=ServerSettings(threads=4, call_timeout_seconds=10.0,
                                  shutdown_grace_seconds=2.0),
            tls=tls_settings, local=local)
        app = make_app(mode.service, settings)
        mode.install(app)
        loop = BackgroundLoop()
        server = Server(app, settings)
        loop.run(server.start())
        api = LocalApi(mode=mode, server=server, loop=loop, local=local, users=users)
        started.append(api)
        return api

    yield start
    for api in started:
        for client in api.clients:
            client.close()
        api.loop.run(api.server.stop(), timeout=30)
        api.loop.close()
        api.mode.close()
    shutil.rmtree(socket_dir, ignore_errors=True)


def _wait(client: JobsClient, name: str) -> str:
    result = wait_for_job(lambda: client.get(name), timeout=DEADLINE, monotonic=time.monotonic,
                          sleep=time.sleep, first=0.05, maximum=0.2)
    assert result.ended, f"job {name} did not end in time"
    return str(result.job.status["short"])


@pytest.mark.usefixtures("as_tools_alpha")
def test_a_job_really_runs_in_the_callers_home(start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api()
    with api.client() as client:
        assert client.tool == "alpha"
        client.run(JobSpec(name="hello", command="echo hello from $TOOL_NAME in $PWD",
                           image="bookworm"))
        assert _wait(client, "hello") == "succeeded"
        home = api.root / "alpha"
        assert list(client.logs("hello")) == [f"hello from alpha in {home}"]
    assert (home / "hello.out").read_text() == f"hello from alpha in {home}\n"
    assert home.stat().st_mode & 0o777 == 0o700  # made at the first job, private


@pytest.mark.usefixtures("as_tools_alpha")
def test_a_failing_job_ends_with_its_exit_code(start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api()
    with api.client() as client:
        client.run(JobSpec(name="boom", command="exit 3", image="bookworm"))
        assert _wait(client, "boom") == "failed"
        assert client.get("boom").status["exit_code"] == 3


def test_identity_headers_are_ignored_on_the_socket(
    start_local_api: Callable[..., LocalApi],
) -> None:
    api = start_local_api()
    claims = api.raw({"ssl-client-subject-dn": "CN=beta,O=toolforge",
                      "x-toolforge-tool": "beta", "X-Request-Id": "chosen-by-the-caller"})
    assert claims.get("/v1/tool/beta/jobs").status == 403  # the peer is alpha, whatever it says
    mine = claims.get("/v1/tool/alpha/jobs")
    assert mine.status == 200
    assert mine.json()["jobs"] == []
    assert mine.headers["X-Request-Id"] != "chosen-by-the-caller"


def test_a_user_that_names_no_tool_is_refused(start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api()
    api.users[os.geteuid()] = "Not_A_Tool"
    reply = api.raw().get("/v1/tool/alpha/jobs")
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "the unix user 'Not_A_Tool' names no tool" in reply.errors[0]


SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
_PEER = """
import http.client, socket, sys
conn = http.client.HTTPConnection("localhost", timeout=10)
conn.sock = socket.socket(socket.AF_UNIX); conn.sock.connect(sys.argv[1])
conn.request("GET", "/v1/tool/alpha/jobs"); reply = conn.getresponse()
print(reply.status, reply.read().decode())
"""


def _as_uid(api: LocalApi, uid: int) -> tuple[int, list[str]]:
    """What a request from ``uid`` on the local socket gets: status and error messages."""
    os.chmod(Path(api.socket).parent, 0o755)  # the other uid must reach the socket
    os.chmod(api.socket, 0o666)
    assert SYSTEM_PYTHON is not None
    done = subprocess.run([SYSTEM_PYTHON, "-c", _PEER, api.socket], user=uid, group=uid,
                          capture_output=True, text=True, timeout=30, check=True, cwd="/")
    status, body = done.stdout.split(" ", 1)
    return int(status), json.loads(body)["messages"]["error"]


NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0 or SYSTEM_PYTHON is None,
                                reason="needs root to connect as another uid")


def _free_uid() -> int:
    return next(uid for uid in range(54321, 65000) if not _has_user(uid))


@NEEDS_ROOT
def test_a_uid_without_a_user_is_refused(start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api(run_as="tools.{tool}")
    uid = _free_uid()
    status, errors = _as_uid(api, uid)
    assert status == 401
    assert f"the calling uid {uid} has no unix user" in errors[0]


@NEEDS_ROOT
def test_a_single_user_server_refuses_every_other_uid(
        start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api()  # single-user, run by root: nobody else may run jobs as root
    status, errors = _as_uid(api, _free_uid())
    assert status == 403
    assert "this server is single-user (local.single_user)" in errors[0]


def test_a_multi_user_server_requires_the_prefix(start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api(run_as="tools.{tool}")
    for name in ("alpha", "root", "nobody"):  # a person's account is not the tool of its name
        api.users[os.geteuid()] = name
        reply = api.raw().get("/v1/tool/alpha/jobs")
        assert reply.status == 401
        assert (f"the unix user {name!r} names no tool: only users named tools.<tool> are "
                "tools on this server") in reply.errors[0]


def test_a_single_user_server_takes_its_own_name_as_the_tool(
        start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api()
    api.users[os.geteuid()] = "alpha"
    reply = api.raw().get("/v1/tool/alpha/jobs")
    assert reply.status == 200, reply.errors


@pytest.mark.usefixtures("as_tools_alpha")
def test_a_tool_without_its_run_as_user_is_refused(
        start_local_api: Callable[..., LocalApi]) -> None:
    api = start_local_api(run_as="tjf-no-such-user-{tool}")
    with api.client() as client, pytest.raises(
            TjfError, match="there is no unix user 'tjf-no-such-user-alpha'"):
        client.run(JobSpec(name="hello", command="id", image="bookworm"))
    assert not (api.root / "alpha").exists()  # nothing made, nothing run as root


def test_a_root_server_without_run_as_nor_single_user_does_not_start(tmp_path: Path) -> None:
    local = LocalModeSettings(socket=str(tmp_path / "s.sock"), root=str(tmp_path / "t"),
                              state_dir=str(tmp_path / "s"))
    with pytest.raises(ConfigurationError, match="anyone's jobs would run as root"):
        open_local_mode(local=local, core=Settings(), uid=0)
    assert not (tmp_path / "s").exists()


def test_a_failing_emailer_releases_the_state_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    local = LocalModeSettings(socket=str(tmp_path / "s.sock"), root=str(tmp_path / "t"),
                              state_dir=str(tmp_path / "s"), single_user=True)

    def broken(*args: object, **kwargs: object) -> None:
        raise ConfigurationError("no emailer today")

    monkeypatch.setattr("tjf_http.local.EmbeddedEmailer", broken)
    emailer = embedded_emailer_settings({"smtp_server_fqdn": "localhost"}, local=local)
    for _ in range(2):  # the second time the lock is free again
        with pytest.raises(ConfigurationError, match="no emailer today"):
            open_local_mode(local=local, core=Settings(), emailer=emailer)
    open_local_mode(local=local, core=Settings()).close()


def test_make_service_refuses_local_mode() -> None:
    config = load_config(environ={"TJF_RUNTIME": "local", "TJF_LOCAL_ROOT": "/tmp/x",
                                  "TJF_LOCAL_STATE_DIR": "/tmp/y",
                                  "TJF_LOCAL_SOCKET": "/tmp/z.sock"})
    with pytest.raises(ConfigurationError, match="make_service does not serve runtime 'local'"):
        make_service(config)


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


@pytest.mark.usefixtures("as_tools_alpha")
def test_the_tls_listener_still_takes_certificates(
    start_local_api: Callable[..., LocalApi], pki: Pki,
) -> None:
    api = start_local_api(tls=pki)
    url = f"https://127.0.0.1:{api.tls_port()}"
    certificate = ClientCertificate.from_files(pki.alpha.cert, pki.alpha.key)
    with JobsClient(url, certificate=certificate, ca_file=pki.ca, timeout=10.0) as client:
        client.run(JobSpec(name="hello", command="echo over tls", image="bookworm"))
        assert _wait(client, "hello") == "succeeded"
    assert (api.root / "alpha" / "hello.out").read_text() == "over tls\n"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on a free loopback port, keeping what it is given."""
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname=HOST, port=port)
    controller.start()
    try:
        yield SmtpServer(port, recorder)
    finally:
        controller.stop()


@pytest.mark.usefixtures("as_tools_alpha")
def test_the_embedded_emailer_mails_a_failure(
    start_local_api: Callable[..., LocalApi], smtp_server: SmtpServer,
) -> None:
    api = start_local_api(emailer={
        "smtp_server_fqdn": "127.0.0.1", "smtp_server_port": smtp_server.port,
        "email_to_domain": "example.org", "group_wait": 0, "task_send_emails_loop_sleep": 0.2,
    })
    with api.client() as client:
        client.run(JobSpec(name="fine", command="echo fine", image="bookworm",
                           emails="onfailure"))
        client.run(JobSpec(name="boom", command="echo about to fail; exit 3", image="bookworm",
                           emails="onfailure"))
        assert _wait(client, "fine") == "succeeded"
        assert _wait(client, "boom") == "failed"
    recorder = smtp_server.recorder
    eventually("the failure's email", lambda: recorder.messages)
    message = message_from_bytes(recorder.messages[0])
    assert recorder.envelopes[0][1] == ["tools.alpha@example.org"]
    assert message["Subject"] == "[Toolforge] [alpha] notification about job boom"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "failed, exit code 3" in text
    assert "| about to fail" in text  # the log's tail, read from the tool's home
    assert '"fine"' not in text  # onfailure: its success is no news
    assert len(recorder.messages) == 1


def _clean_environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("TJF_") and k != "KUBERNETES_SERVICE_HOST"}
    return {**environ, **extra}


def test_check_config_shows_local_mode_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("TJF_") or name == "KUBERNETES_SERVICE_HOST":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TJF_LOCAL_SOCKET", str(tmp_path / "api.sock"))
    monkeypatch.setenv("TJF_LOCAL_ROOT", str(tmp_path / "tools"))
    monkeypatch.setenv("TJF_LOCAL_SINGLE_USER", "true")
    assert main(["--check-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["runtime"] == "local"
    assert shown["local"]["socket"] == str(tmp_path / "api.sock")
    assert shown["local"]["root"] == str(tmp_path / "tools")
    assert shown["local"]["state_dir"]  # the default place, filled in
    assert shown["identity"]["home_template"] == str(tmp_path / "tools") + "/{tool}"
    assert shown["tls"]["enabled"] is False


def _my_tool() -> str | None:
    try:
        return tool_from_username(pwd.getpwuid(os.geteuid()).pw_name)
    except (KeyError, TjfError):
        return None


@pytest.mark.skipif(_my_tool() is None, reason="this unix user names no tool")
def test_tjf_api_without_a_cluster_serves_the_local_runtime(tmp_path: Path) -> None:
    socket_dir = tempfile.mkdtemp(prefix="tjf-main-", dir="/tmp")
    socket_path = f"{socket_dir}/api.sock"
    environ = _clean_environ(TJF_LOCAL_SOCKET=socket_path, TJF_LOCAL_ROOT=str(tmp_path / "t"),
                             TJF_LOCAL_STATE_DIR=str(tmp_path / "s"),
                             TJF_LOCAL_SINGLE_USER="true",
                             TJF_SERVER_SHUTDOWN_GRACE_SECONDS="2")
    process = subprocess.Popen([sys.executable, "-m", "tjf_http"], env=environ,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        eventually("the socket", lambda: Path(socket_path).exists() or process.poll() is not None)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert oct(Path(socket_path).stat().st_mode & 0o777) == "0o660"
        with JobsClient(f"unix://{socket_path}", certificate=None, timeout=10.0) as client:
            assert client.tool == _my_tool()
            client.run(JobSpec(name="hi", command="echo hi", image="bookworm"))
            assert _wait(client, "hi") == "succeeded"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not Path(socket_path).exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(socket_dir, ignore_errors=True)
