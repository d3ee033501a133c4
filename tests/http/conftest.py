"""The API server for the HTTP tests: real TLS, a real unix socket, the in-memory runtime.

Each test gets its own server (started on free loopback ports, in an event loop of its own
thread) over its own :class:`~tjf_core.testing.InMemoryRuntime`, and synchronous clients:
``h.tls(cert)`` speaks TLS with a client certificate, ``h.trusted(dn)`` is the proxy on the
trusted unix socket, ``h.ops()`` the plain health/metrics port.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import attrs
import pytest

from tests.http.pki import Issued, Pki
from tjf_core.identity import ToolIdentity
from tjf_core.runtime import Runtime
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_core.testing import FakeClock, InMemoryDriver, InMemoryRuntime
from tjf_http.app import make_app
from tjf_http.auth import ListenerKind
from tjf_http.server import Server
from tjf_http.settings import (
    HttpSettings,
    OpsListenerSettings,
    ServerSettings,
    TlsListenerSettings,
    TrustedListenerSettings,
)

_T = TypeVar("_T")
ALPHA_DN = "CN=alpha,O=toolforge"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


@attrs.frozen
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def errors(self) -> list[str]:
        """The error lines of a modern error answer."""
        return list(self.json()["messages"]["error"])


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """Requests with fixed extra headers, over one kept-alive connection (``keep_alive``) or a
    new connection each."""

    def __init__(self, connect: Callable[[], http.client.HTTPConnection],
                 headers: dict[str, str] | None = None, *, keep_alive: bool = False) -> None:
        self._connect = connect
        self._headers = headers or {}
        self._keep_alive = keep_alive
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                content_type: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        send = functools.partial(self._send, method=method, path=path, json_body=json_body,
                                 body=body, content_type=content_type, headers=headers)
        if not self._keep_alive:
            conn = self._connect()
            try:
                response = send(conn)
                return Reply(response.status, response.headers, response.read())
            finally:
                conn.close()
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        try:
            response = send(self._conn)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused:
                raise
            self._conn = self._connect()  # the server had closed the kept connection
            response = send(self._conn)
        reply = Reply(response.status, response.headers, response.read())
        if response.will_close:
            self.close()
        return reply

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, conn: http.client.HTTPConnection, *, method: str, path: str,
              json_body: Any = None, body: bytes | None = None, content_type: str | None = None,
              headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        sent = {**self._headers, **(headers or {})}
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            sent["Content-Type"] = content_type
        conn.request(method, path, body=body, headers=sent)
        return conn.getresponse()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def open_stream(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """A GET whose answer is read as it comes; close the connection when done."""
        conn = self._connect()
        return conn, self._send(conn, method="GET", path=path)


class BackgroundLoop:
    """An event loop running in a thread of its own, for the server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="server-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def server_settings(socket_path: str, pki: Pki, **server: Any) -> HttpSettings:
    values: dict[str, Any] = {"threads": 4, "call_timeout_seconds": 5.0,
                              "max_body_bytes": 16 * 1024, "log_followers": 2,
                              "shutdown_grace_seconds": 2.0, "retry_after_seconds": 7}
    values.update(server)
    return HttpSettings(
        server=ServerSettings(**values),
        tls=TlsListenerSettings(host="127.0.0.1", port=0, cert_file=str(pki.server.cert),
                                key_file=str(pki.server.key), client_ca_file=str(pki.ca)),
        trusted=TrustedListenerSettings(unix_socket=socket_path, tool_header="x-toolforge-tool"),
        ops=OpsListenerSettings(host="127.0.0.1", port=0),
    )


@attrs.define
class Harness:
    pki: Pki
    runtime: InMemoryRuntime
    service: JobService
    clock: FakeClock
    homes: Path
    server: Server
    socket_path: str
    loop: BackgroundLoop
    clients: list[Client] = attrs.field(factory=list)
    stopped: bool = False

    def stop(self) -> None:
        """Stop the server as SIGTERM would (the fixture does it otherwise)."""
        if not self.stopped:
            self.stopped = True
            self.loop.run(self.server.stop())

    def _client(self, connect: Callable[[], http.client.HTTPConnection],
                headers: dict[str, str]) -> Client:
        client = Client(connect, headers, keep_alive=True)
        self.clients.append(client)
        return client

    def tool(self, name: str = "alpha") -> ToolIdentity:
        return self.service.identity(name)

    def driver(self, name: str = "alpha") -> InMemoryDriver:
        return self.runtime.driver(self.tool(name))

    def _port(self, kind: ListenerKind) -> int:
        address = self.server.addresses[kind][0]
        assert isinstance(address, tuple)
        return int(address[1])

    def tls(self, issued: Issued | None = None, *, use_default: bool = True,
            headers: dict[str, str] | None = None) -> Client:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if issued is None and use_default:
            issued = self.pki.alpha
        if issued is not None:
            context.load_cert_chain(str(issued.cert), str(issued.key))
        port = self._port(ListenerKind.DIRECT)
        return self._client(lambda: http.client.HTTPSConnection(
            "127.0.0.1", port, context=context, timeout=10), headers or {})

    def trusted(self, dn: str | None = ALPHA_DN, headers: dict[str, str] | None = None) -> Client:
        sent = dict(headers or {})
        if dn is not None:
            sent["ssl-client-subject-dn"] = dn
        return self._client(lambda: UnixConnection(self.socket_path, timeout=10), sent)

    def ops(self) -> Client:
        port = self._port(ListenerKind.OPS)
        return self._client(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10), {})


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def make_harness(pki: Pki, tmp_path: Path) -> Iterator[HarnessFactory]:
    """Start a server: ``wrap`` wraps the fake runtime, ``app_clock`` is the app's clock, other
    keyword arguments are ServerSettings."""
    harnesses: list[Harness] = []
    socket_dir = tempfile.mkdtemp(prefix="tjf-", dir="/tmp")  # unix socket paths are short

    def start(*, wrap: Callable[[InMemoryRuntime], Runtime] | None = None,
              app_clock: Callable[[], datetime] | None = None, **server: Any) -> Harness:
        clock = FakeClock()
        runtime = InMemoryRuntime(clock=clock)
        homes = tmp_path / "homes"
        for name in ("alpha", "beta"):
            (homes / name).mkdir(parents=True, exist_ok=True)
        identity = IdentitySettings(home_template=str(homes) + "/{tool}")
        service = JobService(wrap(runtime) if wrap else runtime,
                             settings=Settings(identity=identity), clock=clock,
                             follow_interval=0.02)
        socket_path = f"{socket_dir}/api-{len(harnesses)}.sock"
        settings = server_settings(socket_path, pki, **server)
        app = make_app(service, settings) if app_clock is None else make_app(
            service, settings, clock=app_clock)
        loop = BackgroundLoop()
        srv = Server(app, settings)
        harness = Harness(pki=pki, runtime=runtime, service=service, clock=clock, homes=homes,
                          server=srv, socket_path=socket_path, loop=loop)
        loop.run(srv.start())
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        for client in harness.clients:
            client.close()
        harness.stop()
        harness.loop.close()
    shutil.rmtree(socket_dir, ignore_errors=True)


@pytest.fixture
def h(make_harness: HarnessFactory) -> Harness:
    return make_harness()


def home_of(h: Harness, tool: str = "alpha") -> PurePosixPath:
    return h.tool(tool).home
