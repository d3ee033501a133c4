"""The manifests in ``deploy/``: schema-valid, consistent with the server, stored as written.

Three layers of checks, cheapest first:

* every object validates strictly (unknown fields refused) against Kubernetes 1.29 and 1.33;
* the files agree with each other and with ``tjf-api``: each ConfigMap's ``api.toml`` plus the
  Deployment's flags is a configuration the server accepts, every file it names is mounted,
  probes and Service reach the right ports, nginx and tjf-api meet at the same socket;
* on the real 1.20 apiserver, each setup (``PROFILES``) is created as admin in fresh
  namespaces and read back: every field sent must be stored (an older apiserver silently
  drops fields it does not know), the Deployment's pods must be created, and
  SubjectAccessReviews show what the service account may do in each credential mode.

And nginx (when installed) runs ``deploy/nginx/nginx.conf`` in front of a real ``tjf-api``.
:class:`ApiProcess` starts ``tjf-api`` as production does (a process, a TOML file, flags);
``tests/e2e/test_api_kube.py`` uses it too.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import Cluster, Kube, _die_with_parent, free_ports, poll
from tests.http.conftest import Client, Reply
from tests.http.pki import Issued, Pki
from tests.k8s_schema import assert_valid, schema_errors
from tjf_http.__main__ import main as tjf_api_main

Json = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
#: What an admin applies for each setup (``kubectl apply -f DIR`` for each, in this order).
PROFILES: dict[str, tuple[str, ...]] = {
    "direct-certificate": ("api", "api/direct", "api/certificate"),
    "nginx-impersonation": ("api", "nginx", "api/impersonation"),
}
AGGREGATE_LABEL = "toolforge.org/jobs-api-impersonate"
_RBAC = "/apis/rbac.authorization.k8s.io/v1"
_COLLECTIONS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Role": _RBAC + "/namespaces/{ns}/roles",
    "RoleBinding": _RBAC + "/namespaces/{ns}/rolebindings",
    "ClusterRole": _RBAC + "/clusterroles",
    "ClusterRoleBinding": _RBAC + "/clusterrolebindings",
}


# --- the files ---------------------------------------------------------------------------

def load(path: Path) -> list[Json]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def profile_objects(profile: str) -> list[Json]:
    """The objects of a setup, in the order ``kubectl apply -f DIR ...`` sends them."""
    return [doc for directory in PROFILES[profile]
            for path in sorted((DEPLOY / directory).glob("*.yaml")) for doc in load(path)]


def find(objects: Sequence[Json], kind: str, name: str | None = None) -> Json:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(deployment: Json, name: str) -> Json:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == name)


def api_toml(objects: Sequence[Json]) -> str:
    return str(find(objects, "ConfigMap", "jobs-api-config")["data"]["api.toml"])


def documented_tool_role() -> Json:
    """The per-tool ClusterRole that impersonation/rbac.yaml documents in its comment."""
    lines = [line[4:] for line in (DEPLOY / "api/impersonation/rbac.yaml").read_text()
             .splitlines() if line.startswith("#   ")]
    role: Json = yaml.safe_load("\n".join(lines))
    return role


def tool_role(tool: str, *, label: str = AGGREGATE_LABEL, prefix: str = "jobs-api") -> Json:
    """What the tool provisioner creates per tool in impersonation mode (the documented one)."""
    text = json.dumps(documented_tool_role()).replace("mytool", tool)
    role: Json = json.loads(text.replace(AGGREGATE_LABEL, label))
    role["metadata"]["name"] = f"{prefix}-impersonate-tool-{tool}"
    return role


def instantiate(obj: Json, *, suffix: str, namespaces: Mapping[str, str]) -> Json:
    """``obj`` for a test run: its namespaces renamed, cluster-wide names and the aggregation
    label made unique, so runs (and other tests) on one cluster never meet."""
    made = copy.deepcopy(obj)
    meta = made["metadata"]
    if made["kind"] == "Namespace":
        meta["name"] = namespaces[meta["name"]]
    if "namespace" in meta:
        meta["namespace"] = namespaces[meta["namespace"]]
    if made["kind"].startswith("Cluster"):
        meta["name"] += f"-{suffix}"
    if made["kind"] == "ClusterRoleBinding":
        made["roleRef"]["name"] += f"-{suffix}"
    for subject in made.get("subjects", []):
        if "namespace" in subject:
            subject["namespace"] = namespaces[subject["namespace"]]
    label = f"{AGGREGATE_LABEL}-{suffix}"
    labels = meta.get("labels", {})
    if AGGREGATE_LABEL in labels:
        labels[label] = labels.pop(AGGREGATE_LABEL)
    for selector in made.get("aggregationRule", {}).get("clusterRoleSelectors", []):
        selector["matchLabels"] = {label: selector["matchLabels"].pop(AGGREGATE_LABEL)}
    return made


def collection(obj: Json) -> str:
    return _COLLECTIONS[obj["kind"]].format(ns=obj["metadata"].get("namespace"))


def create(admin: Kube, obj: Json) -> Json:
    return admin.create(collection(obj), obj)


def delete_quietly(admin: Kube, path: str) -> None:
    try:
        admin.delete(path)
    except ApiException as error:
        if error.status != 404:
            raise


def missing_fields(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Where ``stored`` lost or changed what was ``sent`` (defaults it added do not count)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path or '<root>'}: stored as {stored!r}"]
        return [problem for key, value in sent.items()
                for problem in (missing_fields(value, stored[key], f"{path}.{key}")
                                if key in stored else [f"{path}.{key}: dropped"])]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: stored as {stored!r}"]
        return [problem for index, (one, other) in enumerate(zip(sent, stored, strict=True))
                for problem in missing_fields(one, other, f"{path}[{index}]")]
    return [] if sent == stored else [f"{path}: sent {sent!r}, stored {stored!r}"]


# --- tjf-api as a process ----------------------------------------------------------------


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/v1/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@attrs.define
class ApiProcess:
    """``tjf-api`` (``python -m tjf_http``) in a process of its own, its output in ``log``."""

    popen: subprocess.Popen[bytes]
    log: Path
    ops_port: int

    @classmethod
    def start(cls, args: Sequence[str], *, log: Path, timeout: float = 30.0) -> ApiProcess:
        """Start it with ``args`` plus a loopback ops listener; return once it is healthy
        (the ops listener is bound last, so every listener is up by then)."""
        (ops_port,) = free_ports(1)
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tjf_http", *args, "--ops-host", "127.0.0.1",
                 "--ops-port", str(ops_port)],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        process = cls(popen, log, ops_port)

        def ready() -> bool:
            if popen.poll() is not None:
                raise RuntimeError(f"tjf-api exited with {popen.returncode}:\n{process.tail()}")
            return _healthy(ops_port)

        try:
            poll("tjf-api to answer /v1/healthz", ready, timeout=timeout)
        except BaseException:
            process.stop()
            raise
        return process

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM, as Kubernetes stops a pod; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def tls_client(port: int, *, ca: Path, cert: Path | None = None, key: Path | None = None
               ) -> Client:
    """A kept-alive HTTPS client of 127.0.0.1:``port``, with a client certificate if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    return Client(lambda: http.client.HTTPSConnection("127.0.0.1", port, context=context,
                                                      timeout=30), keep_alive=True)


# --- schema and consistency (no cluster) -------------------------------------------------

ALL_FILES = sorted(DEPLOY.rglob("*.yaml"))


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_manifest_is_strictly_valid(path: Path) -> None:
    objects = load(path)
    assert objects
    for obj in objects:
        assert_valid(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == \
            "toolforge-jobs-framework"


def test_the_schema_check_is_strict() -> None:
    deployment = copy.deepcopy(find(profile_objects("direct-certificate"), "Deployment"))
    container(deployment, "tjf-api")["readinesProbe"] = {}  # misspelt
    assert any("readinesProbe" in error for error in schema_errors(deployment, version="1.29"))


def test_every_file_belongs_to_a_setup_and_the_documented_tool_role_is_valid() -> None:
    applied = {path for directories in PROFILES.values() for directory in directories
               for path in (DEPLOY / directory).glob("*.yaml")}
    emailer = set((DEPLOY / "emailer").glob("*.yaml"))  # tests/e2e/test_emailer_deploy.py
    assert set(ALL_FILES) - emailer == applied
    role = documented_tool_role()
    assert_valid(role)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["users"],
                              "verbs": ["impersonate"], "resourceNames": ["mytool"]}]
    assert role["metadata"]["labels"] == {AGGREGATE_LABEL: "true"}


def test_the_nginx_configmap_holds_nginx_conf_verbatim() -> None:
    configmap = find(load(DEPLOY / "nginx/configmap.yaml"), "ConfigMap", "jobs-api-nginx")
    assert configmap["data"]["nginx.conf"] == (DEPLOY / "nginx/nginx.conf").read_text()


def _mounted(container_spec: Json, path: str) -> bool:
    return any(path.startswith(mount["mountPath"].rstrip("/") + "/")
               for mount in container_spec.get("volumeMounts", []))


def _check_config(args: Sequence[str], toml: str, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> Json:
    """The effective configuration ``tjf-api --check-config`` reports for the Deployment's
    args, its config file replaced by ``toml``."""
    config = tmp_path / "api.toml"
    config.write_text(toml)
    argv = [str(config) if arg == "/etc/tjf/config/api.toml" else arg for arg in args]
    capsys.readouterr()
    status = tjf_api_main([*argv, "--check-config"])
    out, err = capsys.readouterr()
    assert status == 0, err
    checked: Json = json.loads(out)
    return checked


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_server_config_mounts_ports_and_service_agree(
    profile: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in os.environ if name.startswith("TJF_")]:
        monkeypatch.delenv(name)
    objects = profile_objects(profile)
    deployment = find(objects, "Deployment", "jobs-api")
    pod = deployment["spec"]["template"]["spec"]
    api = container(deployment, "tjf-api")
    assert api["command"] == ["tjf-api"]
    toml = api_toml(objects)
    pki = Pki.create(tmp_path)
    args = list(api["args"])
    if "--no-tls" not in args:  # --check-config loads the TLS files: give it real ones
        args += ["--cert", str(pki.server.cert), "--key", str(pki.server.key),
                 "--client-ca", str(pki.ca)]
    checked = _check_config(args, toml, tmp_path, capsys)
    assert checked["runtime"] == "kubernetes"
    assert checked["kubernetes"]["mode"] == profile.split("-")[1]

    # Every file the server reads is mounted; the homes are mounted read-only.
    written = tomllib.loads(toml)
    paths = [written["tls"][key] for key in ("cert_file", "key_file", "client_ca_file")]
    if checked["trusted"]["unix_socket"]:
        paths = [checked["trusted"]["unix_socket"]]
        assert checked["tls"]["enabled"] is False
        assert checked["trusted"]["socket_mode"] == "660"
    for path in [*paths, "/etc/tjf/config/api.toml",
                 checked["identity"]["home_template"].format(tool="x") + "/x.out"]:
        assert _mounted(api, path), f"{path} is not mounted in the tjf-api container"
    homes = next(m for m in api["volumeMounts"] if m["name"] == "homes")
    assert homes["readOnly"] is True
    assert all(m.get("readOnly") for m in api["volumeMounts"]
               if m["name"] in ("config", "tls", "client-ca", "homes"))

    # Probes reach the ops listener; the Service reaches the TLS port of the pod.
    ports = {p["name"]: p["containerPort"] for c in pod["containers"] for p in c["ports"]}
    assert ports["ops"] == checked["ops"]["port"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"] == {"path": "/v1/healthz", "port": "ops"}
    service = find(objects, "Service", "jobs-api")
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    assert service["spec"]["ports"][0]["nodePort"] == 30001
    if checked["tls"]["enabled"]:
        assert ports["https"] == checked["tls"]["port"]
    assert service["spec"]["selector"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert pod["serviceAccountName"] == find(objects, "ServiceAccount")["metadata"]["name"]

    # Non-root, no capabilities, read-only root filesystem, RuntimeDefault seccomp.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for each in pod["containers"]:
        assert each["securityContext"] == {**each["securityContext"],
                                           "allowPrivilegeEscalation": False,
                                           "readOnlyRootFilesystem": True,
                                           "capabilities": {"drop": ["ALL"]}}
        assert {"requests", "limits"} <= set(each["resources"])
    # The server's grace period fits in the pod's.
    assert pod["terminationGracePeriodSeconds"] > checked["server"]["shutdown_grace_seconds"]


def test_nginx_and_tjf_api_meet_at_the_socket() -> None:
    objects = profile_objects("nginx-impersonation")
    deployment = find(objects, "Deployment")
    nginx, api = container(deployment, "nginx"), container(deployment, "tjf-api")
    conf = (DEPLOY / "nginx/nginx.conf").read_text()
    socket_path = api["args"][api["args"].index("--trusted-socket") + 1]
    assert f"server unix:{socket_path};" in conf
    for each in (nginx, api):
        assert _mounted(each, socket_path)
    for path in re.findall(r"^\s*ssl_\w+ (/\S+);", conf, flags=re.MULTILINE):
        assert _mounted(nginx, path), f"nginx's {path} is not mounted"
    assert _mounted(nginx, "/etc/tjf/nginx/nginx.conf")
    assert nginx["command"] == ["nginx", "-c", "/etc/tjf/nginx/nginx.conf"]
    listen = re.search(r"listen (\d+) ssl;", conf)
    assert listen is not None
    assert nginx["ports"] == [{"name": "https", "containerPort": int(listen[1]),
                               "protocol": "TCP"}]
    # Both share the pod's group, which the 660 socket is for; only nginx runs another user.
    assert "runAsGroup" not in nginx["securityContext"]
    assert "runAsGroup" not in api.get("securityContext", {})
    assert "ssl_verify_client on;" in conf
    assert "proxy_set_header ssl-client-subject-dn $ssl_client_s_dn;" in conf

    # The tjf-api container is the direct Deployment's, but for the listener.
    direct = container(find(profile_objects("direct-certificate"), "Deployment"), "tjf-api")
    for key in ("image", "command", "env", "resources", "readinessProbe", "livenessProbe",
                "securityContext"):
        assert api[key] == direct[key], key


def test_impersonated_groups_stay_within_the_rbac() -> None:
    objects = profile_objects("nginx-impersonation")
    groups = tomllib.loads(api_toml(objects))["kubernetes"]["impersonate_groups"]
    role = find(objects, "ClusterRole", "jobs-api-impersonate-group")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["groups"],
                              "verbs": ["impersonate"], "resourceNames": groups}]
    aggregated = find(objects, "ClusterRole", "jobs-api-impersonate")
    assert "rules" not in aggregated
    assert aggregated["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {AGGREGATE_LABEL: "true"}}]
    # Certificate mode binds no cluster-wide role at all.
    assert not [o for o in profile_objects("direct-certificate")
                if o["kind"].startswith("Cluster")]


# --- on the real apiserver ---------------------------------------------------------------

@attrs.frozen
class Applied:
    """One setup created in fresh namespaces: what was sent and what the cluster stored."""

    suffix: str
    namespaces: Mapping[str, str]
    sent: list[Json]
    stored: list[Json]

    @property
    def namespace(self) -> str:
        return self.namespaces["jobs-api"]

    @property
    def account(self) -> tuple[str, list[str]]:
        """The service account as a user and its groups, for SubjectAccessReviews."""
        return (f"system:serviceaccount:{self.namespace}:jobs-api",
                ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                 "system:authenticated"])


def _apply(admin: Kube, profile: str) -> Applied:
    suffix = uuid.uuid4().hex[:6]
    namespaces = {"jobs-api": f"jobs-api-{suffix}", "image-config": f"image-config-{suffix}"}
    # The image-config namespace is another component's; made here as that one would.
    admin.create("/api/v1/namespaces", {"metadata": {"name": namespaces["image-config"]}})
    applied = Applied(suffix, namespaces, [], [])
    try:
        for obj in profile_objects(profile):
            made = instantiate(obj, suffix=suffix, namespaces=namespaces)
            if made["kind"] == "Service":
                # A nodePort is unique in the cluster: here the cluster chooses one.
                for port in made["spec"]["ports"]:
                    del port["nodePort"]
            applied.sent.append(made)
            create(admin, made)
        applied.stored.extend(admin.get(f"{collection(made)}/{made['metadata']['name']}")
                              for made in applied.sent)
    except BaseException:
        _remove(admin, applied)
        raise
    return applied


def _remove(admin: Kube, applied: Applied) -> None:
    for obj in applied.sent:
        if obj["kind"].startswith("Cluster"):
            delete_quietly(admin, f"{collection(obj)}/{obj['metadata']['name']}")
    for namespace in applied.namespaces.values():
        delete_quietly(admin, f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def applied(kube_cluster: Cluster) -> Iterator[dict[str, Applied]]:
    made: dict[str, Applied] = {}
    try:
        for profile in PROFILES:
            made[profile] = _apply(kube_cluster.admin, profile)
        yield made
    finally:
        for each in made.values():
            _remove(kube_cluster.admin, each)


def allowed(admin: Kube, applied: Applied, **attributes: str) -> bool:
    user, groups = applied.account
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "groups": groups, "resourceAttributes": attributes}}
    answer = admin.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def test_missing_fields_finds_what_was_dropped_or_changed() -> None:
    sent = {"a": {"b": 1, "c": [1, {"d": "x"}]}, "e": "f"}
    stored = {"a": {"c": [1, {"d": "y", "z": 0}]}, "e": "f", "added": True}
    assert missing_fields(sent, stored) == [".a.b: dropped", ".a.c[1].d: sent 'x', stored 'y'"]
    assert missing_fields(sent, {**sent, "added": 1}) == []


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_field_is_stored_as_written(applied: dict[str, Applied], profile: str) -> None:
    done = applied[profile]
    for sent, stored in zip(done.sent, done.stored, strict=True):
        where = f"{sent['kind']} {sent['metadata']['name']}"
        assert missing_fields(sent, stored) == [], where


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_deployments_pods_are_made(kube_cluster: Cluster, applied: dict[str, Applied],
                                       profile: str) -> None:
    admin, done = kube_cluster.admin, applied[profile]
    pods: list[Json] = []

    def made() -> bool:
        pods[:] = admin.get(f"/api/v1/namespaces/{done.namespace}/pods?labelSelector="
                            "app.kubernetes.io/name%3Djobs-api")["items"]
        return len(pods) == 2

    poll("the Deployment's two pods", made, timeout=60)
    deployment = find(done.sent, "Deployment")
    names = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    for pod in pods:
        assert [c["name"] for c in pod["spec"]["containers"]] == names
        assert pod["spec"]["serviceAccountName"] == "jobs-api"
    # The client CA the pods mount is published by the cluster itself (1.20 does).
    poll("kube-root-ca.crt", lambda: "ca.crt" in admin.get(
        f"/api/v1/namespaces/{done.namespace}/configmaps/kube-root-ca.crt").get("data", {}))


def test_certificate_mode_may_read_the_image_catalog_and_nothing_more(
    kube_cluster: Cluster, applied: dict[str, Applied]
) -> None:
    admin, done = kube_cluster.admin, applied["direct-certificate"]
    images = done.namespaces["image-config"]
    poll("the image catalog Role to take effect", lambda: allowed(
        admin, done, verb="get", resource="configmaps", namespace=images, name="image-config"))
    assert not allowed(admin, done, verb="get", resource="configmaps", namespace=images,
                       name="something-else")
    assert not allowed(admin, done, verb="list", resource="configmaps", namespace=images)
    assert not allowed(admin, done, verb="impersonate", resource="users", name="mytool")
    assert not allowed(admin, done, verb="impersonate", resource="groups", name="toolforge")
    assert not allowed(admin, done, verb="list", group="batch", resource="jobs",
                       namespace="default")


def test_impersonation_mode_may_become_provisioned_tools_only(
    kube_cluster: Cluster, applied: dict[str, Applied]
) -> None:
    admin, done = kube_cluster.admin, applied["nginx-impersonation"]
    tool = f"tool{done.suffix}"
    role = tool_role(tool, label=f"{AGGREGATE_LABEL}-{done.suffix}",
                     prefix=f"jobs-api-{done.suffix}")
    assert_valid(role)
    create(admin, role)
    try:
        poll(f"the aggregated role to allow impersonating {tool}", lambda: allowed(
            admin, done, verb="impersonate", resource="users", name=tool))
        assert allowed(admin, done, verb="impersonate", resource="groups", name="toolforge")
        assert allowed(admin, done, verb="get", resource="configmaps",
                       namespace=done.namespaces["image-config"], name="image-config")
        # Not another user: neither a tool without its role nor a system component.
        for user in ("unprovisioned", "system:kube-controller-manager", "admin"):
            assert not allowed(admin, done, verb="impersonate", resource="users", name=user)
        assert not allowed(admin, done, verb="impersonate", resource="groups",
                           name="system:masters")
        assert not allowed(admin, done, verb="impersonate", resource="serviceaccounts",
                           namespace="kube-system", name="default")
        assert not allowed(admin, done, verb="impersonate", group="authentication.k8s.io",
                           resource="userextras", subresource="scopes")
        assert not allowed(admin, done, verb="list", group="batch", resource="jobs",
                           namespace="default")
        assert not allowed(admin, done, verb="get", resource="secrets", namespace="kube-system")
    finally:
        delete_quietly(admin, f"{collection(role)}/{role['metadata']['name']}")


# --- nginx in front of tjf-api -----------------------------------------------------------

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(path)),
    None)


def _nginx_conf(*, port: int, pki: Pki, socket_path: str, scratch: Path) -> str:
    """deploy/nginx/nginx.conf with this machine's paths; every replaced text must be there."""
    text = (DEPLOY / "nginx/nginx.conf").read_text()
    for old, new in (("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
                     ("/etc/tjf/tls/tls.crt", str(pki.server.cert)),
                     ("/etc/tjf/tls/tls.key", str(pki.server.key)),
                     ("/etc/tjf/client-ca/ca.crt", str(pki.ca)),
                     ("unix:/run/tjf/api.sock", f"unix:{socket_path}"),
                     ("/tmp/nginx", f"{scratch}/nginx")):
        assert old in text, f"nginx.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


@attrs.define
class NginxFront:
    port: int
    pki: Pki
    clients: list[Client] = attrs.field(factory=list)

    def client(self, issued: Issued | None) -> Client:
        made = tls_client(self.port, ca=self.pki.ca, cert=issued.cert if issued else None,
                          key=issued.key if issued else None)
        self.clients.append(made)
        return made


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxFront]:
    """tjf-api (memory runtime) on a trusted socket, nginx with the deploy config in front."""
    if NGINX is None:
        message = "nginx is not installed (Debian: apt-get install nginx-light; scripts/test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)  # CI must run what the seed's setup relies on
        pytest.skip(message)
    tmp_path = tmp_path_factory.mktemp("nginx")
    pki = Pki.create(tmp_path)
    socket_dir = tempfile.mkdtemp(prefix="tjf-", dir="/tmp")  # unix socket paths are short
    socket_path = f"{socket_dir}/api.sock"
    os.chmod(socket_dir, 0o755)
    homes = tmp_path / "homes"
    (homes / "alpha").mkdir(parents=True)
    # nginx's workers run as "nobody" when the test runs as root: the pod's shared group
    # (660) cannot be had here, so the test socket is open to everyone on this machine.
    api = ApiProcess.start(
        ["--runtime", "memory", "--no-tls", "--trusted-socket", socket_path,
         "--set", "trusted.socket_mode=666", "--set", "trusted.tool_header=x-toolforge-tool",
         "--set", f"identity.home_template={homes}/{{tool}}"], log=tmp_path / "api.log")
    (port,) = free_ports(1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(_nginx_conf(port=port, pki=pki, socket_path=socket_path, scratch=tmp_path))
    nginx_args = [NGINX, "-e", "stderr", "-p", str(tmp_path), "-c", str(conf)]
    checked = subprocess.run([*nginx_args, "-t"], capture_output=True, text=True, check=False)
    nginx: subprocess.Popen[bytes] | None = None
    try:
        assert checked.returncode == 0, checked.stderr
        with (tmp_path / "nginx.log").open("wb") as sink:
            nginx = subprocess.Popen(nginx_args, stdin=subprocess.DEVNULL, stdout=sink,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

        def listening() -> bool:
            assert nginx is not None
            if nginx.poll() is not None:
                raise RuntimeError("nginx exited:\n" + (tmp_path / "nginx.log").read_text())
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        poll("nginx to listen", listening)
        front = NginxFront(port, pki)
        yield front
        for client in front.clients:
            client.close()
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)  # graceful
            try:
                nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()
        assert api.stop() == 0, api.tail()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_nginx_passes_the_verified_subject_and_nothing_a_client_claims(
    behind_nginx: NginxFront
) -> None:
    pki = behind_nginx.pki
    alpha = behind_nginx.client(pki.alpha)
    jobs = "/v1/tool/alpha/jobs"
    created = alpha.post(jobs, json_body={"name": "hello", "cmd": "./hi", "imagename": "bookworm"})
    assert created.status == 201, created.body
    assert [job["name"] for job in alpha.get(jobs).json()["jobs"]] == ["hello"]
    assert alpha.get("/api/v1/list/").json()[0]["name"] == "hello"

    # Whatever the client says about who it is, the certificate decides.
    for header in ("ssl-client-subject-dn", "SSL-Client-Subject-DN", "ssl_client_subject_dn"):
        claimed = alpha.get("/v1/tool/beta/jobs", headers={header: "CN=beta,O=toolforge"})
        assert claimed.status == 403, header
        assert claimed.json()["messages"]["error"] == [
            "tool 'beta' in the path is not the authenticated tool 'alpha': use "
            "/v1/tool/alpha/..."]
    tool_header = alpha.get("/v1/tool/beta/jobs", headers={"x-toolforge-tool": "beta"})
    assert tool_header.status == 403
    assert alpha.get("/api/v1/list/", headers={"ssl-client-subject-dn": "CN=beta,O=toolforge"}
                     ).json()[0]["name"] == "hello"
    beta = behind_nginx.client(pki.beta)
    assert beta.get("/v1/tool/beta/jobs").json()["jobs"] == []

    # nginx's own request id replaces one the client sends.
    answer = alpha.get(jobs, headers={"X-Request-Id": "chosen-by-the-client"})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-Id"])


@pytest.mark.parametrize("who", ["nobody", "foreign", "expired"])
def test_nginx_refuses_clients_without_a_valid_certificate(
    behind_nginx: NginxFront, who: str
) -> None:
    pki = behind_nginx.pki
    issued = {"nobody": None, "foreign": pki.foreign, "expired": pki.expired}[who]
    refused: Reply = behind_nginx.client(issued).get("/v1/tool/alpha/jobs",
                                                headers={"ssl-client-subject-dn":
                                                         "CN=alpha,O=toolforge"})
    assert refused.status == 400
    assert b"SSL certificate" in refused.body  # nginx's page, not the API's answer
