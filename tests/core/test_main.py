"""``python -m tjf_core render`` run as a user runs it: a real process, output, exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.k8s_schema import assert_valid

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "images.yaml"


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tjf_core", "render", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )


def test_the_example_jobs_file_renders_every_kind() -> None:
    result = run("--tool", "demo", "--uid", "52503", "--images", str(CATALOG),
                 str(ROOT / "examples" / "jobs.yaml"))
    assert result.returncode == 0, result.stderr
    manifests = list(yaml.safe_load_all(result.stdout))
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("CronJob", "update-index"), ("Job", "backfill"),
        ("Deployment", "irc-bot"), ("Service", "irc-bot"),
    ]
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == "tool-demo"
        assert_valid(manifest)
    image = manifests[1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("docker-registry.tools.wmflabs.org/toolforge-python311")


@pytest.mark.parametrize(
    ("job", "kind"),
    [
        ({"name": "once", "cmd": "./x", "imagename": "img"}, "Job"),
        ({"name": "cron", "cmd": "./x", "imagename": "img", "schedule": "*/5 * * * *"},
         "CronJob"),
        ({"name": "svc", "cmd": "./x", "imagename": "img", "continuous": True}, "Deployment"),
    ],
)
def test_one_api_json_job_from_stdin_as_json(job: dict[str, object], kind: str) -> None:
    result = run("--tool", "demo", "-o", "json", "-", stdin=json.dumps(job))
    assert result.returncode == 0, result.stderr
    (manifest,) = json.loads(result.stdout)
    assert manifest["kind"] == kind
    pod = manifest["spec"]["jobTemplate"]["spec"]["template"] if kind == "CronJob" else \
        manifest["spec"]["template"]
    # without a catalog the image is used as given
    assert pod["spec"]["containers"][0]["image"] == "img"


def test_cronjob_api_version_for_old_clusters() -> None:
    job = {"name": "cron", "cmd": "./x", "imagename": "img", "schedule": "@daily"}
    result = run("--tool", "demo", "--cronjob-api", "batch/v1beta1", "-", stdin=json.dumps(job))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["apiVersion"] == "batch/v1beta1"


def test_every_problem_of_a_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "jobs.yaml"
    bad.write_text(
        "- {name: Bad_Name, command: ./x, image: python3.11}\n"
        "- {name: retry9, command: ./x, image: python3.11, retry: 9}\n"
        "- {name: typo, command: ./x, image: python3.11, shedule: '@daily'}\n"
        "- {name: badcron, command: ./x, image: python3.11, schedule: '61 * * * *'}\n"
        "- {name: noimage, command: ./x, image: python3.99}\n"
        "- {name: reboot, command: ./x, image: python3.11, schedule: '@reboot'}\n"
    )
    result = run("--tool", "demo", "--images", str(CATALOG), str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert len(errors) == 6, errors
    expected = [
        "error: Bad_Name.name: 'Bad_Name' is not allowed, use lower case letters",
        "error: retry9.retry: 9 is not allowed, use 0 to 5",
        "error: typo.shedule: is not a known key, did you mean 'schedule'?",
        "error: badcron.schedule: minute field: 61 is out of range, use 0 to 59",
        'error: noimage.image: "python3.99" is not a known image',
        "error: reboot.schedule: @reboot is not supported",
    ]
    for line, start in zip(errors, expected, strict=True):
        assert line.startswith(start), (line, start)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--tool", "demo", "/nonexistent/jobs.yaml"], "",
         "error: cannot read /nonexistent/jobs.yaml: No such file or directory"),
        (["--tool", "Bad_Tool", "-"], "[]", 'error: tool: "Bad_Tool" is not a valid tool name'),
        (["--tool", "demo", "-"], "- name: a\n  command: [x\n",
         "error: not valid YAML at line 3, column 1"),
        (["--tool", "demo", "-"], '{"name": "a", "cmd": "x", "imagename": "i", "retry": 9}',
         "error: retry: 9 is not allowed, use 0 to 5"),
        (["--tool", "demo", "--cronjob-api", "batch/v1beta1", "-"],
         '{"name": "a", "cmd": "x", "imagename": "i", "schedule": "@daily", "timezone": "UTC"}',
         "error: timezone: 'UTC' cannot be used"),
    ],
)
def test_bad_input_exits_1_with_a_message(args: list[str], stdin: str, message: str) -> None:
    result = run(*args, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_catalog_is_reported(tmp_path: Path) -> None:
    catalog = tmp_path / "images.yaml"
    catalog.write_text("- not a mapping\n")
    result = run("--tool", "demo", "--images", str(catalog), "-", stdin="[]")
    assert result.returncode == 1
    assert "catalog" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    result = run("--cronjob-api", "batch/v2", "x")
    assert result.returncode == 2
    assert "--tool" in result.stderr or "invalid choice" in result.stderr
