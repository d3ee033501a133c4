"""Direct mode against a real kube-apiserver, as a tool with its own kubeconfig would use it.

The cluster and the tool accounts are the e2e fixtures: without the test
cluster's binaries these tests are skipped (and fail under CI, as every e2e test does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

import tjf_core
from tests.e2e.cluster import ToolAccount

IMAGES_FILE = Path(tjf_core.__file__).parent / "data" / "images.yaml"


def test_direct_mode_on_a_real_cluster(new_tool: Callable[[str], ToolAccount],
                                       tmp_path: Path) -> None:
    account = new_tool("cli")
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "toolforge.yaml").write_text(yaml.safe_dump(
        {"jobs": {"mode": "direct", "images_file": str(IMAGES_FILE)}}))
    env = {"HOME": str(account.home), "XDG_CONFIG_HOME": str(xdg),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tjf_cli", *args], capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    created = cli("run", "hello", "--command", "echo hi", "--image", "bookworm")
    assert created.returncode == 0, created.stderr
    assert cli("list", "-o", "name").stdout == "hello\n"
    assert json.loads(cli("show", "hello", "-o", "json").stdout)["command"] == "echo hi"
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text("- {name: tick, command: ./tick, image: bookworm, schedule: '@daily'}\n"
                         "- {name: web, command: ./serve, image: python3.11, continuous: true}\n")
    loaded = cli("load", str(jobs_file))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines()[-1] == "Done: 2 created, 1 deleted."
    dumped = tmp_path / "dumped.yaml"
    assert cli("dump", "-f", str(dumped)).returncode == 0
    again = cli("load", str(dumped))
    assert again.stdout.splitlines()[-1].startswith("No changes"), again.stdout
    assert cli("restart", "web").returncode == 0
    assert "Running jobs" in cli("quota").stdout
    assert cli("delete", "web").returncode == 0
    missing = cli("show", "web")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: job 'web' does not exist")
