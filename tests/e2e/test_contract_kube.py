"""The runtime contract (``tests/runtime_contract.py``) on a real kube-apiserver.

The same cases that run on the in-memory fake run here on :class:`KubernetesRuntime`, in
certificate mode: every call is made with the provisioned tool's own client certificate, read
from its home as in production, so RBAC, admission, quota and the controllers are real.
Pods are moved through their phases by the test's kubelet stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import attrs
import pytest

import tjf_core
from tests.e2e.cluster import Cluster, ToolAccount, poll
from tests.runtime_contract import RuntimeContract, RuntimeHarness
from tjf_core.identity import ToolIdentity
from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.service import JobService

IMAGES_FILE = Path(tjf_core.__file__).parent / "data" / "images.yaml"


@attrs.frozen
class KubeDriver:
    """Pods come from the real controllers; only their status is played (no kubelet)."""

    cluster: Cluster
    namespace: str

    def pods_of(self, job: str) -> list[str]:
        found: list[str] = []

        def listed() -> bool:
            items = self.cluster.admin.get(
                f"/api/v1/namespaces/{self.namespace}/pods"
                f"?labelSelector=app.kubernetes.io/name%3D{job}"
            )["items"]
            found[:] = [
                pod["metadata"]["name"]
                for pod in sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])
                if not pod["metadata"].get("deletionTimestamp")
            ]
            return bool(found)

        poll(f"a pod of job {job}", listed, timeout=30)
        return list(found)

    def set_running(self, pod: str) -> None:
        self.cluster.kubelet.run(self.namespace, pod)

    def set_succeeded(self, pod: str) -> None:
        self.cluster.kubelet.succeed(self.namespace, pod)

    def set_failed(self, pod: str, exit_code: int) -> None:
        self.cluster.kubelet.fail(self.namespace, pod, exit_code=exit_code)

    def set_crash_loop(self, pod: str, restarts: int) -> None:
        self.cluster.kubelet.crash_loop(self.namespace, pod, restart_count=restarts)


def identity(account: ToolAccount) -> ToolIdentity:
    return ToolIdentity(tool=account.name, namespace=account.namespace,
                        home=PurePosixPath(account.home))


@attrs.frozen(kw_only=True)
class KubeHarness:
    runtime: KubernetesRuntime
    service: JobService
    tool: ToolIdentity
    other_tool: ToolIdentity
    driver: KubeDriver

    def eventually(self, what: str, check: Callable[[], bool]) -> None:
        poll(what, check, timeout=60)


class TestKubernetesRuntime(RuntimeContract):
    @pytest.fixture
    def harness(
        self, kube_cluster: Cluster, new_tool: Callable[[str], ToolAccount]
    ) -> Iterator[RuntimeHarness]:
        runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)))
        main, other = new_tool("alpha"), new_tool("beta")
        try:
            yield KubeHarness(
                runtime=runtime, service=JobService(runtime), tool=identity(main),
                other_tool=identity(other), driver=KubeDriver(kube_cluster, main.namespace),
            )
        finally:
            runtime.close()
