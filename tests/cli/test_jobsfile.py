"""load and dump: plans, dry runs, idempotence, --job, invalid files, the round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.cli.conftest import ToolHome
from tests.http.conftest import Harness
from tjf_core.model import HealthCheck, JobSpec

JOBS = textwrap.dedent("""\
    - name: update-index
      command: ./update-index.sh --full
      image: python3.11
      schedule: "@daily"
      emails: onfailure
      timezone: Europe/Berlin
    - name: backfill
      command: python3 backfill.py
      image: tf-python311
      mem: 1Gi
      cpu: 0.25
      retry: 2
      filelog-stdout: logs/backfill.out
    - name: irc-bot
      command: ./bot --port "$PORT"
      image: node18
      continuous: true
      replicas: 2
      port: 8000
      health-check:
        type: http
        path: /healthz
    """)


def _file(tmp_path: Path, text: str, name: str = "jobs.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _names(h: Harness) -> list[str]:
    return [job.spec.name for job in h.service.list(h.tool()).jobs]


def _uids(h: Harness) -> dict[str, str]:
    return {obj["metadata"]["name"]: obj["metadata"]["uid"]
            for kind in ("Job", "CronJob", "Deployment")
            for obj in h.runtime.objects(h.tool(), kind)}


def test_dry_run_shows_the_plan_and_changes_nothing(h: Harness, tool: ToolHome,
                                                    tmp_path: Path) -> None:
    tool.invoke("run", "old", "--command", "x", "--image", "bookworm")
    result = tool.invoke("load", _file(tmp_path, JOBS), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "  delete     old",
        "  create     backfill",
        "  create     irc-bot",
        "  create     update-index",
        "Dry run: 3 to create, 1 to delete; nothing was changed.",
    ]
    assert _names(h) == ["old"]


def test_load_applies_and_a_second_load_changes_nothing(h: Harness, tool: ToolHome,
                                                        tmp_path: Path) -> None:
    tool.invoke("run", "old", "--command", "x", "--image", "bookworm")
    path = _file(tmp_path, JOBS)
    first = tool.invoke("load", path)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[-1] == "Done: 3 created, 1 deleted."
    assert _names(h) == ["backfill", "irc-bot", "update-index"]
    before = _uids(h)
    again = tool.invoke("load", path)
    assert again.exit_code == 0
    assert again.stdout.splitlines()[-1] == (
        f"No changes: the tool's jobs already match {path} (3 jobs).")
    assert all(line.startswith("  unchanged") for line in again.stdout.splitlines()[:-1])
    assert _uids(h) == before  # unchanged jobs were not touched: they keep running


def test_an_update_names_the_changed_fields_as_the_file_spells_them(
        h: Harness, tool: ToolHome, tmp_path: Path) -> None:
    path = _file(tmp_path, JOBS)
    tool.invoke("load", path)
    changed = JOBS.replace("mem: 1Gi", "mem: 2Gi").replace("retry: 2", "retry: 3")
    result = tool.invoke("load", _file(tmp_path, changed))
    assert "  update     backfill (retry, mem)" in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == "Done: 1 updated, 2 unchanged."
    assert str(h.service.get(h.tool(), "backfill").spec.memory) == "2Gi"


def test_job_loads_only_that_job(h: Harness, tool: ToolHome, tmp_path: Path) -> None:
    tool.invoke("run", "other", "--command", "x", "--image", "bookworm")
    result = tool.invoke("load", _file(tmp_path, JOBS), "--job", "backfill")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["  create     backfill", "Done: 1 created."]
    assert _names(h) == ["backfill", "other"]
    missing = tool.invoke("load", _file(tmp_path, JOBS), "--job", "nope")
    assert missing.exit_code == 1
    assert "defines no job of that name; it defines update-index, backfill, irc-bot" in (
        missing.stderr)


@pytest.mark.parametrize(("text", "message"), [
    ("- name: a\n  command: x\n  image: bookworm\n  retry: [\n",
     "not valid YAML at line 5, column 1"),
    ("- name: a\n  comand: x\n  image: bookworm\n",
     "a.comand: is not a known key, did you mean 'command'?"),
    ("- name: a\n  command: x\n  image: bookworm\n  retry: lots\n",
     "a.retry: 'lots' is not allowed, use a whole number"),
    ("- name: a\n  command: x\n  image: bookworm\n  continuous: maybe\n",
     "a.continuous: 'maybe' is not allowed, use true or false"),
    ("name: a\n", "a jobs file must be a list of jobs"),
    ("- name: a\n  command: x\n  image: cobol42\n", "cobol42"),  # refused by the server
])
def test_an_invalid_file_changes_nothing(h: Harness, tool: ToolHome, tmp_path: Path, text: str,
                                         message: str) -> None:
    tool.invoke("load", _file(tmp_path, JOBS))
    before = _uids(h)
    result = tool.invoke("load", _file(tmp_path, text, "bad.yaml"))
    assert result.exit_code == 1, result.stdout
    assert result.stderr.startswith(f"Error: {tmp_path / 'bad.yaml'}: ")
    assert message in result.stderr
    assert result.stderr.rstrip().endswith("nothing was changed")
    assert len(result.stderr.splitlines()) == 1
    assert _uids(h) == before


def test_every_problem_of_every_entry_at_once(tool: ToolHome, tmp_path: Path) -> None:
    text = ("- {name: a, command: x, image: bookworm, retry: 9}\n"
            "- {name: b, command: x, image: bookworm, emails: often}\n")
    result = tool.invoke("load", _file(tmp_path, text))
    assert result.exit_code == 1
    assert "a.retry: 9 is not allowed, use 0 to 5" in result.stderr
    assert "b.emails: 'often' is not allowed" in result.stderr


def test_yaml_errors_say_where(tool: ToolHome, tmp_path: Path) -> None:
    result = tool.invoke("load", _file(tmp_path, "- name: a\n  command: 'x\n"))
    assert result.exit_code == 1
    assert "not valid YAML at line" in result.stderr
    assert ", column " in result.stderr


def test_a_missing_file_is_a_usage_error(tool: ToolHome, tmp_path: Path) -> None:
    result = tool.invoke("load", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1
    assert "cannot read" in result.stderr
    assert "No such file" in result.stderr


def test_load_reads_stdin(h: Harness, tool: ToolHome) -> None:
    result = tool.invoke("load", "-", input="- {name: a, command: x, image: bookworm}\n")
    assert result.exit_code == 0, result.stderr
    assert _names(h) == ["a"]


def test_dump_then_load_changes_nothing(h: Harness, tool: ToolHome, tmp_path: Path) -> None:
    tool.invoke("load", _file(tmp_path, JOBS))
    tool.invoke("run", "plain", "--command", "echo 'quoted' \"twice\"", "--image", "bookworm",
                "--no-filelog", "--mount", "none", "--timeout", "30")
    before = _uids(h)
    dumped = tool.invoke("dump")
    assert dumped.exit_code == 0
    assert "- name: backfill" in dumped.stdout
    result = tool.invoke("load", _file(tmp_path, dumped.stdout, "dumped.yaml"))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith("No changes")
    assert _uids(h) == before
    target = tmp_path / "out.yaml"
    written = tool.invoke("dump", "-f", str(target))
    assert written.stderr == f"Wrote 4 jobs to {target}.\n"
    assert target.read_text() == dumped.stdout


def test_dump_of_every_kind_reads_back_equal(h: Harness, tool: ToolHome, tmp_path: Path) -> None:
    specs = [
        JobSpec(name="c", command="x", image="bookworm", schedule="*/7 * * * *",
                concurrency="allow", timezone="Asia/Tokyo", timeout=5),
        JobSpec(name="d", command="x", image="bookworm", kind="continuous", replicas=3,
                mount="none", port=8080, health_check=HealthCheck(type="script", script="true")),
        JobSpec(name="e", command="x", image="bookworm", filelog_stdout="logs/x.log",
                filelog_stderr="logs/x.log", emails="all", retry=5, cpu="2"),
    ]
    for spec in specs:
        h.service.run(h.tool(), spec)
    dumped = tool.invoke("dump").stdout
    h.service.flush(h.tool())
    assert tool.invoke("load", _file(tmp_path, dumped)).exit_code == 0
    assert [job.spec for job in h.service.list(h.tool()).jobs] == specs


def test_wait_entries_are_waited_for(h: Harness, tool: ToolHome, tmp_path: Path,
                                     end_job: object) -> None:
    assert callable(end_job)
    end_job("setup", 4)
    result = tool.invoke("load", _file(tmp_path, "- {name: setup, command: x, image: bookworm, "
                                                 "wait: true}\n"))
    assert result.exit_code == 4
    assert "Waiting for job 'setup' to end" in result.stderr
    assert "job 'setup' failed with exit code 4" in result.stderr
