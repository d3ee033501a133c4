"""The test cluster behaves like the Kubernetes tjf runs on: real RBAC, quota, limits, Jobs.

These are the ground truth later e2e tests stand on: if the harness let a tool write into
another tool's namespace, or the Job controller never completed a Job, every test above it
would prove nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import Cluster, Kube, ToolAccount, poll

NewTool = Callable[[str], ToolAccount]
IMAGE = "docker-registry.tools.wmflabs.org/toolforge-bookworm-sssd:latest"


def _pod(name: str, *, cpu: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": IMAGE}
    if cpu is not None:
        container["resources"] = {"limits": {"cpu": cpu}}
    return {
        "metadata": {"name": name},
        "spec": {"containers": [container], "restartPolicy": "Never"},
    }


def _job(name: str, *, backoff_limit: int = 0) -> dict[str, Any]:
    template = _pod(name)
    del template["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": template},
    }


def _refusal(error: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    """The HTTP status and the human message of a refused request."""
    status: dict[str, Any] = json.loads(error.value.body or "{}")
    return int(error.value.status or 0), str(status.get("message"))


def _job_pod(kube: Kube, namespace: str, job: str) -> str:
    """The name of the pod the Job controller made for ``job``, once it exists."""
    names: list[str] = []

    def found() -> bool:
        pods = kube.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{job}")
        names.extend(p["metadata"]["name"] for p in pods["items"])
        return bool(names)

    poll(f"a pod for job {job}", found)
    return names[0]


def _job_condition(kube: Kube, namespace: str, job: str, condition: str) -> dict[str, Any]:
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}"
    seen: list[dict[str, Any]] = []

    def reached() -> bool:
        status = kube.get(path).get("status", {})
        seen[:] = [status]
        return any(
            c["type"] == condition and c["status"] == "True" for c in status.get("conditions", [])
        )

    poll(f"job {job} to become {condition}", reached)
    return seen[0]


def test_apiserver_reports_the_built_version(kube_cluster: Cluster) -> None:
    version = kube_cluster.admin.get("/version")
    assert (version["gitVersion"], version["major"], version["minor"]) == ("v1.20.2", "1", "20")


def test_tool_credentials_work_in_own_namespace_only(new_tool: NewTool) -> None:
    alpha, beta = new_tool("alpha"), new_tool("beta")
    assert alpha.kubeconfig == alpha.home / ".kube" / "config"
    assert alpha.client_cert == alpha.home / ".toolskube" / "client.crt"
    with Kube(alpha.kubeconfig) as kube:
        made = kube.create(
            f"/api/v1/namespaces/{alpha.namespace}/configmaps",
            {"metadata": {"name": "settings"}, "data": {"a": "1"}},
        )
        assert made["metadata"]["namespace"] == alpha.namespace
        job = kube.create(f"/apis/batch/v1/namespaces/{alpha.namespace}/jobs", _job("hello"))
        assert job["metadata"]["name"] == "hello"
        for path, body in (
            (f"/api/v1/namespaces/{beta.namespace}/configmaps", {"metadata": {"name": "x"}}),
            (f"/apis/batch/v1/namespaces/{beta.namespace}/jobs", _job("intruder")),
        ):
            with pytest.raises(ApiException) as refused:
                kube.create(path, body)
            status, message = _refusal(refused)
            # The server names the user from the certificate: CN is the tool.
            assert status == 403
            assert f'User "{alpha.name}" cannot create resource' in message
        with pytest.raises(ApiException) as listing:
            kube.get(f"/api/v1/namespaces/{beta.namespace}/pods")
        assert listing.value.status == 403


def test_job_completes_when_its_pod_succeeds(kube_cluster: Cluster, new_tool: NewTool) -> None:
    tool = new_tool("jobs")
    admin, kubelet = kube_cluster.admin, kube_cluster.kubelet
    job = _job("once")
    job["spec"]["ttlSecondsAfterFinished"] = 30
    made = admin.create(f"/apis/batch/v1/namespaces/{tool.namespace}/jobs", job)
    # Without the TTLAfterFinished gate a 1.20 apiserver silently drops the field.
    assert made["spec"]["ttlSecondsAfterFinished"] == 30
    pod = _job_pod(admin, tool.namespace, "once")
    # LimitRanger filled in the namespace defaults the Job did not ask for.
    spec = admin.get(f"/api/v1/namespaces/{tool.namespace}/pods/{pod}")["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    kubelet.run(tool.namespace, pod)
    kubelet.succeed(tool.namespace, pod)
    status = _job_condition(admin, tool.namespace, "once", "Complete")
    assert status["succeeded"] == 1


def test_job_fails_when_its_pod_fails(kube_cluster: Cluster, new_tool: NewTool) -> None:
    tool = new_tool("fails")
    admin, kubelet = kube_cluster.admin, kube_cluster.kubelet
    admin.create(f"/apis/batch/v1/namespaces/{tool.namespace}/jobs", _job("doomed"))
    pod = _job_pod(admin, tool.namespace, "doomed")
    kubelet.fail(tool.namespace, pod, exit_code=3)
    status = _job_condition(admin, tool.namespace, "doomed", "Failed")
    assert status["failed"] == 1
    terminated = admin.get(f"/api/v1/namespaces/{tool.namespace}/pods/{pod}")["status"]
    assert terminated["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_kubelet_reports_a_crash_loop(kube_cluster: Cluster, new_tool: NewTool) -> None:
    tool = new_tool("crash")
    admin = kube_cluster.admin
    admin.create(f"/api/v1/namespaces/{tool.namespace}/pods", _pod("flaky"))
    kube_cluster.kubelet.crash_loop(tool.namespace, "flaky", restart_count=5, exit_code=137)
    status = admin.get(f"/api/v1/namespaces/{tool.namespace}/pods/flaky")["status"]
    container = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert container["restartCount"] == 5
    assert container["lastState"]["terminated"]["exitCode"] == 137


def test_quota_refuses_pods_beyond_the_limit(new_tool: NewTool) -> None:
    tool = new_tool("quota")
    with Kube(tool.kubeconfig) as kube:
        pods = f"/api/v1/namespaces/{tool.namespace}/pods"
        for index in range(4):
            kube.create(pods, _pod(f"p{index}"))
        with pytest.raises(ApiException) as refused:
            kube.create(pods, _pod("p4"))
    status, message = _refusal(refused)
    assert status == 403
    assert f"exceeded quota: {tool.namespace}" in message
    assert re.search(r"limited: \S*pods=4", message), message


def test_quota_refuses_jobs_beyond_the_limit(new_tool: NewTool) -> None:
    tool = new_tool("jobquota")
    with Kube(tool.kubeconfig) as kube:
        jobs = f"/apis/batch/v1/namespaces/{tool.namespace}/jobs"
        for index in range(15):
            kube.create(jobs, _job(f"j{index}"))
        with pytest.raises(ApiException) as refused:
            kube.create(jobs, _job("j15"))
    status, message = _refusal(refused)
    assert status == 403
    assert "limited: count/jobs.batch=15" in message


def test_limit_range_refuses_a_container_above_max_cpu(new_tool: NewTool) -> None:
    tool = new_tool("limits")
    pods = f"/api/v1/namespaces/{tool.namespace}/pods"
    with Kube(tool.kubeconfig) as kube, pytest.raises(ApiException) as refused:
        kube.create(pods, _pod("greedy", cpu="2"))
    status, message = _refusal(refused)
    assert status == 403
    assert "maximum cpu usage per Container is 1, but limit is 2" in message
