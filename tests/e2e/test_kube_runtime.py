"""KubernetesRuntime against a real 1.20 apiserver: what it stores, reads, refuses and deletes.

Each test acts as a provisioned tool with the tool's own certificate (certificate mode), on
objects the real renderer made. The cluster has no scheduler or kubelet: pods stay Pending,
and a fake kubelet (an HTTPS server the apiserver proxies to) serves pod logs.
"""

from __future__ import annotations

import http.server
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import tjf_core
from tests.e2e.cluster import TOOL_RULES, Cluster, Kube, ToolAccount, poll, write_kubeconfig
from tjf_core.errors import (
    AlreadyExistsError,
    ConfigurationError,
    ForbiddenError,
    InvalidJobError,
    LimitExceededError,
    NotFoundError,
    QuotaExceededError,
    RuntimeUnavailableError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.model import JobKind, JobSpec
from tjf_core.render import ToolContext, render_job
from tjf_core.restart import RESTART_ANNOTATION, render_restart_patch
from tjf_core.runtime import Manifest
from tjf_core.settings import RenderSettings

NewTool = Callable[[str], ToolAccount]
IMAGES_FILE = Path(tjf_core.__file__).parent / "data" / "images.yaml"
CATALOG = ImageCatalog.from_yaml(IMAGES_FILE.read_text())
MANAGED = "app.kubernetes.io/managed-by=toolforge-jobs-framework"


def identity(account: ToolAccount, *, namespace: str | None = None) -> ToolIdentity:
    return ToolIdentity(tool=account.name, namespace=namespace or account.namespace,
                        home=PurePosixPath(account.home))


def render(account: ToolAccount, name: str, **fields: Any) -> list[Manifest]:
    spec = JobSpec(name=name, command=fields.pop("command", "./run.sh"), image="bookworm",
                   **fields)
    return render_job(spec, tool=ToolContext(identity=identity(account)),
                      settings=RenderSettings(), catalog=CATALOG)


def make_runtime(**settings: Any) -> KubernetesRuntime:
    settings.setdefault("images_file", str(IMAGES_FILE))
    return KubernetesRuntime(KubeSettings(**settings))


def labelled(admin: Kube, namespace: str, selector: str) -> list[str]:
    """Every object of the job kinds (and what controllers make) matching ``selector``."""
    found = []
    for base, plural in (("/apis/batch/v1", "jobs"), ("/apis/batch/v1beta1", "cronjobs"),
                         ("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "replicasets"),
                         ("/api/v1", "services"), ("/api/v1", "pods")):
        answer = admin.get(f"{base}/namespaces/{namespace}/{plural}?labelSelector={selector}")
        found += [f"{plural}/{item['metadata']['name']}" for item in answer["items"]]
    return found


def grant_quota_read(admin: Kube, account: ToolAccount, *, group: str | None = None) -> None:
    """Let the tool (or a group) read its quota, also where its own Role does not."""
    name = f"quota-read-{uuid.uuid4().hex[:6]}"
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{account.namespace}"
    admin.create(f"{rbac}/roles", {"metadata": {"name": name}, "rules": [
        {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"],
         "verbs": ["get", "list"]}]})
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group" if group else "User",
               "name": group or account.name}
    admin.create(f"{rbac}/rolebindings", {
        "metadata": {"name": name}, "subjects": [subject],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}})


def revoke_quota_read(admin: Kube, account: ToolAccount) -> None:
    """Take the quota read out of the tool's own Role (to see a grant by group work)."""
    namespace = account.namespace
    role = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{namespace}"
    rules = [rule for rule in TOOL_RULES if "resourcequotas" not in rule["resources"]]
    admin.merge_patch(role, {"rules": rules})


@pytest.fixture(scope="module")
def shared(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ToolAccount]:
    """One tool for the tests that stay within its quota and clean up after themselves."""
    name = f"rt-{uuid.uuid4().hex[:6]}"
    yield kube_cluster.provision_tool(name, tmp_path_factory.mktemp(name))
    kube_cluster.remove_tool(name)


@pytest.fixture
def runtime() -> Iterator[KubernetesRuntime]:
    made = make_runtime()
    yield made
    made.close()


def test_one_off_job_lifecycle(kube_cluster: Cluster, shared: ToolAccount,
                               runtime: KubernetesRuntime) -> None:
    tool = identity(shared)
    (job,) = render(shared, "once")
    created = runtime.create(tool, job)
    assert (created["kind"], created["metadata"]["name"]) == ("Job", "once")
    got = runtime.get(tool, kind="Job", name="once")
    assert got is not None
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    assert runtime.get(tool, kind="Job", name="other") is None
    assert runtime.get(tool, kind="Job", name="../../secrets") is None
    with pytest.raises(AlreadyExistsError, match=r"^a job named 'once' already exists$"):
        runtime.create(tool, job)

    poll("the Job's pod", lambda: bool(runtime.list_objects(tool).pods))
    listed = runtime.list_objects(tool)
    assert [(j["apiVersion"], j["kind"], j["metadata"]["name"]) for j in listed.jobs] == [
        ("batch/v1", "Job", "once")]
    assert listed.pods[0]["kind"] == "Pod"
    assert listed.pods[0]["metadata"]["labels"]["app.kubernetes.io/name"] == "once"
    assert any(e["involvedObject"]["name"] == "once" for e in listed.events)

    started = time.monotonic()
    assert runtime.delete_job(tool, "once") is True
    assert time.monotonic() - started < 2.0
    poll("nothing labelled once", lambda: not labelled(
        kube_cluster.admin, shared.namespace, f"app.kubernetes.io/name=once,{MANAGED}"))
    assert runtime.delete_job(tool, "once") is False
    assert runtime.delete_job(tool, "a,b!=c") is False


@pytest.mark.parametrize("threads", [0, 8])
def test_list_objects_costs_five_calls(shared: ToolAccount, threads: int) -> None:
    calls: list[tuple[str, str]] = []
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE), list_threads=threads),
                                request_hook=lambda method, path: calls.append((method, path)))
    tool = identity(shared)
    runtime.list_objects(tool)  # the first one also discovers the CronJob API version
    assert calls[0] == ("GET", "/apis/batch/v1")
    calls.clear()
    runtime.list_objects(tool)
    ns = shared.namespace
    expected = [
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs"),
        ("GET", f"/apis/batch/v1beta1/namespaces/{ns}/cronjobs"),
        ("GET", f"/apis/apps/v1/namespaces/{ns}/deployments"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        ("GET", f"/api/v1/namespaces/{ns}/events"),
    ]
    if threads:
        assert sorted(calls) == sorted(expected)  # sent side by side: in any order
    else:
        assert calls == expected
    runtime.close()


def test_cronjob_is_stored_as_v1beta1_on_a_1_20_cluster(
    kube_cluster: Cluster, shared: ToolAccount, runtime: KubernetesRuntime
) -> None:
    tool = identity(shared)
    (cronjob,) = render(shared, "nightly", schedule="@daily")
    assert cronjob["apiVersion"] == "batch/v1"
    created = runtime.create(tool, cronjob)
    assert created["apiVersion"] == "batch/v1beta1"
    assert created["spec"]["schedule"] == cronjob["spec"]["schedule"]
    got = runtime.get(tool, kind="CronJob", name="nightly")
    assert got is not None
    assert got["apiVersion"] == "batch/v1beta1"
    listed = runtime.list_objects(tool).cronjobs
    assert [(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in listed] == [
        ("batch/v1beta1", "CronJob", "nightly")]
    # Replacing with an equal spec keeps the object.
    replaced = runtime.replace(tool, cronjob)
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert runtime.delete_job(tool, "nightly") is True
    poll("no CronJob", lambda: not labelled(kube_cluster.admin, shared.namespace, MANAGED))


def test_a_time_zone_is_refused_before_anything_is_sent(shared: ToolAccount) -> None:
    calls: list[tuple[str, str]] = []
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)),
                                request_hook=lambda method, path: calls.append((method, path)))
    (cronjob,) = render(shared, "berlin", schedule="0 3 * * *", timezone="Europe/Berlin")
    with pytest.raises(InvalidJobError) as refused:
        runtime.create(identity(shared), cronjob)
    assert str(refused.value).startswith("timezone: 'Europe/Berlin' cannot be used: this cluster")
    assert "does not support time zones" in str(refused.value)
    assert [method for method, _ in calls] == ["GET"]  # discovery only, nothing written
    assert runtime.get(identity(shared), kind="CronJob", name="berlin") is None
    runtime.close()


def test_continuous_job_with_a_service(kube_cluster: Cluster, shared: ToolAccount,
                                       runtime: KubernetesRuntime) -> None:
    tool = identity(shared)
    deployment, service = render(shared, "web", kind=JobKind.CONTINUOUS, port=8000)
    runtime.create(tool, deployment)
    live_service = runtime.create(tool, service)
    cluster_ip = live_service["spec"]["clusterIP"]
    assert [d["metadata"]["name"] for d in runtime.list_objects(tool).deployments] == ["web"]

    # The Service's cluster IP is the server's; a replace carries it over instead of failing.
    replaced = runtime.replace(tool, service)
    assert replaced["metadata"]["uid"] == live_service["metadata"]["uid"]
    assert replaced["spec"]["clusterIP"] == cluster_ip

    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    patched = runtime.patch(tool, kind="Deployment", name="web",
                            patch=render_restart_patch(now=at))
    annotations = patched["spec"]["template"]["metadata"]["annotations"]
    assert annotations[RESTART_ANNOTATION] == "2030-01-02T03:04:05Z"
    with pytest.raises(NotFoundError, match=r"^Deployment 'nope' does not exist$"):
        runtime.patch(tool, kind="Deployment", name="nope", patch={"spec": {}})

    assert runtime.delete_job(tool, "web") is True
    poll("nothing labelled web", lambda: not labelled(
        kube_cluster.admin, shared.namespace, f"app.kubernetes.io/name=web,{MANAGED}"))


def test_replace_recreates_when_an_immutable_field_changes(
    kube_cluster: Cluster, shared: ToolAccount, runtime: KubernetesRuntime
) -> None:
    tool = identity(shared)
    (first,) = render(shared, "batch", command="./one.sh")
    created = runtime.replace(tool, first)  # nothing there yet: created
    # Only metadata changes: replaced in place (the generated selector is carried over).
    first["metadata"]["labels"]["extra"] = "yes"
    same = runtime.replace(tool, first)
    assert same["metadata"]["uid"] == created["metadata"]["uid"]
    assert same["metadata"]["labels"]["extra"] == "yes"
    # A Job's pod template is immutable: the Job is deleted and made again.
    (second,) = render(shared, "batch", command="./two.sh")
    recreated = runtime.replace(tool, second)
    assert recreated["metadata"]["uid"] != created["metadata"]["uid"]
    assert "./two.sh" in recreated["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    runtime.delete_job(tool, "batch")
    poll("nothing labelled batch", lambda: not labelled(
        kube_cluster.admin, shared.namespace, f"app.kubernetes.io/name=batch,{MANAGED}"))


def test_delete_all_removes_every_managed_object(kube_cluster: Cluster, new_tool: NewTool,
                                                 runtime: KubernetesRuntime) -> None:
    account = new_tool("flush")
    tool = identity(account)
    for manifest in (*render(account, "a"), *render(account, "b", schedule="@hourly"),
                     *render(account, "c", kind=JobKind.CONTINUOUS, port=80)):
        runtime.create(tool, manifest)
    kube_cluster.admin.create(f"/api/v1/namespaces/{account.namespace}/configmaps",
                              {"metadata": {"name": "unmanaged"}})
    started = time.monotonic()
    runtime.delete_all(tool)
    assert time.monotonic() - started < 2.0
    poll("nothing managed", lambda: not labelled(kube_cluster.admin, account.namespace, MANAGED))
    # What the framework did not make stays.
    kube_cluster.admin.get(f"/api/v1/namespaces/{account.namespace}/configmaps/unmanaged")


def test_quota_refusal_names_the_quota(new_tool: NewTool, runtime: KubernetesRuntime) -> None:
    account = new_tool("quota")
    tool = identity(account)
    for index in range(3):  # count/deployments.apps is 3
        runtime.create(tool, render(account, f"d{index}", kind=JobKind.CONTINUOUS)[0])
    with pytest.raises(QuotaExceededError) as refused:
        runtime.create(tool, render(account, "d3", kind=JobKind.CONTINUOUS)[0])
    assert str(refused.value).startswith(
        f"out of quota for count/deployments.apps (used 3 of 3, requested 1) in quota "
        f"{account.namespace}")
    assert refused.value.http_status == 409


def test_limit_range_refusal_is_a_client_error(new_tool: NewTool,
                                               runtime: KubernetesRuntime) -> None:
    account = new_tool("limits")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greedy"},
           "spec": {"containers": [{"name": "job", "image": "busybox",
                                    "resources": {"limits": {"cpu": "3", "memory": "1Gi"}}}]}}
    with pytest.raises(LimitExceededError) as refused:
        runtime.create(identity(account), pod)
    assert refused.value.http_status == 400
    assert str(refused.value) == ("cpu: 3 is above the limit of 1 per job in this tool's "
                                  "namespace; ask for less or request a quota increase")


def test_a_tool_cannot_touch_another_tools_namespace(
    new_tool: NewTool, runtime: KubernetesRuntime
) -> None:
    alpha, beta = new_tool("alpha"), new_tool("beta")
    runtime.create(identity(beta), render(beta, "mine")[0])
    # Alpha's credentials, beta's namespace: what a confused service would try.
    intruder = identity(alpha, namespace=beta.namespace)
    with pytest.raises(ForbiddenError, match=f'User "{alpha.name}" cannot list'):
        runtime.list_objects(intruder)
    for attempt in (lambda: runtime.delete_job(intruder, "mine"),
                    lambda: runtime.delete_all(intruder),
                    lambda: runtime.create(intruder, render(beta, "x")[0])):
        with pytest.raises(ForbiddenError):
            attempt()
    assert runtime.get(identity(beta), kind="Job", name="mine") is not None


def test_quota_reads_the_namespace_quota_and_limit_range(
    kube_cluster: Cluster, new_tool: NewTool, runtime: KubernetesRuntime
) -> None:
    account = new_tool("limits")
    tool = identity(account)
    revoke_quota_read(kube_cluster.admin, account)
    poll("RBAC to refuse reading the quota", lambda: not _can_read_quota(runtime, tool))
    with pytest.raises(ForbiddenError):
        runtime.quota(tool)
    grant_quota_read(kube_cluster.admin, account)
    poll("RBAC to allow reading the quota", lambda: _can_read_quota(runtime, tool))
    quota, limits = runtime.quota(tool)
    assert quota is not None
    assert limits is not None
    assert (quota["kind"], quota["metadata"]["name"]) == ("ResourceQuota", account.namespace)
    assert quota["spec"]["hard"]["count/jobs.batch"] == "15"
    assert limits["spec"]["limits"][0]["max"] == {"cpu": "1", "memory": "4Gi"}
    for path in (f"/api/v1/namespaces/{account.namespace}/resourcequotas/{account.namespace}",
                 f"/api/v1/namespaces/{account.namespace}/limitranges/{account.namespace}"):
        kube_cluster.admin.delete(path)
    assert runtime.quota(tool) == (None, None)


def _can_read_quota(runtime: KubernetesRuntime, tool: ToolIdentity) -> bool:
    try:
        runtime.quota(tool)
    except ForbiddenError:
        return False
    return True


def test_an_unreachable_api_is_reported_quickly(shared: ToolAccount, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "config"
    write_kubeconfig(kubeconfig, server=f"https://127.0.0.1:{port}", ca_file=shared.ca_file,
                     cert_file=shared.client_cert, key_file=shared.client_key, user="t")
    runtime = make_runtime(kubeconfig_template=str(kubeconfig), connect_timeout_seconds=1,
                           cronjob_api_version="batch/v1beta1")
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailableError) as down:
        runtime.list_objects(identity(shared))
    assert time.monotonic() - started < 3.0
    assert str(down.value).startswith(f"Kubernetes API unavailable at https://127.0.0.1:{port} (")
    assert "Connection refused" in str(down.value)
    assert str(down.value).endswith("try again in a minute")
    assert down.value.__cause__ is None
    runtime.close()


# --- the image catalog -------------------------------------------------------------------

CATALOG_V1 = "bookworm:\n  image: registry.example/bookworm:latest\n"
CATALOG_V2 = "python3.11:\n  aliases: [tf-python311]\n  image: registry.example/py:3.11\n"


@pytest.fixture
def catalog_namespace(kube_cluster: Cluster) -> Iterator[str]:
    name = f"image-config-{uuid.uuid4().hex[:6]}"
    kube_cluster.admin.create("/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    kube_cluster.admin.delete(f"/api/v1/namespaces/{name}")


def test_image_catalog_from_a_configmap_refreshes_and_keeps_the_last_good(
    kube_cluster: Cluster, catalog_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = kube_cluster.admin
    path = f"/api/v1/namespaces/{catalog_namespace}/configmaps"
    admin.create(path, {"metadata": {"name": "image-config"},
                        "data": {"images-v1.yaml": CATALOG_V1}})
    now = [1000.0]
    runtime = KubernetesRuntime(
        KubeSettings(service_kubeconfig=str(kube_cluster.admin_kubeconfig),
                     images_configmap_namespace=catalog_namespace, images_refresh_seconds=300),
        clock=lambda: now[0])

    def shortnames() -> list[str]:
        return [image.shortname for image in runtime.image_catalog().images]

    assert shortnames() == ["bookworm"]
    admin.merge_patch(f"{path}/image-config", {"data": {"images-v1.yaml": CATALOG_V2}})
    now[0] += 299
    assert shortnames() == ["bookworm"]  # fresh enough: not read again
    assert runtime.catalog.reads == 1
    now[0] += 2
    assert shortnames() == ["python3.11"]

    admin.merge_patch(f"{path}/image-config", {"data": {"images-v1.yaml": "a: [unclosed"}})
    now[0] += 301
    with caplog.at_level(logging.WARNING, logger="tjf_core.kube.catalog"):
        assert shortnames() == ["python3.11"]
    assert "keeping the image catalog read before" in caplog.text
    assert f"ConfigMap {catalog_namespace}/image-config" in caplog.text
    assert runtime.catalog.reads == 3
    assert shortnames() == ["python3.11"]  # the failed read is not retried at once
    assert runtime.catalog.reads == 3
    runtime.close()

    admin.delete(f"{path}/image-config")
    fresh = KubernetesRuntime(KubeSettings(service_kubeconfig=str(kube_cluster.admin_kubeconfig),
                                           images_configmap_namespace=catalog_namespace))
    with pytest.raises(ConfigurationError) as missing:
        fresh.image_catalog()
    assert str(missing.value).startswith(
        f"the image catalog (ConfigMap {catalog_namespace}/image-config, key images-v1.yaml) "
        "cannot be read: ConfigMap 'image-config' does not exist")
    fresh.close()


# --- pod logs ----------------------------------------------------------------------------

class _KubeletHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _KubeletServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((url.path, parse_qs(url.query)))
        lines = self.server.lines
        tail = parse_qs(url.query).get("tailLines")
        if tail:
            lines = lines[-int(tail[0]):]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            self._chunk(line.encode() + b"\n")
        if "follow" in url.query:
            # A followed log: the rest comes once the test has read the first part.
            self.server.release.wait(timeout=10)
            self._chunk(b"later line\npartial")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _KubeletServer(http.server.ThreadingHTTPServer):
    lines: list[str]
    requests: list[tuple[str, dict[str, list[str]]]]
    release: threading.Event


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-kubelet")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "kubelet.crt", directory / "kubelet.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def fake_node(kube_cluster: Cluster, tmp_path: Path) -> Iterator[tuple[str, _KubeletServer]]:
    """A Node whose kubelet is an HTTPS server here; the apiserver proxies pod logs to it."""
    server = _KubeletServer(("127.0.0.1", 0), _KubeletHandler)
    server.lines, server.requests, server.release = [], [], threading.Event()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    node = f"node-{uuid.uuid4().hex[:6]}"
    admin = kube_cluster.admin
    admin.create("/api/v1/nodes", {"metadata": {"name": node}})
    admin.merge_patch(f"/api/v1/nodes/{node}/status", {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server.server_address[1]}}}})
    yield node, server
    server.release.set()
    server.shutdown()
    server.server_close()
    admin.delete(f"/api/v1/nodes/{node}")


def _pod_on(node: str | None, name: str, containers: tuple[str, ...] = ("job",)) -> Manifest:
    limits = {"cpu": "100m", "memory": "128Mi"}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [
        {"name": c, "image": "busybox", "resources": {"limits": limits}} for c in containers]}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_pod_logs_tail_and_follow_through_the_apiserver(
    fake_node: tuple[str, _KubeletServer], new_tool: NewTool, runtime: KubernetesRuntime
) -> None:
    node, kubelet = fake_node
    account = new_tool("logs")
    tool = identity(account)
    kubelet.lines = ["one", "two", "three"]
    runtime.create(tool, _pod_on(node, "single", ("worker",)))
    runtime.create(tool, _pod_on(node, "sidecar", ("proxy", "job")))

    assert list(runtime.pod_logs(tool, pod="single", lines=2, follow=False)) == ["two", "three"]
    assert kubelet.requests[-1][0] == f"/containerLogs/{account.namespace}/single/worker"
    assert list(runtime.pod_logs(tool, pod="sidecar", lines=None, follow=False)) == [
        "one", "two", "three"]
    assert kubelet.requests[-1][0] == f"/containerLogs/{account.namespace}/sidecar/job"

    followed = runtime.pod_logs(tool, pod="single", lines=None, follow=True)
    assert [next(followed), next(followed), next(followed)] == ["one", "two", "three"]
    kubelet.release.set()  # only now does the "kubelet" send more: the lines streamed
    assert list(followed) == ["later line", "partial"]
    assert kubelet.requests[-1][1]["follow"] == ["true"]


def test_pod_logs_errors_are_clear(new_tool: NewTool, runtime: KubernetesRuntime) -> None:
    account = new_tool("nologs")
    tool = identity(account)
    with pytest.raises(NotFoundError, match=r"^pod 'ghost-pod' does not exist$"):
        runtime.pod_logs(tool, pod="ghost-pod", lines=None, follow=False)
    # A pod bound to a node that does not exist: the apiserver cannot reach any kubelet.
    runtime.create(tool, _pod_on("vanished-node", "orphan"))
    with pytest.raises(NotFoundError) as missing:
        runtime.pod_logs(tool, pod="orphan", lines=10, follow=False)
    assert str(missing.value).startswith("the log of pod 'orphan' cannot be read (yet): ")
    # Not scheduled at all: Kubernetes has no log yet and says nothing.
    runtime.create(tool, _pod_on(None, "pending"))
    assert list(runtime.pod_logs(tool, pod="pending", lines=None, follow=False)) == []
