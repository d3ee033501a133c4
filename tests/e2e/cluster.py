"""A real Kubernetes control plane for end-to-end tests, started and stopped from Python.

tjf talks to a Kubernetes API it does not own, so its end-to-end tests need a real one: real
RBAC, real admission (ResourceQuota, LimitRanger), real Job and CronJob controllers. This
module runs etcd, kube-apiserver and kube-controller-manager (built by ``scripts/kube-assets``)
on loopback ports with a throwaway PKI, provisions Toolforge-like tool accounts the way
maintain-kubeusers does, and plays the missing kubelet by patching ``pods/status``.
Everything talks raw JSON through the official client's transport: the typed models are slow
and lag behind what a 1.20 server serves (CronJob is ``batch/v1beta1`` there).
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import attrs
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client.exceptions import ApiException
from kubernetes.config import new_client_from_config

__all__ = [
    "Cluster",
    "ClusterStartError",
    "Kube",
    "Kubelet",
    "LocalCluster",
    "ToolAccount",
    "poll",
    "write_kubeconfig",
]

Json = dict[str, Any]
START_TIMEOUT = 90.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class ClusterStartError(RuntimeError):
    """The control plane did not come up; the message carries the tail of its logs."""


def poll(what: str, check: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Call ``check`` until it returns true, or fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class Kube:
    """Raw-JSON requests to the API with the credentials of one kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        # The config loader is untyped; the ApiClient it returns is what the typed APIs take.
        self._api = new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), persist_config=False
        )

    def request(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        *,
        content_type: str = "application/json",
    ) -> Json:
        """Send one request; raise the client's ``ApiException`` on a non-2xx answer."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self._api.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*serialized)
        response.read()
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(
                http_resp=response, body=response.data.decode(), data=None
            )
        answer: Json = json.loads(response.data)
        return answer

    def get(self, path: str) -> Json:
        return self.request("GET", path)

    def create(self, path: str, body: Json) -> Json:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Json) -> Json:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> Json:
        return self.request("DELETE", path)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    user: str,
    namespace: str = "default",
) -> None:
    """Write a one-context kubeconfig that names its credentials as files."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tjf-test",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": str(cert_file), "client-key": str(key_file)},
            }
        ],
        "contexts": [
            {
                "name": "tjf-test",
                "context": {"cluster": "tjf-test", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "tjf-test",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


class Cluster:
    """A running cluster reached through an admin kubeconfig (started here or elsewhere)."""

    def __init__(self, admin_kubeconfig: Path) -> None:
        self.admin_kubeconfig = admin_kubeconfig
        self._scratch = Path(tempfile.mkdtemp(prefix="tjf-kube-client-"))
        self.server, ca_pem = _cluster_entry(admin_kubeconfig)
        # Tool kubeconfigs name the CA as a file, whatever form the admin one used.
        self.ca_file = self._scratch / "ca.crt"
        self.ca_file.write_bytes(ca_pem)
        self.admin = Kube(admin_kubeconfig)
        self.kubelet = Kubelet(self.admin)

    def provision_tool(self, name: str, home: Path) -> ToolAccount:
        """Make tool ``name`` as maintain-kubeusers does; its kubeconfig goes under ``home``."""
        return _provision_tool(
            self.admin, name=name, home=home, server=self.server, ca_file=self.ca_file
        )

    def remove_tool(self, name: str) -> None:
        """Delete what ``provision_tool`` made (the namespace takes its contents along)."""
        for path in (
            f"/api/v1/namespaces/tool-{name}",
            f"/apis/certificates.k8s.io/v1/certificatesigningrequests/tool-{name}",
        ):
            try:
                self.admin.delete(path)
            except ApiException as error:
                if error.status != 404:
                    raise

    def close(self) -> None:
        self.admin.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


def _cluster_entry(kubeconfig: Path) -> tuple[str, bytes]:
    """The server URL and CA certificate (PEM) of a kubeconfig's current context."""
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    if "certificate-authority-data" in cluster:
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca_pem = (kubeconfig.parent / cluster["certificate-authority"]).read_bytes()
    return str(cluster["server"]), ca_pem


@attrs.frozen
class _Issued:
    cert: Path
    key: Path


class _Pki:
    """A throwaway CA and the certificates and keys the control plane needs, as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._now = datetime.now(UTC)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tjf-test-ca")])
        self._ca_cert = (
            self._builder(name, name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = _Issued(directory / "ca.crt", directory / "ca.key")
        self._write(self.ca, self._ca_cert, self._ca_key)

    def issue(
        self, stem: str, *, common_name: str, organizations: tuple[str, ...] = (), server: bool
    ) -> _Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attributes += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(x509.Name(attributes), self._ca_cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default.svc")
            ]
            names += [x509.IPAddress(IPv4Address(a)) for a in ("127.0.0.1", "10.0.0.1")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        issued = _Issued(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        self._write(issued, builder.sign(self._ca_key, hashes.SHA256()), key)
        return issued

    def service_account_keys(self) -> _Issued:
        """The token signing key pair; ``cert`` holds the public key, not a certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        pair = _Issued(self.directory / "sa.pub", self.directory / "sa.key")
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        pair.key.write_bytes(_private_pem(key))
        return pair

    def _builder(
        self, subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            # A little slack in the past tolerates clock steps during a long session.
            .not_valid_before(self._now - timedelta(hours=1))
            .not_valid_after(self._now + timedelta(days=7))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    @staticmethod
    def _write(issued: _Issued, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_private_pem(key))
        issued.key.chmod(0o600)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: all probes stay bound until every port is chosen."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@attrs.define
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text)


class LocalCluster:
    """etcd, kube-apiserver and kube-controller-manager from ``assets``, on loopback ports."""

    def __init__(self, assets: Path) -> None:
        self.assets = assets
        self.start_seconds = 0.0
        self._processes: list[_Process] = []
        self._cluster: Cluster | None = None
        self._dirs: list[Path] = []

    def start(self) -> Cluster:
        """Start everything and wait until the API serves and controllers work."""
        started = time.monotonic()
        try:
            cluster = self._start()
        except BaseException as error:
            # Newest first: the last process started is the likeliest culprit.
            logs = "\n".join(p.tail() for p in reversed(self._processes))
            self.stop()
            if isinstance(error, ClusterStartError | TimeoutError):
                raise ClusterStartError(f"{error}\n{logs}") from error
            raise
        self.start_seconds = time.monotonic() - started
        return cluster

    def _start(self) -> Cluster:
        work = self._mkdtemp(None)
        # etcd fsyncs every write; tmpfs keeps that cheap on a slow CI disk.
        shm = Path("/dev/shm")
        etcd_data = self._mkdtemp(shm if os.access(shm, os.W_OK) else None)
        pki = _Pki(work)
        serving = pki.issue("apiserver", common_name="kube-apiserver", server=True)
        admin = pki.issue(
            "admin", common_name="tjf-admin", organizations=("system:masters",), server=False
        )
        sa = pki.service_account_keys()
        etcd_port, peer_port, api_port, kcm_port = free_ports(4)
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"

        self._spawn(
            work,
            "etcd",
            f"--data-dir={etcd_data}",
            "--logger=zap",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
        )
        self._wait("etcd /health", lambda: _http_ok(etcd_port, "/health", None))

        self._spawn(
            work,
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--insecure-port=0",
            f"--cert-dir={work}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=LimitRanger,ResourceQuota",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--feature-gates=TTLAfterFinished=true",
            "--profiling=false",
        )
        client_tls = ssl.create_default_context(cafile=str(pki.ca.cert))
        client_tls.load_cert_chain(str(admin.cert), str(admin.key))
        self._wait("kube-apiserver /readyz", lambda: _http_ok(api_port, "/readyz", client_tls))

        kubeconfig = work / "admin.kubeconfig"
        write_kubeconfig(
            kubeconfig,
            server=f"https://127.0.0.1:{api_port}",
            ca_file=pki.ca.cert,
            cert_file=admin.cert,
            key_file=admin.key,
            user="tjf-admin",
        )
        self._spawn(
            work,
            "kube-controller-manager",
            f"--kubeconfig={kubeconfig}",
            "--controllers=*",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--port=0",
            f"--secure-port={kcm_port}",
            f"--cert-dir={work}",
            f"--service-account-private-key-file={sa.key}",
            f"--root-ca-file={pki.ca.cert}",
            # Tool certificates go through the CSR API, as maintain-kubeusers does.
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--feature-gates=TTLAfterFinished=true",
        )
        self._cluster = Cluster(kubeconfig)
        # The controllers work once the token controller has given `default` its secret.
        admin_kube = self._cluster.admin
        self._wait(
            "the controller manager to create the default ServiceAccount's token",
            lambda: _has_token(admin_kube, "default"),
        )
        return self._cluster

    def stop(self) -> None:
        """Stop the processes (newest first) and remove every temporary directory."""
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        for process in reversed(self._processes):
            if process.popen.poll() is None:
                process.popen.terminate()
                try:
                    process.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()
        self._processes.clear()
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._dirs.clear()

    def _mkdtemp(self, parent: Path | None) -> Path:
        directory = Path(tempfile.mkdtemp(prefix="tjf-kube-", dir=parent))
        self._dirs.append(directory)
        return directory

    def _spawn(self, work: Path, name: str, *args: str) -> None:
        log = work / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [str(self.assets / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self._processes.append(_Process(name, popen, log))

    def _wait(self, what: str, check: Callable[[], bool]) -> None:
        def alive_and_ready() -> bool:
            for process in self._processes:
                code = process.popen.poll()
                if code is not None:
                    raise ClusterStartError(f"{process.name} exited with status {code}")
            return check()

        poll(what, alive_and_ready, timeout=START_TIMEOUT)


def _die_with_parent() -> None:
    """In the child: die with pytest, even when it is killed, rather than leak a server.

    SIGKILL because a kube-apiserver whose etcd is gone may never finish a graceful stop.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _http_ok(port: int, path: str, tls: ssl.SSLContext | None) -> bool:
    connection: http.client.HTTPConnection
    if tls is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=tls)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    except OSError:
        return False
    finally:
        connection.close()
    return response.status == 200


def _has_token(kube: Kube, namespace: str) -> bool:
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
    try:
        return bool(kube.get(path).get("secrets"))
    except ApiException as error:
        if error.status == 404:
            return False
        raise


@attrs.frozen
class ToolAccount:
    """What a provisioned tool has: its namespace and the files its kubeconfig names."""

    name: str
    namespace: str
    home: Path
    kubeconfig: Path
    client_cert: Path
    client_key: Path
    ca_file: Path


TOOL_GROUP = "toolforge"
_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_READ = ["get", "list", "watch"]
TOOL_RULES: list[Json] = [
    {"apiGroups": [""], "resources": ["pods", "services", "configmaps"], "verbs": _VERBS},
    {"apiGroups": [""], "resources": ["pods/log", "events"], "verbs": _READ},
    # `toolforge-jobs quota` and the LimitRange check before a create read these.
    {"apiGroups": [""], "resources": ["resourcequotas", "limitranges"], "verbs": _READ},
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": _VERBS},
    {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": _VERBS},
]
TOOL_QUOTA: dict[str, str] = {
    "requests.cpu": "2",
    "requests.memory": "6Gi",
    "limits.cpu": "2",
    "limits.memory": "8Gi",
    "pods": "4",
    "services": "1",
    "services.nodeports": "0",
    "configmaps": "10",
    "secrets": "10",
    "count/jobs.batch": "15",
    "count/cronjobs.batch": "50",
    "count/deployments.apps": "3",
}
TOOL_LIMITS: Json = {
    "type": "Container",
    "max": {"cpu": "1", "memory": "4Gi"},
    "min": {"cpu": "50m", "memory": "100Mi"},
    "default": {"cpu": "500m", "memory": "512Mi"},
    "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
}


def _provision_tool(
    admin: Kube, *, name: str, home: Path, server: str, ca_file: Path
) -> ToolAccount:
    namespace = f"tool-{name}"
    ns_path = f"/api/v1/namespaces/{namespace}"
    meta = {"name": namespace, "namespace": namespace}
    admin.create(
        "/api/v1/namespaces",
        {"metadata": {"name": namespace, "labels": {"tenancy": "tool", "name": namespace}}},
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + namespace
    admin.create(f"{rbac}/roles", {"metadata": meta, "rules": TOOL_RULES})
    admin.create(
        f"{rbac}/rolebindings",
        {
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": namespace},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
        },
    )
    admin.create(f"{ns_path}/resourcequotas", {"metadata": meta, "spec": {"hard": TOOL_QUOTA}})
    admin.create(f"{ns_path}/limitranges", {"metadata": meta, "spec": {"limits": [TOOL_LIMITS]}})

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TOOL_GROUP),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    cert_pem = _signed_by_cluster(
        admin, namespace, request.public_bytes(serialization.Encoding.PEM)
    )
    account = ToolAccount(
        name=name,
        namespace=namespace,
        home=home,
        kubeconfig=home / ".kube" / "config",
        client_cert=home / ".toolskube" / "client.crt",
        client_key=home / ".toolskube" / "client.key",
        ca_file=ca_file,
    )
    account.client_cert.parent.mkdir(parents=True, exist_ok=True)
    account.client_cert.write_bytes(cert_pem)
    account.client_key.write_bytes(_private_pem(key))
    account.client_key.chmod(0o600)
    write_kubeconfig(
        account.kubeconfig,
        server=server,
        ca_file=ca_file,
        cert_file=account.client_cert,
        key_file=account.client_key,
        user=f"tf-{name}",
        namespace=namespace,
    )

    # Each of these is filled in asynchronously; until then the tool would see spurious
    # refusals (no token for its pods, "status unknown for quota", an RBAC cache miss).
    poll(f"the token of {namespace}'s default ServiceAccount", lambda: _has_token(admin, namespace))
    quota_path = f"{ns_path}/resourcequotas/{namespace}"
    poll(
        f"quota {namespace} status",
        lambda: bool(admin.get(quota_path).get("status", {}).get("hard")),
    )
    review = {
        "spec": {
            "user": name,
            "groups": [TOOL_GROUP],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": "batch",
                "resource": "jobs",
            },
        }
    }
    reviews = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    poll(
        f"RBAC to let {name} create jobs in {namespace}",
        lambda: bool(admin.create(reviews, review)["status"].get("allowed")),
    )
    return account


def _signed_by_cluster(admin: Kube, csr_name: str, request_pem: bytes) -> bytes:
    """Have the cluster's signer issue a client certificate, through an approved CSR."""
    path = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
    csr = admin.create(
        path,
        {
            "metadata": {"name": csr_name},
            "spec": {
                "request": base64.b64encode(request_pem).decode(),
                "signerName": "kubernetes.io/kube-apiserver-client",
                "usages": ["digital signature", "key encipherment", "client auth"],
            },
        },
    )
    csr["status"] = {
        "conditions": [
            {
                "type": "Approved",
                "status": "True",
                "reason": "TjfTestProvisioning",
                "message": "approved by the tjf test harness",
            }
        ]
    }
    admin.request("PUT", f"{path}/{csr_name}/approval", csr)
    issued: list[bytes] = []

    def signed() -> bool:
        certificate = admin.get(f"{path}/{csr_name}").get("status", {}).get("certificate")
        if certificate:
            issued.append(base64.b64decode(certificate))
        return bool(issued)

    poll(f"the signer to issue CSR {csr_name}", signed)
    return issued[0]


def _timestamp(at: datetime | None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    """Plays the node agent the test cluster lacks: moves pods through their phases."""

    def __init__(self, admin: Kube) -> None:
        self._admin = admin

    def run(self, namespace: str, pod: str, *, at: datetime | None = None) -> None:
        when = _timestamp(at)
        self._report(namespace, pod, "Running", ready=True, state={"running": {"startedAt": when}})

    def succeed(self, namespace: str, pod: str, *, at: datetime | None = None) -> None:
        self._terminate(namespace, pod, exit_code=0, at=at)

    def fail(
        self, namespace: str, pod: str, *, exit_code: int = 1, at: datetime | None = None
    ) -> None:
        self._terminate(namespace, pod, exit_code=exit_code, at=at)

    def crash_loop(
        self,
        namespace: str,
        pod: str,
        *,
        restart_count: int = 3,
        exit_code: int = 1,
        at: datetime | None = None,
    ) -> None:
        """Report the container as restarting after failures, as a crash-looping one does."""
        when = _timestamp(at)
        self._report(
            namespace,
            pod,
            "Running",
            ready=False,
            restart_count=restart_count,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 5m0s restarting failed container",
                }
            },
            last_state={"terminated": _terminated(exit_code, when, when)},
        )

    def _terminate(self, namespace: str, pod: str, *, exit_code: int, at: datetime | None) -> None:
        when = _timestamp(at)
        phase = "Succeeded" if exit_code == 0 else "Failed"
        state = {"terminated": _terminated(exit_code, when, when)}
        self._report(namespace, pod, phase, ready=False, state=state)

    def _report(
        self,
        namespace: str,
        pod: str,
        phase: str,
        *,
        ready: bool,
        state: Json,
        restart_count: int = 0,
        last_state: Json | None = None,
    ) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
        spec = self._admin.get(path)["spec"]
        now = _timestamp(None)
        statuses = [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": ready,
                "started": "running" in state,
                "restartCount": restart_count,
                "state": state,
                "lastState": last_state or {},
            }
            for container in spec["containers"]
        ]
        condition = {"type": "Ready", "status": str(ready), "lastTransitionTime": now}
        status = {
            "phase": phase,
            "startTime": now,
            "hostIP": "127.0.0.1",
            "podIP": "10.0.0.100",
            "conditions": [condition],
            "containerStatuses": statuses,
        }
        self._admin.merge_patch(f"{path}/status", {"status": status})


def _terminated(exit_code: int, started: str, finished: str) -> Json:
    return {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started,
        "finishedAt": finished,
    }
