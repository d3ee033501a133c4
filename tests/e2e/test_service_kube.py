"""JobService on the real apiserver: what the contract cannot express for every runtime.

Out-of-quota status needs the Job controller's own FailedCreate events; log files need a tool
home next to a real cluster; both run here with the tool's own certificate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import ToolAccount, poll
from tests.e2e.test_contract_kube import IMAGES_FILE, identity
from tjf_core.convert import job_from_api
from tjf_core.errors import ForbiddenError, InvalidJobError
from tjf_core.kube import KubernetesRuntime, KubeSettings
from tjf_core.model import JobSpec
from tjf_core.service import JobService

NewTool = Callable[[str], ToolAccount]


@pytest.fixture
def service() -> Iterator[JobService]:
    runtime = KubernetesRuntime(KubeSettings(images_file=str(IMAGES_FILE)))
    try:
        yield JobService(runtime)
    finally:
        runtime.close()


def test_an_invalid_name_is_a_400_before_anything_is_sent(
    new_tool: NewTool, service: JobService
) -> None:
    tool = identity(new_tool("names"))
    with pytest.raises(InvalidJobError) as refused:
        service.run(tool, job_from_api({"name": "Bad_Name", "cmd": "./x", "imagename": "bookworm"}))
    assert refused.value.http_status == 400
    assert str(refused.value).startswith("name: 'Bad_Name' is not allowed")
    assert service.list(tool).jobs == ()


def test_a_job_beyond_the_pod_quota_says_it_is_out_of_quota(
    new_tool: NewTool, service: JobService
) -> None:
    tool = identity(new_tool("full"))
    # The tool may run 4 pods (and 2 cpus at 500m each): the fifth job's pod is refused.
    for index in range(5):
        service.run(tool, JobSpec(name=f"q{index}", command="./work", image="bookworm"))

    def refused() -> bool:
        return any(job.status.status_short.startswith("Unable to start, out of quota for")
                   for job in service.list(tool).jobs)

    poll("a job to be refused by the quota", refused, timeout=60)
    blocked = [job for job in service.list(tool).jobs
               if job.status.status_short.startswith("Unable to start")]
    assert len(blocked) == 1
    assert "pods" in blocked[0].status.status_short or "cpu" in blocked[0].status.status_short
    assert blocked[0].status.short.value == "pending"


def test_logs_come_from_the_files_in_the_tools_home(
    new_tool: NewTool, service: JobService
) -> None:
    account = new_tool("logs")
    tool = identity(account)
    service.run(tool, JobSpec(name="report", command="./report", image="bookworm"))
    # What the job's pod appends through the shared home (NFS on Toolforge).
    (account.home / "report.out").write_text("one\ntwo\nthree\n")
    (account.home / "report.err").write_text("warning: späť\n")
    assert list(service.logs(tool, "report", lines=2)) == ["two", "three", "warning: späť"]


def test_a_log_file_linked_out_of_the_home_is_refused(
    new_tool: NewTool, service: JobService, tmp_path: Path
) -> None:
    account = new_tool("escape")
    tool = identity(account)
    service.run(tool, JobSpec(name="sneaky", command="./x", image="bookworm"))
    secret = tmp_path / "secret.txt"
    secret.write_text("not for tools\n")
    os.symlink(secret, account.home / "sneaky.out")
    os.symlink("/etc/passwd", account.home / "sneaky.err")
    with pytest.raises(ForbiddenError, match="outside the tool's home"):
        list(service.logs(tool, "sneaky"))
