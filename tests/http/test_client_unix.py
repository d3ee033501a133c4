"""JobsClient over a unix socket, against the real app on aiohttp's UnixSite.

The server is :func:`tjf_http.app.make_app` over the in-memory runtime, served on a unix socket
as a trusted listener; a middleware in front plays the local mode's authentication: it reads
the connection's peer credentials (SO_PEERCRED), looks the uid up in a user table of the test
and names the tool with :func:`~tjf_core.local_identity.tool_from_username`, as the real local
mode will. The client's own unix user is the same table's ``tools.alpha``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.http.conftest import BackgroundLoop
from tjf_core.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigurationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    RuntimeUnavailableError,
)
from tjf_core.local_identity import tool_from_username
from tjf_core.model import JobSpec
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_core.testing import FakeClock, InMemoryDriver, InMemoryRuntime
from tjf_http import credentials
from tjf_http.app import make_app
from tjf_http.auth import ListenerKind, Listeners
from tjf_http.client import ClientCertificate, JobsClient, is_unix_url
from tjf_http.settings import HttpSettings, ServerSettings, TrustedListenerSettings
from tjf_http.state import CALLS

HELLO = JobSpec(name="hello", command="echo hi", image="bookworm")
WEB = JobSpec(name="web", command="./serve", image="bookworm", kind="continuous", port=8000)
#: The header the peer-credentials middleware names the tool in (nobody else may set it).
PEER_TOOL = "x-test-peer-tool"
#: The test's user table: this process's uid is the tool alpha's user.
USERS = {os.geteuid(): "tools.alpha"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def peer_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The tool of the connection's peer, from SO_PEERCRED, as the only tool header."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET,
                                                         socket.SO_PEERCRED, size))
    headers = CIMultiDict(request.headers)
    headers.popall(PEER_TOOL, None)
    if uid in USERS:
        headers[PEER_TOOL] = tool_from_username(USERS[uid])
    return await handler(request.clone(headers=headers))


@attrs.define
class UnixApi:
    path: str
    runtime: InMemoryRuntime
    service: JobService
    homes: Path
    app: web.Application
    runner: web.AppRunner
    loop: BackgroundLoop

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def driver(self, tool: str = "alpha") -> InMemoryDriver:
        return self.runtime.driver(self.service.identity(tool))

    def stop(self) -> None:
        self.loop.run(self.runner.cleanup())


async def _serve(app: web.Application, path: str) -> web.AppRunner:
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    return runner


def short_socket_dir() -> str:
    """A directory for sockets: their paths must stay under ~100 bytes."""
    return tempfile.mkdtemp(prefix="tjf-", dir="/tmp")


def start_unix_api(directory: str, homes: Path) -> UnixApi:
    """The real app over the in-memory runtime on ``directory``/api.sock (stop() it)."""
    clock = FakeClock()
    runtime = InMemoryRuntime(clock=clock)
    for name in ("alpha", "beta"):
        (homes / name).mkdir(parents=True, exist_ok=True)
    identity = IdentitySettings(home_template=str(homes) + "/{tool}")
    service = JobService(runtime, settings=Settings(identity=identity), clock=clock,
                         follow_interval=0.02)
    path = f"{directory}/api.sock"
    settings = HttpSettings(
        server=ServerSettings(threads=2, call_timeout_seconds=5.0, log_followers=2,
                              shutdown_grace_seconds=1.0, retry_after_seconds=7),
        trusted=TrustedListenerSettings(unix_socket=path, tool_header=PEER_TOOL))
    listeners = Listeners()
    listeners.add(path, ListenerKind.TRUSTED)
    app = make_app(service, settings, listeners=listeners)
    app.middlewares.insert(0, peer_credentials)  # outermost: before authentication
    loop = BackgroundLoop()
    runner = loop.run(_serve(app, path))
    return UnixApi(path=path, runtime=runtime, service=service, homes=homes, app=app,
                   runner=runner, loop=loop)


@pytest.fixture
def as_tools_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's unix user, for the client: the table's ``tools.alpha``."""
    monkeypatch.setattr("tjf_http.client.unix_user_name", lambda: USERS[os.geteuid()])


@pytest.fixture
def api(tmp_path: Path, as_tools_alpha: None) -> Iterator[UnixApi]:
    directory = short_socket_dir()
    started = start_unix_api(directory, tmp_path / "homes")
    yield started
    started.stop()
    started.loop.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client(api: UnixApi) -> Iterator[JobsClient]:
    with JobsClient(api.url, certificate=None, timeout=10) as jobs:
        yield jobs


def _eventually(what: str, check: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


# --- the round trip --------------------------------------------------------------------------


def test_the_tool_is_the_unix_users(client: JobsClient) -> None:
    assert client.tool == "alpha"
    assert client.socket_path is not None
    assert client.url == f"unix://{client.socket_path}"


def test_every_operation_round_trips(client: JobsClient) -> None:
    created = client.run(HELLO)
    assert (created.spec, created.status["short"]) == (HELLO, "pending")
    job, changed = client.upsert(WEB)
    assert (job.spec, changed) == (WEB, True)
    assert client.get("web").spec == WEB
    assert [job.spec for job in client.list().jobs] == [HELLO, WEB]
    client.restart("web")
    plan = client.apply([WEB], dry_run=True)
    assert plan["counts"] == {"create": 0, "update": 0, "delete": 1, "unchanged": 1}
    client.delete("hello")
    assert [job.spec.name for job in client.list().jobs] == ["web"]
    client.flush()
    assert client.list().jobs == ()
    assert "bookworm" in {image["shortname"] for image in client.images()}
    assert all({"name", "items"} == set(category) for category in client.quota())


def test_http_unix_urls_work_too(api: UnixApi) -> None:
    encoded = api.path.replace("/", "%2F")
    with JobsClient(f"http+unix://{encoded}", certificate=None) as jobs:
        assert jobs.socket_path == api.path
        assert jobs.run(HELLO).spec == HELLO


def test_one_connection_serves_every_call(client: JobsClient) -> None:
    client.images()
    conn = client._conn
    assert conn is not None
    client.list()
    assert client._conn is conn


# --- errors ----------------------------------------------------------------------------------


def test_refusals_are_the_core_errors_named_by_type(api: UnixApi, client: JobsClient) -> None:
    with pytest.raises(NotFoundError, match="job 'nope' does not exist") as missing:
        client.get("nope")
    assert missing.value.http_status == 404
    assert any(note.startswith("request id: ") for note in missing.value.__notes__)
    client.run(HELLO)
    with pytest.raises(AlreadyExistsError):
        client.run(HELLO)
    with pytest.raises(InvalidInputError) as invalid:
        client.apply("- {name: a, command: x, image: bookworm, retry: 9}\n")
    assert [problem.path for problem in invalid.value.problems] == ["a.retry"]
    api.runtime.fail_next("create", QuotaExceededError("no room for jobs"))
    with pytest.raises(QuotaExceededError, match="no room for jobs"):
        client.run(WEB)
    api.runtime.fail_next("list_objects", RuntimeUnavailableError("the runtime is away"))
    with pytest.raises(RuntimeUnavailableError, match="the runtime is away") as away:
        client.list()
    assert "the server asks to retry after 7 s" in away.value.__notes__


def test_another_tools_jobs_are_forbidden(api: UnixApi) -> None:
    with JobsClient(api.url, certificate=None, tool="beta") as beta, \
            pytest.raises(ForbiddenError, match="not the authenticated tool 'alpha'"):
        beta.list()


def test_a_peer_the_server_does_not_know_is_refused(api: UnixApi,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(USERS, os.geteuid())
    with JobsClient(api.url, certificate=None, tool="alpha") as stranger, \
            pytest.raises(AuthenticationError) as raised:
        stranger.images()
    assert raised.value.http_status == 401


# --- logs ------------------------------------------------------------------------------------


def test_logs_and_the_last_lines(api: UnixApi, client: JobsClient) -> None:
    client.run(HELLO)
    (api.homes / "alpha" / "hello.out").write_text("one\ntwo\nthree\n")
    assert list(client.logs("hello")) == ["one", "two", "three"]
    assert list(client.logs("hello", lines=1)) == ["three"]
    with pytest.raises(NotFoundError):
        client.logs("nope", follow=True)


def test_following_streams_until_the_job_ends(api: UnixApi, client: JobsClient) -> None:
    client.run(HELLO)
    driver = api.driver()
    [pod] = driver.pods_of("hello")
    driver.set_running(pod)
    out = api.homes / "alpha" / "hello.out"
    out.write_text("start\n")
    stream = client.logs("hello", follow=True)
    assert next(stream) == "start"
    with out.open("a") as file:
        file.write("more\n")
    assert next(stream) == "more"
    driver.set_succeeded(pod)
    assert list(stream) == []


def test_closing_a_followed_stream_frees_the_servers_follower(api: UnixApi,
                                                             client: JobsClient) -> None:
    client.run(WEB)
    (api.homes / "alpha" / "web.out").write_text("up\n")
    calls = api.app[CALLS]
    with client.logs("web", follow=True) as stream:
        assert next(stream) == "up"
        assert calls.followers == 1
    _eventually("the follower noticed", lambda: calls.followers == 0)


# --- no server -------------------------------------------------------------------------------


def test_a_missing_socket_says_how_to_start_the_server(tmp_path: Path) -> None:
    path = tmp_path / "none.sock"
    with JobsClient(f"unix://{path}", certificate=None, tool="alpha") as jobs, \
            pytest.raises(RuntimeUnavailableError) as raised:
        jobs.list()
    assert str(raised.value) == (
        f"cannot reach the jobs API at unix://{path}: the socket {path} does not exist; start "
        "`tjf-api` in local mode (it listens there), or configure the jobs API's URL "
        "(TJF_API_URL, or api_gateway.url)")


def test_a_socket_nobody_listens_on_is_refused() -> None:
    directory = short_socket_dir()
    path = f"{directory}/stale.sock"
    try:
        with socket.socket(socket.AF_UNIX) as left_behind:  # a server that died
            left_behind.bind(path)
        with JobsClient(f"unix://{path}", certificate=None, tool="alpha") as jobs, \
                pytest.raises(RuntimeUnavailableError,
                              match=f"nothing listens on the socket {path} .*tjf-api"):
            jobs.logs("x")
    finally:
        shutil.rmtree(directory)


def test_a_server_that_never_answers_times_out() -> None:
    directory = short_socket_dir()
    path = f"{directory}/mute.sock"
    try:
        with socket.socket(socket.AF_UNIX) as mute:
            mute.bind(path)
            mute.listen()  # accepted by the kernel, never read
            with JobsClient(f"unix://{path}", certificate=None, tool="alpha",
                            timeout=0.2) as jobs, \
                    pytest.raises(RuntimeUnavailableError,
                                  match=f"at unix://{path}: no answer within 0.2 s"):
                jobs.images()
    finally:
        shutil.rmtree(directory)


# --- urls and identity -----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["unix://relative/api.sock", "unix:api.sock", "unix://",
                                 "unix:///x.sock?v=1", "http+unix://api.sock",
                                 "http+unix://%2Fx.sock/p#f", "unix:///x%00.sock"])
def test_a_unix_url_names_the_socket_by_its_absolute_path(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"unix:///absolute/path/api\.sock"):
        JobsClient(url, certificate=None)


def test_the_unix_url_forms() -> None:
    assert JobsClient("unix:///run/tjf/api.sock/", certificate=None).socket_path == (
        "/run/tjf/api.sock")
    assert JobsClient("UNIX:/run/my%20tjf/api.sock", certificate=None).socket_path == (
        "/run/my tjf/api.sock")
    prefixed = JobsClient("http+unix://%2Frun%2Fapi.sock/jobs/", certificate=None, tool="t")
    assert (prefixed.socket_path, prefixed._path("/jobs")) == ("/run/api.sock",
                                                                "/jobs/v1/tool/t/jobs")
    assert [is_unix_url(url) for url in ("unix:///x", "http+unix://%2Fx", "https://x", "/x")] == [
        True, True, False, False]


def test_no_certificate_nor_ca_on_a_unix_socket(tmp_path: Path) -> None:
    certificate = ClientCertificate.from_files(tmp_path / "c", tmp_path / "k")
    with pytest.raises(ConfigurationError, match="no client certificate and no ca_file"):
        JobsClient("unix:///run/tjf/api.sock", certificate=certificate)
    with pytest.raises(ConfigurationError, match="give certificate=None and no ca_file"):
        JobsClient("unix:///run/tjf/api.sock", certificate=None, ca_file=tmp_path / "ca")


def test_a_user_that_names_no_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tjf_http.client.unix_user_name", lambda: "John_Doe")
    jobs = JobsClient("unix:///run/tjf/api.sock", certificate=None)
    with pytest.raises(ConfigurationError) as raised:
        _ = jobs.tool
    message = str(raised.value)
    assert message.startswith("the jobs API at unix:///run/tjf/api.sock knows a caller by its "
                              "unix user, and the unix user 'John_Doe' names no tool: tool: ")
    assert message.endswith("run this as the tool's user (`become TOOLNAME`), or name the tool "
                            "(tool=...)")


def test_the_unix_user_is_the_effective_ones() -> None:
    assert credentials.unix_user_name() == pwd.getpwuid(os.geteuid()).pw_name


def test_a_nameless_uid_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def nobody_knows(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", nobody_knows)
    with pytest.raises(ConfigurationError, match=rf"\(uid {os.geteuid()}\) has no name"):
        credentials.unix_user_name()


def test_a_unix_client_imports_neither_tls_nor_cryptography_to_start() -> None:
    code = ("import sys; from tjf_http.client import JobsClient; "
            "JobsClient('unix:///run/tjf/api.sock', certificate=None, tool='t'); "
            "print(sorted({'ssl', 'http', 'socket', 'cryptography'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"
