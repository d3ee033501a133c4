"""``toolforge-jobs`` end to end: the client as a process, over the API, on a real apiserver.

The chain a tool maintainer uses: the command line client (a real process, its configuration
in ``$XDG_CONFIG_HOME/toolforge.yaml``, the tool's kubeconfig in its home) → ``tjf-api`` in
certificate mode (a process, real TLS, the tool's own certificate) → kube-apiserver with real
Job, CronJob and Deployment controllers. The test cluster has no kubelet: the tests play it
(``Cluster.kubelet``), so a job's pod ends when and how a test says, and they write the job's
log files into its home as the job would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import yaml

from tests.e2e.cluster import Cluster, ToolAccount, poll
from tests.e2e.test_api_kube import Api, start_api
from tests.e2e.test_contract_kube import IMAGES_FILE

RUN_TIMEOUT = 120.0


@attrs.frozen
class Login:
    """A tool's login on a bastion: its account, and the client configured for ``api``."""

    cluster: Cluster
    account: ToolAccount
    environ: dict[str, str]
    api: Api

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tjf_cli", *args], capture_output=True,
                              text=True, env=self.environ, input=input, timeout=RUN_TIMEOUT,
                              check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "tjf_cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.environ)

    def followers(self) -> float:
        """Log streams the API is following now (its metrics)."""
        with urllib.request.urlopen(
                f"http://127.0.0.1:{self.api.process.ops_port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("tjf_http_log_followers"))

    def pod_of(self, job: str) -> str:
        """The name of the (newest) pod the Job controller made for ``job``."""
        path = f"/api/v1/namespaces/{self.account.namespace}/pods?labelSelector=job-name%3D{job}"
        found: list[str] = []

        def made() -> bool:
            items = self.cluster.admin.get(path)["items"]
            found[:] = [pod["metadata"]["name"] for pod in sorted(
                items, key=lambda pod: pod["metadata"]["creationTimestamp"])]
            return bool(found)

        poll(f"the pod of job {job!r}", made, timeout=60)
        return found[-1]


@pytest.fixture(scope="module")
def login(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    homes = tmp_path_factory.mktemp("homes")
    name = f"cli-{uuid.uuid4().hex[:6]}"
    api: Api | None = None
    try:
        account = kube_cluster.provision_tool(name, homes / name)
        api = start_api(kube_cluster, tmp_path_factory.mktemp("cli-api"),
                        profile="direct-certificate", homes=homes,
                        flags=["--set", f"kubernetes.images_file={IMAGES_FILE}"])
        xdg = homes / "xdg"
        xdg.mkdir()
        (xdg / "toolforge.yaml").write_text(yaml.safe_dump({
            "api_gateway": {"url": f"https://localhost:{api.port}",
                            "ca_file": str(api.server_ca)},
            "jobs": {"jobs_endpoint": ""}}))
        environ = {"HOME": str(account.home), "XDG_CONFIG_HOME": str(xdg),
                   "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        yield Login(kube_cluster, account, environ, api)
    finally:
        if api is not None:
            api.stop()
        kube_cluster.remove_tool(name)


def _done(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=RUN_TIMEOUT)
    return process.returncode, out, err


def test_jobs_of_every_kind(login: Login) -> None:
    cli = login.cli
    assert "bookworm" in cli("images").stdout
    assert json.loads(cli("quota", "-o", "json").stdout)[0]["name"] == "Running jobs"
    for args in (("hello", "--command", "echo hi", "--image", "bookworm"),
                 ("tick", "--command", "./tick", "--image", "bookworm", "--schedule", "@daily"),
                 ("web", "--command", "./serve", "--image", "bookworm", "--continuous")):
        created = cli("run", *args)
        assert created.returncode == 0, created.stderr
    assert cli("list", "-o", "name").stdout.split() == ["hello", "tick", "web"]
    table = cli("list").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "STATUS"]
    assert any(line.split()[:3] == ["tick", "schedule:", "@daily"] for line in table)
    shown = json.loads(cli("show", "tick", "-o", "json").stdout)
    assert (shown["schedule"], shown["status"]["exit_code"]) == ("@daily", None)
    assert "Time zone:" in cli("show", "tick").stdout
    taken = cli("run", "web", "--command", "x", "--image", "bookworm", "--continuous")
    assert (taken.returncode, taken.stderr.startswith("Error: ")) == (1, True)
    for name in ("tick", "web"):
        assert cli("restart", name).returncode == 0
    refused = cli("restart", "hello")
    assert refused.returncode == 1
    assert "cannot be restarted" in refused.stderr

    (login.account.home / "hello.out").write_text("one\ntwo\n")
    assert cli("logs", "hello").stdout == "one\ntwo\n"
    assert cli("logs", "hello", "-l", "1").stdout == "two\n"

    assert cli("delete", "hello").returncode == 0
    missing = cli("delete", "hello")
    assert (missing.returncode, missing.stderr) == (
        0, "Warning: job 'hello' does not exist: nothing to delete.\n")
    gone = cli("show", "hello")
    assert gone.returncode == 1
    assert gone.stderr.startswith("Error: job 'hello' does not exist")
    assert cli("flush").returncode == 0  # no terminal: no question
    assert cli("list", "-o", "name").stdout == ""


def test_wait_exits_with_the_jobs_code(login: Login) -> None:
    kubelet, namespace = login.cluster.kubelet, login.account.namespace
    for name, code in (("ok", 0), ("bad", 3)):
        waiting = login.start("run", name, "--command", "./x", "--image", "bookworm",
                              "--wait", "90")
        pod = login.pod_of(name)
        kubelet.run(namespace, pod)
        if code:
            kubelet.fail(namespace, pod, exit_code=code)
        else:
            kubelet.succeed(namespace, pod)
        returncode, _, stderr = _done(waiting)
        assert returncode == code, stderr
        last = stderr.splitlines()[-1]
        assert last == ("Job 'ok' succeeded." if not code else
                        "Error: job 'bad' failed with exit code 3; see its output: "
                        "`toolforge-jobs logs bad`")
    shown = json.loads(login.cli("show", "bad", "-o", "json").stdout)
    assert (shown["status"]["short"], shown["status"]["exit_code"]) == ("failed", 3)

    timed_out = login.cli("run", "slow", "--command", "./x", "--image", "bookworm",
                          "--wait", "2")
    assert timed_out.returncode == 2
    assert "Error: job 'slow' did not end within 2 s" in timed_out.stderr
    assert login.cli("flush").returncode == 0


def test_follow_streams_the_output_while_waiting(login: Login) -> None:
    home, kubelet = login.account.home, login.cluster.kubelet
    (home / "talk.out").write_text("an earlier run\n")
    following = login.start("run", "talk", "--command", "./talk", "--image", "bookworm",
                            "--follow", "--wait", "90")
    pod = login.pod_of("talk")
    # The client reads what earlier runs wrote between creating the job and following its
    # output: a real container starts long after that; this one writes once it follows.
    poll("the client to follow the output", lambda: login.followers() >= 1)
    kubelet.run(login.account.namespace, pod)
    for number in range(3):
        with (home / "talk.out").open("a") as file:
            file.write(f"line {number}\n")
        with (home / "talk.err").open("a") as file:
            file.write(f"problem {number}\n")
        time.sleep(0.3)
    kubelet.fail(login.account.namespace, pod, exit_code=7)
    returncode, stdout, stderr = _done(following)
    assert returncode == 7, stderr
    lines = stdout.splitlines()
    assert sorted(lines) == sorted([*(f"line {n}" for n in range(3)),
                                    *(f"problem {n}" for n in range(3))])
    assert [line for line in lines if line.startswith("line")] == ["line 0", "line 1", "line 2"]
    assert login.cli("flush").returncode == 0


def test_load_and_dump(login: Login, tmp_path: Path) -> None:
    cli = login.cli
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(
        "- {name: tick, command: ./tick, image: bookworm, schedule: '@hourly'}\n"
        "- {name: web, command: ./serve, image: python3.11, continuous: true, port: 8000}\n"
        "- {name: once, command: ./once, image: bookworm}\n")
    dry = cli("load", str(jobs_file), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "Dry run: 3 to create; nothing was changed."
    assert cli("list", "-o", "name").stdout == ""
    applied = cli("load", str(jobs_file))
    assert applied.stdout.splitlines()[-1] == "Done: 3 created.", applied.stderr
    again = cli("load", str(jobs_file))
    assert again.stdout.splitlines()[-1] == (
        f"No changes: the tool's jobs already match {jobs_file} (3 jobs).")

    # An invalid entry: nothing changes, not even the valid ones.
    broken = tmp_path / "broken.yaml"
    broken.write_text("- {name: tick, command: ./tick, image: bookworm, schedule: '@daily'}\n"
                      "- {name: web, comand: ./serve, image: python3.11, continuous: true}\n")
    refused = cli("load", str(broken))
    assert refused.returncode == 1
    assert "did you mean 'command'" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert json.loads(cli("show", "tick", "-o", "json").stdout)["schedule"] == "@hourly"

    # --job: only that job changes; the others stay, even those missing from the file.
    only = tmp_path / "only.yaml"
    only.write_text("- {name: tick, command: ./tick --fast, image: bookworm, "
                    "schedule: '@hourly'}\n")
    one = cli("load", str(only), "--job", "tick")
    assert one.returncode == 0, one.stderr
    assert "update     tick (command)" in one.stdout
    assert cli("list", "-o", "name").stdout.split() == ["once", "tick", "web"]

    dumped = tmp_path / "dumped.yaml"
    assert cli("dump", "-f", str(dumped)).returncode == 0
    assert [entry["name"] for entry in yaml.safe_load(dumped.read_text())] == [
        "once", "tick", "web"]
    round_trip = cli("load", str(dumped))
    assert round_trip.stdout.splitlines()[-1].startswith("No changes"), round_trip.stdout
    assert cli("flush").returncode == 0


def test_wait_in_direct_mode(login: Login, tmp_path: Path) -> None:
    """Direct mode (no API server, the tool's own kubeconfig) waits and exits the same way."""
    (tmp_path / "toolforge.yaml").write_text(yaml.safe_dump(
        {"jobs": {"mode": "direct", "images_file": str(IMAGES_FILE)}}))
    direct = attrs.evolve(login, environ={**login.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    waiting = direct.start("run", "direct", "--command", "./x", "--image", "bookworm",
                           "--wait", "90")
    pod = direct.pod_of("direct")
    login.cluster.kubelet.fail(login.account.namespace, pod, exit_code=42)
    returncode, _, stderr = _done(waiting)
    assert returncode == 42, stderr
    assert "job 'direct' failed with exit code 42" in stderr
    assert login.cli("flush").returncode == 0
