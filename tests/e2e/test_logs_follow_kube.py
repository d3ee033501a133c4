"""A followed pod log on the Kubernetes runtime ends at once when its reader is told to stop.

The cluster has no kubelet, so a Node here points the apiserver at a small HTTPS server of this
test that plays the kubelet's log endpoint: it sends two lines, then stays quiet (as a pod that
has nothing more to say) until the test ends. The log is read through the real apiserver with
the tool's own credentials; what is checked is that ``abort()`` from another thread frees the
thread blocked reading it, and that the API's executor does so when a client leaves.
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import tjf_core
from tests.e2e.cluster import Cluster, ToolAccount
from tjf_core.identity import ToolIdentity
from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.kube.transport import FollowedLog
from tjf_http.executor import CoreCalls

IMAGES_FILE = Path(tjf_core.__file__).parent / "data" / "images.yaml"
#: The longest the quiet "kubelet" keeps a followed log open (the test ends it sooner).
QUIET_SECONDS = 30.0


class _QuietKubelet(http.server.ThreadingHTTPServer):
    daemon_threads = True
    done: threading.Event


class _LogHandler(http.server.BaseHTTPRequestHandler):
    server: _QuietKubelet
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in (b"one\n", b"two\n"):
            self._chunk(line)
        if "follow=true" in self.path:
            self.server.done.wait(QUIET_SECONDS)  # nothing more to say, for a long time
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError:
            pass  # the apiserver hung up: the reader went away

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _server_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quiet-kubelet")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "quiet.crt", directory / "quiet.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def quiet_node(kube_cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    """A Node whose kubelet is the quiet log server; its name."""
    server = _QuietKubelet(("127.0.0.1", 0), _LogHandler)
    server.done = threading.Event()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_server_certificate(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    node = f"quiet-{uuid.uuid4().hex[:6]}"
    admin = kube_cluster.admin
    admin.create("/api/v1/nodes", {"metadata": {"name": node}})
    admin.merge_patch(f"/api/v1/nodes/{node}/status", {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server.server_address[1]}}}})
    try:
        yield node
    finally:
        server.done.set()
        server.shutdown()
        server.server_close()
        admin.delete(f"/api/v1/nodes/{node}")


@pytest.fixture
def talker(quiet_node: str, new_tool: Any) -> Iterator[tuple[KubernetesRuntime, ToolIdentity]]:
    """A runtime and a tool whose pod ``talker`` runs on the quiet node."""
    account: ToolAccount = new_tool("follow")
    tool = ToolIdentity(tool=account.name, namespace=account.namespace,
                        home=PurePosixPath(account.home))
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)))
    runtime.create(tool, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"},
                          "spec": {"nodeName": quiet_node, "restartPolicy": "Never",
                                   "containers": [{"name": "job", "image": "busybox",
                                                   "resources": {"limits": {
                                                       "cpu": "100m", "memory": "128Mi"}}}]}})
    try:
        yield runtime, tool
    finally:
        runtime.close()


def test_abort_frees_a_thread_waiting_for_the_next_line(
        talker: tuple[KubernetesRuntime, ToolIdentity]) -> None:
    runtime, tool = talker
    log = runtime.pod_logs(tool, pod="talker", lines=None, follow=True)
    assert isinstance(log, FollowedLog)
    assert [next(log), next(log)] == ["one", "two"]
    rest: list[list[str]] = []
    reader = threading.Thread(target=lambda: rest.append(list(log)), daemon=True)
    reader.start()
    reader.join(0.5)
    assert reader.is_alive()  # waiting for a line the quiet kubelet will not send
    log.abort()
    reader.join(QUIET_SECONDS / 3)  # bounded: a failure is reported, never a hang
    assert not reader.is_alive(), "abort() did not end the blocked read"
    assert rest == [[]]  # ended on purpose: no error, no half line
    log.close()


def test_the_executor_gives_a_leaving_followers_thread_back(
        talker: tuple[KubernetesRuntime, ToolIdentity]) -> None:
    runtime, tool = talker

    async def follow_then_leave() -> None:
        calls = CoreCalls(threads=2, timeout=10, followers=1)
        try:
            stream = await calls.open_lines(
                lambda keep_following: runtime.pod_logs(tool, pod="talker", lines=None,
                                                        follow=True),
                follow=True)
            assert await stream.next_batch() == ["one"]
            assert await stream.next_batch() == ["two"]
            assert calls.followers == 1
            # The client is gone: asked while the thread waits for the next line.
            assert await stream.next_batch(wanted=lambda: False, poll=0.05) is None
            while calls.followers:  # given back once the reading thread is free
                await asyncio.sleep(0.02)
        finally:
            calls.close()

    asyncio.run(asyncio.wait_for(follow_then_leave(), QUIET_SECONDS / 3))
