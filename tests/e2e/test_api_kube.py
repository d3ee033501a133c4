"""The REST API end to end: ``tjf-api`` as a process, real TLS, a real apiserver, real tools.

The server runs as production runs it (``python -m tjf_http --config api.toml`` plus flags),
from the ``api.toml`` that ``deploy/`` ships, with the runtime ``kubernetes``. Tools are
provisioned as maintain-kubeusers does: each has a namespace, RBAC, quota and a client
certificate signed by the cluster's CA, written into its home. Each request is made over TLS
with the tool's OWN certificate, so the API's client CA is the cluster's CA, and in
certificate mode the API then reads that same certificate from the tool's home to act on the
cluster. Impersonation mode runs once, with the RBAC from ``deploy/`` bound to the API's
identity.
"""

from __future__ import annotations

import ssl
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import Cluster, Kube, ToolAccount, free_ports, poll, write_kubeconfig
from tests.e2e.test_contract_kube import IMAGES_FILE
from tests.e2e.test_credentials import _sign
from tests.e2e.test_deploy import (
    AGGREGATE_LABEL,
    ApiProcess,
    api_toml,
    collection,
    create,
    delete_quietly,
    instantiate,
    profile_objects,
    tls_client,
    tool_role,
)
from tests.e2e.test_kube_runtime import MANAGED, labelled
from tests.http.conftest import Client, Reply
from tests.http.pki import Authority
from tjf_core.restart import RESTART_ANNOTATION

ONCE = {"name": "once", "cmd": "./once.sh", "imagename": "bookworm"}
NIGHTLY = {"name": "nightly", "cmd": "./nightly.sh", "imagename": "bookworm",
           "schedule": "@daily"}
WEB = {"name": "web", "cmd": "./serve", "imagename": "bookworm", "continuous": True}
FORM = "application/x-www-form-urlencoded"


@attrs.frozen
class Tools:
    alpha: ToolAccount
    beta: ToolAccount
    homes: Path


@pytest.fixture(scope="module")
def tools(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    """Two provisioned tools whose homes are ``homes/<tool>`` (the API's home_template)."""
    homes = tmp_path_factory.mktemp("homes")
    names = [f"{prefix}-{uuid.uuid4().hex[:6]}" for prefix in ("api-a", "api-b")]
    try:
        alpha, beta = (kube_cluster.provision_tool(name, homes / name) for name in names)
        yield Tools(alpha, beta, homes)
    finally:
        for name in names:
            kube_cluster.remove_tool(name)


@attrs.define
class Api:
    """A running ``tjf-api`` and its clients, each with a tool's own certificate."""

    process: ApiProcess
    port: int
    server_ca: Path
    clients: list[Client] = attrs.field(factory=list)

    def as_tool(self, account: ToolAccount) -> Client:
        client = tls_client(self.port, ca=self.server_ca, cert=account.client_cert,
                            key=account.client_key)
        self.clients.append(client)
        return client

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        assert self.process.stop() == 0, self.process.tail()


def start_api(kube_cluster: Cluster, directory: Path, *, profile: str, homes: Path,
              flags: Sequence[str]) -> Api:
    """``tjf-api`` with the deploy/ config of ``profile``, on loopback, TLS with a server
    certificate of a CA of its own and the cluster's CA for clients."""
    config = directory / "api.toml"
    config.write_text(api_toml(profile_objects(profile)))
    authority = Authority(directory, "api-server-ca")
    server = authority.issue("api-server", cn="localhost", org=None, server=True)
    (port,) = free_ports(1)
    process = ApiProcess.start(
        ["--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--cert", str(server.cert), "--key", str(server.key),
         "--client-ca", str(kube_cluster.ca_file),
         "--set", f"identity.home_template={homes}/{{tool}}",
         "--set", "server.shutdown_grace_seconds=2", *flags],
        log=directory / "api.log")
    return Api(process, port, authority.file)


@pytest.fixture(scope="module")
def cert_api(kube_cluster: Cluster, tools: Tools,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    api = start_api(kube_cluster, tmp_path_factory.mktemp("cert-api"),
                    profile="direct-certificate", homes=tools.homes,
                    flags=["--set", f"kubernetes.images_file={IMAGES_FILE}"])
    try:
        yield api
    finally:
        api.stop()


def ok(reply: Reply, status: int = 200) -> Reply:
    assert reply.status == status, reply.body
    return reply


def managed(cluster: Cluster, account: ToolAccount) -> list[str]:
    """The tool's objects that tjf made (pods and replica sets of a rollout included)."""
    return labelled(cluster.admin, account.namespace, MANAGED)


# --- certificate mode --------------------------------------------------------------------

def test_every_kind_through_the_modern_routes(kube_cluster: Cluster, tools: Tools,
                                              cert_api: Api) -> None:
    admin, alpha = kube_cluster.admin, tools.alpha
    api = cert_api.as_tool(alpha)
    jobs = f"/v1/tool/{alpha.name}/jobs"
    for body in (ONCE, NIGHTLY, WEB):
        created = ok(api.post(jobs, json_body=body), 201).json()
        assert created["job"]["name"] == body["name"]
        assert created["messages"]["info"] == [f"job {body['name']!r} created"]
    # What the API made is in the tool's namespace, in the kinds a 1.20 cluster serves.
    namespace = alpha.namespace
    assert admin.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/once")
    assert admin.get(f"/apis/batch/v1beta1/namespaces/{namespace}/cronjobs/nightly")
    assert admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")

    listed = ok(api.get(jobs)).json()
    assert [job["name"] for job in listed["jobs"]] == ["nightly", "once", "web"]
    assert listed["messages"]["error"] == []
    nightly = ok(api.get(f"{jobs}/nightly/")).json()["job"]
    assert nightly["schedule"] == "@daily"
    assert nightly["schedule_actual"] != "@daily"  # the macro spread to a fixed time
    assert ok(api.get(f"{jobs}/web")).json()["job"]["kind"] == "continuous"

    # Restart: a scheduled job runs now, a continuous one rolls, a one-off one cannot.
    restarted = ok(api.post(f"{jobs}/nightly/restart")).json()
    assert restarted["messages"]["info"] == ["job 'nightly' was restarted"]

    def manual_run() -> bool:
        found = admin.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
        return any(ref["name"] == "nightly" for job in found
                   for ref in job["metadata"].get("ownerReferences", []))

    poll("the manual run of nightly", manual_run)
    ok(api.post(f"{jobs}/web/restart"))
    template = admin.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")[
        "spec"]["template"]
    assert RESTART_ANNOTATION in template["metadata"]["annotations"]
    refused = api.post(f"{jobs}/once/restart")
    assert refused.status == 400
    assert "cannot be restarted" in refused.json()["messages"]["error"][0]

    # Delete one, then flush the rest: the namespace ends up without tjf's objects.
    assert ok(api.delete(f"{jobs}/once")).json()["messages"]["info"] == [
        "job 'once' was deleted"]
    gone = api.get(f"{jobs}/once")
    assert gone.status == 404
    assert gone.json()["messages"]["error"] == ["job 'once' does not exist"]
    ok(api.delete(jobs))
    assert ok(api.get(jobs)).json()["jobs"] == []
    poll("every object of the tool's jobs to go",
         lambda: not managed(kube_cluster, alpha), timeout=60)


def test_logs_quota_and_images(tools: Tools, cert_api: Api) -> None:
    alpha = tools.alpha
    api = cert_api.as_tool(alpha)
    base = f"/v1/tool/{alpha.name}"
    ok(api.post(f"{base}/jobs", json_body={**ONCE, "name": "talk"}), 201)
    (alpha.home / "talk.out").write_text("one\ntwo\n")
    logs = ok(api.get(f"{base}/jobs/talk/logs?lines=1"))
    assert logs.body == b"two\n"
    quota = ok(api.get(f"{base}/quotas")).json()["quota"]
    categories = {c["name"]: {i["name"]: i["limit"] for i in c["items"]}
                  for c in quota["categories"]}
    assert set(categories) == {"Running jobs", "Per-job limits", "Job definitions"}
    assert "4" in categories["Running jobs"].values()  # the provisioned pods quota
    images = ok(api.get(f"{base}/images")).json()["images"]
    assert "bookworm" in [image["shortname"] for image in images]
    ok(api.delete(f"{base}/jobs"))


def test_the_seed_and_2023_client_routes(tools: Tools, cert_api: Api) -> None:
    api = cert_api.as_tool(tools.alpha)
    # The seed's client: a form, bare answers.
    form = urllib.parse.urlencode({"name": "seed", "cmd": "./seed.sh", "imagename": "bookworm",
                                   "schedule": "17 3 * * *", "filelog": "true"}).encode()
    created = ok(api.post("/api/v1/run/", body=form, content_type=FORM), 201).json()
    assert (created["name"], created["schedule"], created["filelog"]) == (
        "seed", "17 3 * * *", "True")
    assert ok(api.get("/api/v1/show/seed/")).json()["cmd"] == "./seed.sh"
    assert [job["name"] for job in ok(api.get("/api/v1/list/")).json()] == ["seed"]
    assert "bookworm" in [i["shortname"] for i in ok(api.get("/api/v1/containers/")).json()]
    assert ok(api.delete("/api/v1/delete/seed")).json() == {}

    # The 2023 client: JSON on /api/v1/jobs/.
    svc = {"name": "svc", "cmd": "./svc", "imagename": "bookworm", "continuous": "true"}
    assert ok(api.post("/api/v1/jobs/", json_body=svc), 201).json()["continuous"] is True
    listed = ok(api.get("/api/v1/jobs/")).json()
    assert [job["name"] for job in listed] == ["svc"]
    assert set(listed[0]) >= {"name", "cmd", "image", "image_state", "filelog",
                              "status_short", "status_long", "emails", "retry",
                              "schedule", "schedule_actual", "continuous"}
    assert ok(api.get("/api/v1/jobs/svc")).json()["name"] == "svc"
    assert ok(api.post("/api/v1/jobs/svc/restart")).json() == {}
    assert ok(api.delete("/api/v1/jobs/svc")).json() == {}
    missing = api.get("/api/v1/jobs/svc")
    assert missing.status == 404
    assert missing.json() == {"error": "job 'svc' does not exist", "type": "not_found",
                              "request_id": missing.headers["X-Request-Id"]}
    assert ok(api.delete("/api/v1/jobs")).json() == {}
    quota = ok(api.get("/api/v1/quota/")).json()
    assert [c["name"] for c in quota["categories"]] == ["Running jobs", "Per-job limits",
                                                       "Job definitions"]


def test_a_tool_cannot_reach_another_tools_jobs(tools: Tools, cert_api: Api) -> None:
    alpha, beta = tools.alpha, tools.beta
    theirs = f"/v1/tool/{beta.name}/jobs"
    owner = cert_api.as_tool(beta)
    ok(owner.post(theirs, json_body={**WEB, "name": "theirs"}), 201)
    intruder = cert_api.as_tool(alpha)
    for method, path in (("GET", theirs), ("POST", theirs), ("DELETE", theirs),
                         ("GET", f"{theirs}/theirs"), ("DELETE", f"{theirs}/theirs"),
                         ("POST", f"{theirs}/theirs/restart")):
        body = {**WEB, "name": "mine"} if method == "POST" and path == theirs else None
        refused = intruder.request(method, path, json_body=body)
        assert refused.status == 403, (method, path)
        assert refused.json()["messages"]["error"] == [
            f"tool {beta.name!r} in the path is not the authenticated tool {alpha.name!r}: "
            f"use /v1/tool/{alpha.name}/..."]
    # The old routes name no tool: they are always the caller's own.
    assert ok(intruder.get("/api/v1/list/")).json() == []
    assert [job["name"] for job in ok(owner.get(theirs)).json()["jobs"]] == ["theirs"]
    ok(owner.delete(theirs))


def test_only_certificates_of_the_clusters_ca_get_in(tools: Tools, cert_api: Api,
                                                     tmp_path: Path) -> None:
    stranger = Authority(tmp_path, "not-the-cluster-ca").issue("same-name", cn=tools.alpha.name)
    client = tls_client(cert_api.port, ca=cert_api.server_ca, cert=stranger.cert,
                        key=stranger.key)
    # The TLS handshake fails: no request reaches a handler.
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        client.get(f"/v1/tool/{tools.alpha.name}/jobs")
    client.close()


# --- impersonation mode ------------------------------------------------------------------

@attrs.frozen
class Impersonator:
    """The API's own identity (a user with a certificate) and the RBAC it was given."""

    user: str
    kubeconfig: Path
    images_namespace: str
    objects: list[dict[str, object]]


@pytest.fixture
def impersonator(kube_cluster: Cluster, tools: Tools, tmp_path: Path) -> Iterator[Impersonator]:
    """deploy/'s impersonation and image catalog RBAC, bound to a user of its own (here the
    API is not a pod with a service account), and the per-tool role of alpha only."""
    admin = kube_cluster.admin
    suffix = uuid.uuid4().hex[:6]
    user = f"jobs-api-{suffix}"
    cert, key = _sign(admin, common_name=user, organization="jobs-api")
    (tmp_path / "api.crt").write_bytes(cert)
    (tmp_path / "api.key").write_bytes(key)
    kubeconfig = tmp_path / "jobs-api.kubeconfig"
    write_kubeconfig(kubeconfig, server=kube_cluster.server, ca_file=kube_cluster.ca_file,
                     cert_file=tmp_path / "api.crt", key_file=tmp_path / "api.key", user=user)
    images = f"image-config-{suffix}"
    namespaces = {"jobs-api": f"jobs-api-{suffix}", "image-config": images}
    objects = [instantiate(obj, suffix=suffix, namespaces=namespaces)
               for obj in profile_objects("nginx-impersonation")
               if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")]
    for obj in objects:
        if "subjects" in obj:
            obj["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                "name": user}]
    objects.append(tool_role(tools.alpha.name, label=f"{AGGREGATE_LABEL}-{suffix}",
                             prefix=f"jobs-api-{suffix}"))
    admin.create("/api/v1/namespaces", {"metadata": {"name": images}})
    try:
        admin.create(f"/api/v1/namespaces/{images}/configmaps", {
            "metadata": {"name": "image-config"},
            "data": {"images-v1.yaml": IMAGES_FILE.read_text()}})
        for obj in objects:
            create(admin, obj)
        review = {"spec": {"user": user, "groups": ["jobs-api", "system:authenticated"],
                           "resourceAttributes": {"verb": "impersonate", "resource": "users",
                                                  "name": tools.alpha.name}}}

        def may_impersonate() -> bool:
            answer = admin.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
            return bool(answer["status"].get("allowed"))

        poll("the aggregated ClusterRole to take in alpha's role", may_impersonate)
        yield Impersonator(user, kubeconfig, images, objects)
    finally:
        for obj in objects:
            if str(obj["kind"]).startswith("Cluster"):
                delete_quietly(admin, f"{collection(obj)}/{obj['metadata']['name']}")
        delete_quietly(admin, f"/api/v1/namespaces/{images}")


def test_impersonation_mode_acts_as_provisioned_tools_only(
    kube_cluster: Cluster, tools: Tools, impersonator: Impersonator, tmp_path: Path
) -> None:
    alpha, beta = tools.alpha, tools.beta
    api = start_api(kube_cluster, tmp_path, profile="nginx-impersonation", homes=tools.homes,
                    flags=["--set", f"kubernetes.service_kubeconfig={impersonator.kubeconfig}",
                           # No tool file may be needed: the template points nowhere.
                           "--set", "kubernetes.kubeconfig_template=/nonexistent/{tool}",
                           "--set", "kubernetes.images_configmap_namespace="
                                    f"{impersonator.images_namespace}"])
    try:
        client = api.as_tool(alpha)
        jobs = f"/v1/tool/{alpha.name}/jobs"
        # The catalog comes from the ConfigMap, read with the image-config Role.
        images = ok(client.get(f"/v1/tool/{alpha.name}/images")).json()["images"]
        assert "bookworm" in [image["shortname"] for image in images]
        ok(client.post(jobs, json_body=WEB), 201)
        deployment = kube_cluster.admin.get(
            f"/apis/apps/v1/namespaces/{alpha.namespace}/deployments/web")
        assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == \
            "toolforge-jobs-framework"
        assert [job["name"] for job in ok(client.get(jobs)).json()["jobs"]] == ["web"]
        assert client.get(f"/v1/tool/{beta.name}/jobs").status == 403
        ok(client.delete(jobs))
        poll("alpha's objects to go", lambda: not managed(kube_cluster, alpha), timeout=60)

        # beta has no per-tool role: the cluster refuses to let the API act as beta.
        refused = api.as_tool(beta).get(f"/v1/tool/{beta.name}/jobs")
        assert refused.status == 403, refused.body
        assert 'cannot impersonate resource "users"' in refused.json()["messages"]["error"][0]
        # And the API's own identity may do nothing with jobs by itself.
        with Kube(impersonator.kubeconfig) as service, pytest.raises(ApiException) as own:
            service.get(f"/apis/apps/v1/namespaces/{alpha.namespace}/deployments")
        assert own.value.status == 403
    finally:
        api.stop()
