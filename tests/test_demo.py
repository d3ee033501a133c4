"""The README's first command: ``scripts/demo`` runs the main job end to end and says so.

The demo is run as the user would run it (its own ``tjf-api`` process in local mode, the real
``toolforge-jobs``, an SMTP sink); this checks it exits 0 and that its output shows each step
doing what it should.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from tjf_core.errors import TjfError
from tjf_core.local_identity import tool_from_username

REPO = Path(__file__).resolve().parent.parent


def _names_a_tool() -> bool:
    try:
        tool_from_username(pwd.getpwuid(os.geteuid()).pw_name)
    except (KeyError, TjfError):
        return False
    return True


@pytest.mark.skipif(not _names_a_tool(), reason="the demo's tool is the unix user's name")
def test_the_demo_runs_the_main_job_end_to_end() -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TJF_")}
    done = subprocess.run([str(REPO / "scripts" / "demo")], env=environ, capture_output=True,
                          text=True, timeout=180, check=False)
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    expected = [
        "Start an SMTP sink",
        "Start tjf-api in local mode",
        "$ toolforge-jobs images",
        "$ toolforge-jobs run hello --command 'echo hello from a job'",
        "Job 'hello' succeeded.",
        "$ toolforge-jobs restart tick",
        "it ran: tick at ",
        "$ toolforge-jobs run web --continuous",
        "-> 200",
        "$ toolforge-jobs list",
        "$ toolforge-jobs logs hello",
        "hello from a job",
        "$ kill -KILL ",
        "Restarted 1 time",
        "--emails onfailure --wait",
        "(exit status 3)",
        "Subject: [Toolforge] [",
        "failed, exit code 3",
        "| about to fail",
        "$ toolforge-jobs flush --yes",
        "no job process is left",
        "tjf-api exited with status 0",
        "stopped cleanly",
        "every step behaved as expected",
    ]
    position = 0
    for text in expected:  # in this order
        found = output.find(text, position)
        assert found >= 0, f"{text!r} is not in the demo's output (after {position}):\n{output}"
        position = found + len(text)
