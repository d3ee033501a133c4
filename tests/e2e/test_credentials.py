"""Credentials: a tool's own kubeconfig (certificate mode) or impersonation, kept fresh.

The kubeconfig parser is tested as plain data; everything else against the real apiserver,
whose RBAC is what decides that a rotated certificate, an impersonated tool or another tool's
namespace is (not) allowed.
"""

from __future__ import annotations

import base64
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import Cluster, Kube, ToolAccount, poll, write_kubeconfig
from tests.e2e.test_kube_runtime import (
    IMAGES_FILE,
    grant_quota_read,
    identity,
    render,
    revoke_quota_read,
)
from tjf_core.errors import CertificateError, ConfigurationError, ForbiddenError
from tjf_core.kube import CredentialStore, KubernetesRuntime, KubeSettings
from tjf_core.kube.kubeconfig import Material, parse_kubeconfig

NewTool = Callable[[str], ToolAccount]
SOURCE = PurePosixPath("/data/project/foo/.kube/config")


def _config(cluster: dict[str, object], user: dict[str, object]) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    })


# --- the kubeconfig, as data -------------------------------------------------------------

def test_relative_files_are_relative_to_the_kubeconfig() -> None:
    entry = parse_kubeconfig(
        _config({"server": "https://k8s:6443/", "certificate-authority": "/etc/ca.crt"},
                {"client-certificate": "../.toolskube/client.crt",
                 "client-key": "../.toolskube/client.key"}),
        source=SOURCE, owner="tool 'foo'")
    assert entry.server == "https://k8s:6443"
    assert entry.ca == Material(path=PurePosixPath("/etc/ca.crt"))
    assert entry.client_cert.path == PurePosixPath(
        "/data/project/foo/.kube/../.toolskube/client.crt")
    assert entry.files() == (PurePosixPath("/etc/ca.crt"), entry.client_cert.path,
                             entry.client_key.path)


def test_embedded_data_is_decoded() -> None:
    entry = parse_kubeconfig(
        _config({"server": "https://k8s", "certificate-authority-data": "Q0E=",
                 "tls-server-name": "kubernetes"},
                {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}),
        source=SOURCE, owner="tool 'foo'")
    assert (entry.ca, entry.client_cert, entry.client_key) == (
        Material(data=b"CA"), Material(data=b"CERT"), Material(data=b"KEY"))
    assert entry.tls_server_name == "kubernetes"
    assert entry.files() == ()


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        (_config({"server": "https://k", "insecure-skip-tls-verify": True},
                 {"client-certificate": "c", "client-key": "k"}),
         "insecure-skip-tls-verify is set: refused, the API server's certificate is always "
         "verified"),
        (_config({"server": "http://k"}, {"client-certificate": "c", "client-key": "k"}),
         "server 'http://k' must be an https:// URL"),
        (_config({"server": "https://k"}, {"token": "secret"}),
         "user 'u' has no client-certificate and client-key, which certificate mode needs"),
        (_config({"server": "https://k"}, {"client-certificate-data": "!!", "client-key": "k"}),
         "client-certificate-data is not valid base64"),
        ("current-context: c\ncontexts: []\n", "it names context 'c', which it does not define"),
        ("clusters: []\n", "it has no current-context"),
        ("[1, 2]", "not a kubeconfig"),
        ("a: [unclosed", "not valid YAML"),
    ],
)
def test_unusable_kubeconfigs_are_refused_naming_tool_and_file(text: str, detail: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_kubeconfig(text, source=SOURCE, owner="tool 'foo'")
    assert str(refused.value).startswith(f"the kubeconfig of tool 'foo' ({SOURCE}): ")
    assert detail in str(refused.value)


# --- certificate mode against the cluster -----------------------------------------------

def _sign(admin: Kube, *, common_name: str, organization: str = "toolforge"
          ) -> tuple[bytes, bytes]:
    """A client certificate and key for ``common_name``, issued by the cluster's signer."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        key, hashes.SHA256())
    name = f"test-{uuid.uuid4().hex[:8]}"
    path = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
    csr = admin.create(path, {"metadata": {"name": name}, "spec": {
        "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
        "signerName": "kubernetes.io/kube-apiserver-client",
        "usages": ["digital signature", "key encipherment", "client auth"]}})
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "Test",
                                     "message": "test"}]}
    admin.request("PUT", f"{path}/{name}/approval", csr)
    issued: list[str] = []

    def signed() -> bool:
        issued.append(admin.get(f"{path}/{name}").get("status", {}).get("certificate", ""))
        return bool(issued[-1])

    poll(f"CSR {name} to be signed", signed)
    admin.delete(f"{path}/{name}")
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return base64.b64decode(issued[-1]), key_pem


@pytest.fixture
def store() -> Iterator[CredentialStore]:
    made = CredentialStore(KubeSettings())
    yield made
    made.close()


def _runtime(store: CredentialStore) -> KubernetesRuntime:
    return KubernetesRuntime(store.settings, credentials=store)


def test_a_tool_acts_with_its_own_certificate_until_it_is_rotated(
    kube_cluster: Cluster, new_tool: NewTool, store: CredentialStore
) -> None:
    account = new_tool("rotate")
    tool = identity(account)
    runtime = _runtime(store)
    runtime.list_objects(tool)
    runtime.list_objects(tool)
    assert store.builds == 1  # unchanged files: the same client

    # maintain-kubeusers renews: here, to a certificate RBAC does not know, to prove reload.
    cert, key = _sign(kube_cluster.admin, common_name=f"{account.name}-stranger")
    account.client_cert.write_bytes(cert)
    account.client_key.write_bytes(key)
    with pytest.raises(ForbiddenError, match=f'User "{account.name}-stranger" cannot list'):
        runtime.list_objects(tool)
    assert store.builds == 2

    cert, key = _sign(kube_cluster.admin, common_name=account.name)
    account.client_key.write_bytes(key)
    account.client_cert.write_bytes(cert)
    runtime.list_objects(tool)
    assert store.builds == 3


def test_embedded_and_relative_credentials_work(
    new_tool: NewTool, store: CredentialStore
) -> None:
    account = new_tool("embed")
    config = yaml.safe_load(account.kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    for field in ("certificate-authority", "client-certificate", "client-key"):
        section = cluster if field == "certificate-authority" else user
        section[f"{field}-data"] = base64.b64encode(Path(section.pop(field)).read_bytes()).decode()
    account.kubeconfig.write_text(yaml.safe_dump(config))
    assert _runtime(store).list_objects(identity(account)).jobs == ()

    relative = account.home / "relative"
    relative.mkdir()
    shutil.copy(account.client_cert, relative / "c.crt")
    shutil.copy(account.client_key, relative / "c.key")
    shutil.copy(account.ca_file, relative / "ca.crt")
    write_kubeconfig(relative / "config", server=cluster["server"], ca_file=Path("ca.crt"),
                     cert_file=Path("c.crt"), key_file=Path("c.key"), user="u")
    other = CredentialStore(KubeSettings(kubeconfig_template="{home}/relative/config"))
    assert _runtime(other).list_objects(identity(account)).pods == ()
    other.close()


def test_missing_or_broken_credentials_name_the_tool_and_file(
    kube_cluster: Cluster, new_tool: NewTool, store: CredentialStore
) -> None:
    account = new_tool("broken")
    tool = identity(account)
    owner = f"tool {account.name!r}"

    with pytest.raises(ConfigurationError) as missing:
        CredentialStore(KubeSettings(kubeconfig_template="{home}/nope")).for_tool(tool)
    assert str(missing.value) == (f"the kubeconfig of {owner} {account.home}/nope does not "
                                  "exist: is the tool's Kubernetes account set up?")

    with pytest.raises(ConfigurationError, match="cannot be read: Is a directory"):
        CredentialStore(KubeSettings(kubeconfig_template="{home}")).for_tool(tool)

    _, stranger_key = _sign(kube_cluster.admin, common_name="someone-else")
    original_key = account.client_key.read_bytes()
    account.client_key.write_bytes(stranger_key)
    with pytest.raises(ConfigurationError) as mismatch:
        store.for_tool(tool)
    assert str(mismatch.value).startswith(
        f"the client certificate ({account.client_cert}) and key ({account.client_key}) of "
        f"{owner} cannot be used: ")
    account.client_key.write_bytes(original_key)
    store.for_tool(tool)  # a failed load is not cached

    garbage = account.home / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match=f"^the CA bundle {garbage} cannot be used: "):
        CredentialStore(KubeSettings(ca_file=str(garbage))).for_tool(tool)
    account.client_cert.write_text("not a certificate either")
    with pytest.raises(ConfigurationError, match=(
            f"^the client certificate of {owner} \\({account.client_cert}\\) is not a PEM")):
        store.for_tool(tool)

    account.client_cert.unlink()
    with pytest.raises(ConfigurationError, match=(
            f"^the client certificate of {owner} {account.client_cert} does not exist")):
        store.for_tool(tool)


def test_insecure_kubeconfig_is_refused(new_tool: NewTool,
                                        store: CredentialStore) -> None:
    account = new_tool("insecure")
    config = yaml.safe_load(account.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    account.kubeconfig.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigurationError, match="insecure-skip-tls-verify is set: refused"):
        store.for_tool(identity(account))


def test_expired_and_future_certificates_say_when(new_tool: NewTool) -> None:
    account = new_tool("expiry")
    cert = x509.load_pem_x509_certificate(account.client_cert.read_bytes())
    until = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    store = CredentialStore(KubeSettings(), now=lambda: datetime(2099, 1, 1, tzinfo=UTC))
    with pytest.raises(CertificateError) as expired:
        store.for_tool(identity(account))
    assert str(expired.value).startswith(
        f"the Kubernetes client certificate of tool {account.name!r} ({account.client_cert}) "
        f"expired at {until}; it is renewed automatically")
    assert expired.value.http_status == 401
    early = CredentialStore(KubeSettings(), now=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(CertificateError, match="is not valid before"):
        early.for_tool(identity(account))
    store.close()
    early.close()


def test_a_server_certificate_from_another_ca_is_refused(
    new_tool: NewTool, tmp_path: Path
) -> None:
    account = new_tool("wrongca")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    now = datetime.now(UTC)
    other_ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now).not_valid_after(now.replace(year=now.year + 1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
    (tmp_path / "ca.crt").write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    runtime = KubernetesRuntime(KubeSettings(ca_file=str(tmp_path / "ca.crt"),
                                             images_file=str(IMAGES_FILE)))
    with pytest.raises(ConfigurationError,
                       match=r"cannot be verified .*certificate verify failed"):
        runtime.list_objects(identity(account))
    runtime.close()


def test_least_recently_used_clients_are_closed(new_tool: NewTool) -> None:
    first = new_tool("lru")
    second = new_tool("lru")
    store = CredentialStore(KubeSettings(max_cached_tools=1))
    one = store.for_tool(identity(first))
    store.for_tool(identity(second))
    assert store.builds == 2
    assert one.client.rest_client.pool_manager.pools is not None
    assert len(one.client.rest_client.pool_manager.pools) == 0  # closed
    store.for_tool(identity(first))
    assert store.builds == 3
    store.close()


def test_cold_and_warm_credential_lookups(new_tool: NewTool,
                                          store: CredentialStore) -> None:
    account = new_tool("timing")
    tool = identity(account)
    started = time.perf_counter()
    store.for_tool(tool)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(100):
        store.for_tool(tool)
    warm = (time.perf_counter() - started) / 100
    print(f"credential lookup: cold {cold * 1000:.2f} ms, warm {warm * 1000:.3f} ms")
    assert store.builds == 1
    assert warm < cold


# --- impersonation -----------------------------------------------------------------------

@pytest.fixture
def jobs_api(kube_cluster: Cluster, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig for user "jobs-api-…", whose only right is to impersonate."""
    admin = kube_cluster.admin
    user = f"jobs-api-{uuid.uuid4().hex[:6]}"
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    admin.create(f"{rbac}/clusterroles", {"metadata": {"name": user}, "rules": [
        {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]})
    admin.create(f"{rbac}/clusterrolebindings", {
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
    cert, key = _sign(admin, common_name=user, organization="jobs-api")
    (tmp_path / "api.crt").write_bytes(cert)
    (tmp_path / "api.key").write_bytes(key)
    kubeconfig = tmp_path / "jobs-api.kubeconfig"
    write_kubeconfig(kubeconfig, server=kube_cluster.server, ca_file=kube_cluster.ca_file,
                     cert_file=tmp_path / "api.crt", key_file=tmp_path / "api.key", user=user)
    yield kubeconfig
    admin.delete(f"{rbac}/clusterrolebindings/{user}")
    admin.delete(f"{rbac}/clusterroles/{user}")


def test_impersonation_acts_as_the_tool_and_no_more(
    kube_cluster: Cluster, new_tool: NewTool, jobs_api: Path
) -> None:
    alpha = new_tool("imp-a")
    beta = new_tool("imp-b")
    # No tool file is read: the template points nowhere.
    settings = KubeSettings(mode="impersonation", service_kubeconfig=str(jobs_api),
                            kubeconfig_template="/nonexistent/{tool}",
                            images_file=str(IMAGES_FILE))
    runtime = KubernetesRuntime(settings)
    created = runtime.create(identity(alpha), render(alpha, "hello")[0])
    assert created["metadata"]["name"] == "hello"
    assert [j["metadata"]["name"] for j in runtime.list_objects(identity(alpha)).jobs] == ["hello"]
    # As alpha, beta's namespace is out of reach.
    intruder = identity(alpha, namespace=beta.namespace)
    with pytest.raises(ForbiddenError, match=f'User "{alpha.name}" cannot list'):
        runtime.list_objects(intruder)
    with pytest.raises(ForbiddenError):
        runtime.delete_all(intruder)
    # The service itself may do nothing but impersonate.
    with Kube(jobs_api) as service, pytest.raises(ApiException) as refused:
        service.get(f"/apis/batch/v1/namespaces/{alpha.namespace}/jobs")
    assert refused.value.status == 403
    runtime.close()


def test_every_impersonated_group_is_sent(
    kube_cluster: Cluster, new_tool: NewTool, jobs_api: Path
) -> None:
    account = new_tool("groups")
    revoke_quota_read(kube_cluster.admin, account)
    grant_quota_read(kube_cluster.admin, account, group="quota-readers")
    both = KubernetesRuntime(KubeSettings(
        mode="impersonation", service_kubeconfig=str(jobs_api),
        impersonate_groups=("toolforge", "quota-readers"), images_file=str(IMAGES_FILE)))
    only = KubernetesRuntime(KubeSettings(
        mode="impersonation", service_kubeconfig=str(jobs_api), images_file=str(IMAGES_FILE)))

    def readable() -> bool:
        try:
            both.quota(identity(account))
        except ForbiddenError:
            return False
        return True

    poll("the group's RoleBinding to take effect", readable)
    assert both.quota(identity(account))[0] is not None
    with pytest.raises(ForbiddenError):
        only.quota(identity(account))
    both.close()
    only.close()


def test_unusable_service_credentials_are_a_configuration_error(tmp_path: Path) -> None:
    missing = CredentialStore(KubeSettings(mode="impersonation",
                                           service_kubeconfig=str(tmp_path / "nope")))
    with pytest.raises(ConfigurationError, match="^the service's own Kubernetes credentials "
                                                 rf"\(kubeconfig {tmp_path}/nope\) cannot be"):
        missing.service()
    in_cluster = CredentialStore(KubeSettings(mode="impersonation"))
    with pytest.raises(ConfigurationError, match=r"\(in-cluster service account\) cannot be"):
        in_cluster.service()
    insecure = tmp_path / "insecure"
    insecure.write_text(_config({"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True},
                                {"token": "x"}))
    with pytest.raises(ConfigurationError, match="insecure-skip-tls-verify: refused"):
        CredentialStore(KubeSettings(mode="impersonation",
                                     service_kubeconfig=str(insecure))).service()
