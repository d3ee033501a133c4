"""Direct mode: the commands over JobService in this process, shaped exactly as the API's.

The runtime here is the in-memory one (``DirectJobs.from_kubeconfig`` is replaced to build
it); tests/cli/test_direct_e2e.py runs direct mode against a real kube-apiserver.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import ToolHome
from tjf_cli import direct
from tjf_cli.direct import DirectJobs
from tjf_core.service import JobService
from tjf_core.settings import IdentitySettings, Settings
from tjf_core.testing import FakeClock, InMemoryRuntime


@pytest.fixture
def direct_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobService:
    """The service direct mode will run (over the in-memory runtime, clocked as the API's)."""
    clock = FakeClock()
    homes = tmp_path / "direct-homes"
    (homes / "alpha").mkdir(parents=True)
    service = JobService(InMemoryRuntime(clock=clock), clock=clock, follow_interval=0.01,
                         settings=Settings(identity=IdentitySettings(
                             home_template=str(homes) + "/{tool}")))

    def from_kubeconfig(kubeconfig: Path, *, tool: str, timeout: float,
                        images_file: str | None = None) -> DirectJobs:
        assert kubeconfig.name == "config"
        return DirectJobs(service, service.identity(tool))

    monkeypatch.setattr(direct.DirectJobs, "from_kubeconfig", staticmethod(from_kubeconfig))
    return service


@pytest.fixture
def direct_tool(tool: ToolHome, direct_service: JobService) -> tuple[ToolHome, JobService]:
    tool.configure({"jobs": {"mode": "direct"}})  # and no API URL at all
    return tool, direct_service


def test_direct_mode_needs_no_api(direct_tool: tuple[ToolHome, JobService]) -> None:
    tool, service = direct_tool
    result = tool.invoke("run", "hello", "--command", "echo hi", "--image", "bookworm")
    assert result.exit_code == 0, result.stderr
    assert [job.spec.name for job in service.list(service.identity("alpha")).jobs] == ["hello"]
    assert tool.invoke("list", "-o", "name").stdout == "hello\n"


def test_direct_and_api_modes_print_the_same(tool: ToolHome, direct_service: JobService) -> None:
    jobs_file = tool.home / "jobs.yaml"
    jobs_file.write_text("- {name: a, command: x, image: bookworm, schedule: '@daily'}\n"
                         "- {name: b, command: y, image: python3.11, continuous: true}\n"
                         "- {name: c, command: z, image: bookworm, mem: 1Gi}\n")
    commands = [("load", str(jobs_file)), ("list",), ("list", "-o", "long"),
                ("list", "-o", "json"), ("show", "a"), ("show", "b", "-o", "yaml"), ("dump",),
                ("images", "-o", "json"), ("quota", "-o", "json"), ("show", "nope")]
    api = [tool.invoke(*command) for command in commands]
    tool.configure({"jobs": {"mode": "direct"}})
    direct_mode = [tool.invoke(*command) for command in commands]
    for command, one, other in zip(commands, api, direct_mode, strict=True):
        assert (one.exit_code, one.stdout, one.stderr) == (
            other.exit_code, other.stdout, other.stderr), command


def test_every_command_in_direct_mode(direct_tool: tuple[ToolHome, JobService]) -> None:
    tool, service = direct_tool
    jobs_file = tool.home / "jobs.yaml"
    jobs_file.write_text("- {name: a, command: x, image: bookworm, schedule: '@daily'}\n"
                         "- {name: b, command: y, image: python3.11, continuous: true}\n")
    loaded = tool.invoke("load", str(jobs_file))
    assert loaded.stdout.splitlines()[-1] == "Done: 2 created."
    assert tool.invoke("load", str(jobs_file)).stdout.splitlines()[-1].startswith("No changes")
    assert tool.invoke("list").stdout.splitlines()[0].split() == ["NAME", "TYPE", "STATUS"]
    assert json.loads(tool.invoke("show", "a", "-o", "json").stdout)["schedule"] == "@daily"
    assert tool.invoke("restart", "b").exit_code == 0
    assert "Running jobs" in tool.invoke("quota").stdout
    assert "bookworm" in tool.invoke("images").stdout
    dumped = tool.invoke("dump").stdout
    assert "- name: a" in dumped
    assert tool.invoke("logs", "a").stderr == "Job 'a' has no output yet.\n"
    assert tool.invoke("delete", "a").stdout == "Deleted job 'a'.\n"
    assert tool.invoke("flush").exit_code == 0
    assert service.list(service.identity("alpha")).jobs == ()
    missing = tool.invoke("show", "nope")
    assert (missing.exit_code, missing.stderr) == (
        1, "Error: job 'nope' does not exist; see `toolforge-jobs list` for the tool's jobs\n")
