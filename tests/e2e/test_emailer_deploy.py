"""The emailer's manifests (``deploy/emailer``): valid, consistent, and no more rights than
it needs.

As ``tests/e2e/test_deploy.py`` does for the API (whose helpers this reuses), cheapest first:

* every object validates strictly (unknown fields refused) against Kubernetes 1.29 and 1.33;
* the files agree with each other and with ``tjf-emailer``'s settings: ``config.toml`` and
  the watched ConfigMap parse, name the ConfigMap and the Lease the Role allows, and every
  path they name is mounted as it must be (the spool writable, the homes read-only);
* on the real apiserver the files are created in fresh namespaces and read back unchanged,
  then requests made with a token of the emailer's own service account show what it may do:
  list and watch pods in a tool's namespace (and in all), read and watch its ConfigMap,
  create and renew its Lease, and not read Secrets, create pods, read other ConfigMaps or
  touch another Lease.
"""

from __future__ import annotations

import tomllib
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import Cluster, Kube, _has_token, poll
from tests.e2e.test_deploy import (
    DEPLOY,
    collection,
    container,
    create,
    delete_quietly,
    find,
    instantiate,
    load,
    missing_fields,
)
from tests.k8s_schema import DEFAULT_VERSIONS, assert_valid
from tjf_emailer.settings import (
    START_ONLY_KEYS,
    EmailerSettings,
    settings_from_mapping,
    settings_from_toml,
)

Json = dict[str, Any]
EMAILER = DEPLOY / "emailer"
FILES = sorted(EMAILER.glob("*.yaml"))
NAMESPACE = "jobs-emailer"
#: The keys of REFERENCE §9, which the watched ConfigMap holds.
REFERENCE_KEYS = {
    "email_from_addr", "email_to_domain", "email_to_prefix", "send_emails_for_real",
    "smtp_server_fqdn", "smtp_server_port", "task_compose_emails_loop_sleep",
    "task_read_configmap_sleep", "task_send_emails_loop_sleep", "task_send_emails_max",
    "task_watch_pods_timeout", "debug",
}
#: The label selector of the emailer's pod watch (tjf_emailer.kube.JOB_PODS_SELECTOR).
JOB_PODS = ("app.kubernetes.io/managed-by=toolforge-jobs-framework,"
            "jobs.toolforge.org/emails in (all,onfailure,onfinish)")


def objects() -> list[Json]:
    """Every object, in the order ``kubectl apply -f deploy/emailer`` sends them."""
    return [doc for path in FILES for doc in load(path)]


def settings(tmp_path: Path) -> tuple[EmailerSettings, EmailerSettings]:
    """The settings at start (``config.toml``), and with the watched ConfigMap over them."""
    everything = objects()
    started = find(everything, "ConfigMap", "jobs-emailer-config")["data"]["config.toml"]
    path = tmp_path / "config.toml"
    path.write_text(started)
    at_start = settings_from_toml(path)
    watched = find(everything, "ConfigMap", at_start.cluster.configmap_name)["data"]
    return at_start, settings_from_mapping(watched, base=at_start)


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_emailer_manifest_is_strictly_valid(path: Path) -> None:
    assert DEFAULT_VERSIONS == ("1.29", "1.33")
    found = load(path)
    assert found
    for obj in found:
        assert_valid(obj)
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "toolforge-jobs-framework"
        assert labels["app.kubernetes.io/name"] == "jobs-emailer"
        assert obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding") or (
            obj["metadata"]["namespace"] == NAMESPACE)


def test_the_settings_name_the_objects_the_rbac_allows(tmp_path: Path) -> None:
    at_start, running = settings(tmp_path)
    everything = objects()
    watched = find(everything, "ConfigMap", at_start.cluster.configmap_name)
    assert set(watched["data"]) == REFERENCE_KEYS
    assert not REFERENCE_KEYS & START_ONLY_KEYS  # all of them take effect live
    assert running.send.for_real is False  # until the operator has read the log
    assert running.digest.group_interval.total_seconds() == 400
    assert at_start.cluster.namespace == ""  # the pod's own: wherever it is applied

    role = find(everything, "Role", "jobs-emailer")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"],
         "resourceNames": [at_start.cluster.configmap_name], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "resourceNames": [at_start.cluster.lease_name], "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    cluster_role = find(everything, "ClusterRole", "jobs-emailer-pod-reader")
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    account = find(everything, "ServiceAccount")
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"],
               "namespace": NAMESPACE}
    for kind, name, role_kind in (("RoleBinding", "jobs-emailer", "Role"),
                                  ("ClusterRoleBinding", "jobs-emailer-pod-reader",
                                   "ClusterRole")):
        binding = find(everything, kind, name)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == role_kind
        find(everything, role_kind, binding["roleRef"]["name"])


def _mount(spec: Json, path: str) -> Json:
    """The volume mount that holds ``path``."""
    found = [m for m in spec["volumeMounts"]
             if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert found, f"{path} is not mounted"
    return max(found, key=lambda m: len(m["mountPath"]))


def test_the_deployment_mounts_what_the_settings_name(tmp_path: Path) -> None:
    at_start, _ = settings(tmp_path)
    everything = objects()
    deployment = find(everything, "Deployment", "jobs-emailer")
    pod = deployment["spec"]["template"]["spec"]
    emailer = container(deployment, "tjf-emailer")
    assert deployment["spec"]["replicas"] == 2
    assert emailer["command"] == ["tjf-emailer"]
    assert emailer["args"] == ["--config", "/etc/tjf-emailer/config.toml"]
    assert pod["serviceAccountName"] == find(everything, "ServiceAccount")["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}

    config = _mount(emailer, "/etc/tjf-emailer/config.toml")
    assert config["readOnly"] is True
    assert volumes[config["name"]]["configMap"]["name"] == "jobs-emailer-config"
    spool = _mount(emailer, str(at_start.send.spool_dir) + "/x")
    assert not spool.get("readOnly")
    assert "emptyDir" in volumes[spool["name"]]
    homes = _mount(emailer, at_start.logs.home_template.format(tool="x") + "/x.out")
    assert homes["readOnly"] is True
    assert volumes[homes["name"]]["hostPath"]["path"] == "/data/project"
    # The root filesystem is read-only: every other place written to is a volume.
    assert "emptyDir" in volumes[_mount(emailer, "/tmp/x")["name"]]

    assert emailer["ports"] == [{"name": "health", "containerPort": at_start.cluster.health_port,
                                 "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert emailer[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"cpu", "memory"} <= set(emailer["resources"]["requests"])
    assert {"cpu", "memory"} <= set(emailer["resources"]["limits"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert emailer["securityContext"] == {"allowPrivilegeEscalation": False,
                                          "readOnlyRootFilesystem": True,
                                          "capabilities": {"drop": ["ALL"]}}
    assert pod["terminationGracePeriodSeconds"] > at_start.cluster.shutdown_grace


# --- on the real apiserver ---------------------------------------------------------------------


@attrs.frozen
class Applied:
    """deploy/emailer created in fresh namespaces, a tool's namespace with a job's pod, and a
    client holding a token of the emailer's service account."""

    namespace: str
    tool_namespace: str
    pod: str
    sent: list[Json]
    stored: list[Json]
    emailer: Kube


def _pod(tool: str) -> Json:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {
        "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
        "app.kubernetes.io/created-by": tool, "app.kubernetes.io/name": "web",
        "jobs.toolforge.org/emails": "onfailure"}},
        "spec": {"containers": [{"name": "job", "image": "bookworm", "command": ["./run"]}]}}


def _token_kubeconfig(cluster: Cluster, token: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "emailer",
        "clusters": [{"name": "test", "cluster": {
            "server": cluster.server, "certificate-authority": str(cluster.ca_file)}}],
        "users": [{"name": "emailer", "user": {"token": token}}],
        "contexts": [{"name": "emailer", "context": {"cluster": "test", "user": "emailer"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def applied(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Applied]:
    admin = kube_cluster.admin
    suffix = uuid.uuid4().hex[:6]
    namespaces = {NAMESPACE: f"{NAMESPACE}-{suffix}"}
    tool = f"emailer{suffix}"
    tool_namespace = f"tool-{tool}"
    sent: list[Json] = []
    emailer: Kube | None = None
    try:
        for obj in objects():
            made = instantiate(obj, suffix=suffix, namespaces=namespaces)
            sent.append(made)
            create(admin, made)
        stored = [admin.get(f"{collection(made)}/{made['metadata']['name']}") for made in sent]
        namespace = namespaces[NAMESPACE]
        admin.create("/api/v1/namespaces", {"metadata": {"name": tool_namespace}})
        # A pod may be made once the namespace's default service account has its token.
        poll(f"a token in {tool_namespace}", lambda: _has_token(admin, tool_namespace))
        admin.create(f"/api/v1/namespaces/{tool_namespace}/pods", _pod(tool))
        # What the emailer must not read: another ConfigMap and a Secret beside its own.
        admin.create(f"/api/v1/namespaces/{namespace}/configmaps",
                     {"metadata": {"name": "something-else"}, "data": {"a": "b"}})
        admin.create(f"/api/v1/namespaces/{namespace}/secrets",
                     {"metadata": {"name": "smtp-password"}, "stringData": {"password": "x"}})
        # A token of the emailer's own service account (TokenRequest, 1.20+): its requests
        # are authorized exactly as the emailer's pods' would be.
        token = admin.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/jobs-emailer/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 3600}})["status"]["token"]
        emailer = Kube(_token_kubeconfig(
            kube_cluster, token, tmp_path_factory.mktemp("emailer") / "kubeconfig"))
        yield Applied(namespace, tool_namespace, "web-1", sent, stored, emailer)
    finally:
        if emailer is not None:
            emailer.close()
        for obj in sent:
            if obj["kind"].startswith("Cluster"):
                delete_quietly(admin, f"{collection(obj)}/{obj['metadata']['name']}")
        for each in (*namespaces.values(), tool_namespace):
            delete_quietly(admin, f"/api/v1/namespaces/{each}")


def status_of(kube: Kube, method: str, path: str, body: Json | None = None) -> int:
    """The HTTP status of a request (200-299 as 200)."""
    try:
        kube.request(method, path, body)
    except ApiException as error:
        return int(error.status)
    return 200


def can(kube: Kube, **attributes: str) -> bool:
    """A SelfSubjectAccessReview: may the client's own identity do this?"""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": attributes}}
    answer = kube.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def query(**params: str) -> str:
    return "?" + urllib.parse.urlencode(params)


def test_every_field_is_stored_as_written(applied: Applied) -> None:
    for sent, stored in zip(applied.sent, applied.stored, strict=True):
        assert missing_fields(sent, stored) == [], f"{sent['kind']} {sent['metadata']['name']}"


def test_the_emailer_may_watch_job_pods_in_every_namespace(applied: Applied) -> None:
    emailer, tool_ns = applied.emailer, applied.tool_namespace
    # RBAC takes effect when the apiserver's informers see the bindings.
    poll("the emailer's ClusterRoleBinding to take effect",
         lambda: can(emailer, verb="list", resource="pods", namespace=tool_ns))
    everywhere: Mapping[str, Any] = emailer.get("/api/v1/pods" + query(labelSelector=JOB_PODS))
    assert (tool_ns, applied.pod) in {(p["metadata"]["namespace"], p["metadata"]["name"])
                                      for p in everywhere["items"]}
    listed = emailer.get(f"/api/v1/namespaces/{tool_ns}/pods" + query(labelSelector=JOB_PODS))
    assert [p["metadata"]["name"] for p in listed["items"]] == [applied.pod]
    for namespace in (tool_ns, ""):
        assert can(emailer, verb="watch", resource="pods", namespace=namespace)
    # Read-only, and pods only.
    assert status_of(emailer, "POST", f"/api/v1/namespaces/{tool_ns}/pods", _pod("x")) == 403
    assert status_of(emailer, "DELETE", f"/api/v1/namespaces/{tool_ns}/pods/web-1") == 403
    assert not can(emailer, verb="patch", resource="pods", namespace=tool_ns)
    assert not can(emailer, verb="get", resource="pods", subresource="log", namespace=tool_ns)
    assert not can(emailer, verb="list", group="batch", resource="jobs", namespace=tool_ns)


def test_the_emailer_may_read_and_watch_its_configmap_only(applied: Applied) -> None:
    emailer, namespace = applied.emailer, applied.namespace
    configmaps = f"/api/v1/namespaces/{namespace}/configmaps"
    poll("the emailer's RoleBinding to take effect",
         lambda: status_of(emailer, "GET", f"{configmaps}/jobs-emailer") == 200)
    assert set(emailer.get(f"{configmaps}/jobs-emailer")["data"]) == REFERENCE_KEYS
    # As the ConfigMap watch asks: by name, with a field selector.
    one = query(fieldSelector="metadata.name=jobs-emailer")
    assert [c["metadata"]["name"] for c in emailer.get(configmaps + one)["items"]] == [
        "jobs-emailer"]
    assert can(emailer, verb="watch", resource="configmaps", namespace=namespace,
               name="jobs-emailer")
    # Not another ConfigMap, not all of them, not one of a tool.
    for path in (f"{configmaps}/something-else", f"{configmaps}/jobs-emailer-config",
                 configmaps, configmaps + query(fieldSelector="metadata.name=something-else"),
                 f"/api/v1/namespaces/{applied.tool_namespace}/configmaps"):
        assert status_of(emailer, "GET", path) == 403, path
    assert status_of(emailer, "PUT", f"{configmaps}/jobs-emailer",
                     {"metadata": {"name": "jobs-emailer"}, "data": {}}) == 403


def test_the_emailer_may_create_and_renew_its_lease_only(applied: Applied) -> None:
    emailer, namespace = applied.emailer, applied.namespace
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "jobs-emailer"},
             "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}}
    poll("the emailer's Role to take effect",
         lambda: can(emailer, verb="create", group="coordination.k8s.io", resource="leases",
                     namespace=namespace))
    emailer.create(leases, lease)
    current = emailer.get(f"{leases}/jobs-emailer")
    current["spec"]["holderIdentity"] = "replica-b"
    renewed = emailer.request("PUT", f"{leases}/jobs-emailer", current)
    assert renewed["spec"]["holderIdentity"] == "replica-b"
    # Another Lease: it may be created (RBAC cannot limit a create by name), never read,
    # renewed or taken.
    other = {**lease, "metadata": {"name": "kube-scheduler"}}
    emailer.create(leases, other)
    assert status_of(emailer, "GET", f"{leases}/kube-scheduler") == 403
    assert status_of(emailer, "PUT", f"{leases}/kube-scheduler", other) == 403
    assert status_of(emailer, "DELETE", f"{leases}/jobs-emailer") == 403
    assert status_of(emailer, "GET", leases) == 403
    assert not can(emailer, verb="update", group="coordination.k8s.io", resource="leases",
                   namespace="kube-system", name="jobs-emailer")


def test_the_emailer_may_read_no_secret(applied: Applied) -> None:
    emailer, namespace = applied.emailer, applied.namespace
    poll("the emailer's Role to take effect",
         lambda: can(emailer, verb="get", resource="configmaps", namespace=namespace,
                     name="jobs-emailer"))
    for path in (f"/api/v1/namespaces/{namespace}/secrets/smtp-password",
                 f"/api/v1/namespaces/{namespace}/secrets", "/api/v1/secrets",
                 f"/api/v1/namespaces/{applied.tool_namespace}/secrets"):
        assert status_of(emailer, "GET", path) == 403, path
    for namespace_ in (namespace, "kube-system", ""):
        assert not can(emailer, verb="watch", resource="secrets", namespace=namespace_)


def test_the_config_file_is_the_one_the_deployment_reads(tmp_path: Path) -> None:
    # config.toml is TOML of settings keys only (a misspelt key fails settings_from_toml).
    text = find(objects(), "ConfigMap", "jobs-emailer-config")["data"]["config.toml"]
    assert set(tomllib.loads(text)) <= START_ONLY_KEYS | {"home_template", "log_lines"}
    settings(tmp_path)
