"""The JSON shapes of results: modern and legacy job views, images, quota, plans, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

import attrs
import pytest
from hypothesis import given, settings

from tests.strategies import job_specs
from tjf_core.convert import job_from_api, job_to_yaml_entry
from tjf_core.errors import InvalidInputError, InvalidJobError, NotFoundError, Problem, TjfError
from tjf_core.identity import ToolIdentity
from tjf_core.images import Image, ImageState
from tjf_core.model import JobKind, JobSpec
from tjf_core.plan import make_plan
from tjf_core.quota import QuotaCategory, QuotaItem
from tjf_core.service import ApplyResult, Job, JobList, JobService
from tjf_core.status import JobStatus, StatusShort
from tjf_core.testing import FakeClock, InMemoryRuntime
from tjf_core.views import (
    error_messages,
    image_view,
    job_list_view,
    job_view,
    legacy_job_view,
    messages_view,
    plan_view,
    quota_view,
    status_view,
)

PYTHON = Image(shortname="python3.11", url="docker-registry.example/python311",
               state=ImageState.STABLE)
OLD = Image(shortname="python3.7", url="docker-registry.example/python37",
            state=ImageState.DEPRECATED)
#: The extra keys job_view adds to the spec's fields.
EXTRA = {"image_state", "schedule_actual", "status", "status_short", "status_long"}


def _status(**changes: Any) -> JobStatus:
    status = JobStatus(short=StatusShort.RUNNING, duration=timedelta(minutes=2, seconds=5),
                       up_to_date=True, messages=("pulling image",),
                       status_short="Running for 2m5s", status_long="pod is running")
    return attrs.evolve(status, **changes)


def _job(spec: JobSpec, *, image: Image | None = PYTHON, schedule_actual: str | None = None,
         status: JobStatus | None = None) -> Job:
    return Job(spec=spec, status=status or _status(), image=image, schedule_actual=schedule_actual)


def test_job_view_is_the_spec_plus_status() -> None:
    spec = JobSpec(name="web", command="./serve", image="python3.11", kind="continuous", port=8000)
    view = job_view(_job(spec))
    assert view["name"] == "web"
    assert view["command"] == "./serve"
    assert view["kind"] == "continuous"
    assert view["port"] == 8000
    assert view["memory"] == "512Mi"
    assert view["image_state"] == "stable"
    assert "schedule_actual" not in view  # only scheduled jobs have one; nulls are left out
    assert view["status"] == {
        "short": "running", "duration": 125, "up_to_date": True, "messages": ["pulling image"],
        "previous_schedule": None, "next_schedule": None, "exit_code": None,
    }
    assert view["status_short"] == "Running for 2m5s"
    assert view["status_long"] == "pod is running"


def test_job_view_of_a_scheduled_job_has_its_times() -> None:
    spec = JobSpec(name="daily", command="./run", image="python3.11", schedule="@daily")
    status = _status(short=StatusShort.PENDING, duration=None,
                     previous_schedule=datetime(2024, 5, 1, 3, 17, tzinfo=UTC),
                     next_schedule=datetime(2024, 5, 2, 3, 17, tzinfo=UTC))
    view = job_view(_job(spec, schedule_actual="17 3 * * *", status=status))
    assert view["schedule"] == "@daily"
    assert view["schedule_actual"] == "17 3 * * *"
    assert view["status"]["duration"] is None
    assert view["status"]["previous_schedule"] == "2024-05-01T03:17:00Z"
    assert view["status"]["next_schedule"] == "2024-05-02T03:17:00Z"


def test_the_exit_code_of_a_finished_run_is_in_the_status() -> None:
    spec = JobSpec(name="once", command="./run", image="python3.11")
    status = _status(short=StatusShort.FAILED, exit_code=3)
    assert job_view(_job(spec, status=status))["status"]["exit_code"] == 3
    assert status_view(_status(short=StatusShort.SUCCEEDED, exit_code=0))["exit_code"] == 0


def test_an_image_the_catalog_lost_has_an_unknown_state() -> None:
    spec = JobSpec(name="a", command="x", image="python2")
    assert job_view(_job(spec, image=None))["image_state"] == "unknown"
    assert legacy_job_view(_job(spec, image=OLD))["image_state"] == "deprecated"


@settings(max_examples=200)
@given(spec=job_specs())
def test_the_modern_view_reads_back_as_the_same_spec(spec: JobSpec) -> None:
    view = job_view(_job(spec))
    json.dumps(view)  # plain JSON data
    fields = {k: v for k, v in view.items() if k not in EXTRA}
    assert job_from_api(fields) == spec


def test_legacy_view_has_the_2023_client_fields() -> None:
    spec = JobSpec(name="bot", command="./bot.sh", image="tf-python311", kind="continuous",
                   emails="onfailure", memory="1Gi")
    view = legacy_job_view(_job(spec))
    assert view == {
        "name": "bot", "cmd": "./bot.sh", "image": "tf-python311", "image_state": "stable",
        "filelog": "True", "filelog_stdout": None, "filelog_stderr": None,
        "emails": "onfailure", "retry": 0, "schedule": None, "schedule_actual": None,
        "continuous": True, "memory": "1Gi", "status_short": "Running for 2m5s",
        "status_long": "pod is running",
    }


def test_legacy_view_of_a_scheduled_job_without_filelog() -> None:
    spec = JobSpec(name="cron", command="./c", image="python3.11", schedule="@hourly",
                   filelog=False, retry=2, cpu="250m")
    view = legacy_job_view(_job(spec, schedule_actual="42 * * * *"))
    assert view["filelog"] == "False"  # the 2023 client compares with the string "True"
    assert view["schedule"] == "@hourly"
    assert view["schedule_actual"] == "42 * * * *"
    assert view["continuous"] is None
    assert view["retry"] == 2
    assert view["cpu"] == "250m"
    assert "memory" not in view  # the default: the client shows "default", load sees no diff


def test_legacy_view_gives_custom_log_files() -> None:
    spec = JobSpec(name="j", command="x", image="python3.11", filelog_stdout="logs/j.txt")
    view = legacy_job_view(_job(spec))
    assert view["filelog_stdout"] == "logs/j.txt"
    assert view["filelog_stderr"] is None


@settings(max_examples=200)
@given(spec=job_specs())
def test_legacy_view_gives_exactly_what_a_jobs_file_would_set(spec: JobSpec) -> None:
    # The 2023 client's `load` compares these keys with the jobs.yaml entry's.
    entry = job_to_yaml_entry(spec)
    view = legacy_job_view(_job(spec))
    assert view.get("memory") == entry.get("mem")
    assert view.get("cpu") == (None if "cpu" not in entry else str(entry["cpu"]))
    assert view["filelog_stdout"] == entry.get("filelog-stdout")
    assert view["filelog_stderr"] == entry.get("filelog-stderr")
    assert view["filelog"] == ("False" if entry.get("no-filelog") else "True")
    assert (view["continuous"] is True) == (spec.kind is JobKind.CONTINUOUS)
    json.dumps(view)


def test_views_of_a_real_listing() -> None:
    clock = FakeClock()
    runtime = InMemoryRuntime(clock=clock)
    service = JobService(runtime, clock=clock)
    tool = ToolIdentity(tool="t", namespace="tool-t", home=PurePosixPath("/data/project/t"))
    service.run(tool, JobSpec(name="b", command="x", image="bookworm"))
    service.run(tool, JobSpec(name="a", command="x", image="bookworm", schedule="@daily"))
    jobs = service.list(tool)
    views = job_list_view(jobs)
    assert [v["name"] for v in views] == ["a", "b"]
    assert views[0]["schedule_actual"] != "@daily"
    assert views[0]["status"]["next_schedule"] is not None
    assert job_list_view(JobList(jobs=())) == []


def test_image_view() -> None:
    assert image_view(PYTHON) == {"shortname": "python3.11",
                                  "image": "docker-registry.example/python311"}


def test_quota_view() -> None:
    categories = [QuotaCategory("Running jobs", (QuotaItem("pods", "4", "1"),)),
                  QuotaCategory("Per-job limits", (QuotaItem("cpu", "1", None),))]
    assert quota_view(categories) == {"categories": [
        {"name": "Running jobs", "items": [{"name": "pods", "limit": "4", "used": "1"}]},
        {"name": "Per-job limits", "items": [{"name": "cpu", "limit": "1", "used": None}]},
    ]}


def test_plan_view_names_actions_and_changed_fields() -> None:
    old = [JobSpec(name="keep", command="x", image="a"), JobSpec(name="edit", command="x",
                                                                 image="a"),
           JobSpec(name="drop", command="x", image="a")]
    new = [JobSpec(name="keep", command="x", image="a"),
           JobSpec(name="edit", command="y", image="a", retry=1),
           JobSpec(name="add", command="x", image="a")]
    view = plan_view(ApplyResult(plan=make_plan(new, old), dry_run=True))
    assert view["dry_run"] is True
    assert view["changed"] is True
    assert view["jobs"] == [
        {"name": "drop", "action": "delete", "changed_fields": [], "stale": False},
        {"name": "add", "action": "create", "changed_fields": [], "stale": False},
        {"name": "edit", "action": "update", "changed_fields": ["command", "retry"],
         "stale": False},
        {"name": "keep", "action": "unchanged", "changed_fields": [], "stale": False},
    ]
    assert view["counts"] == {"create": 1, "update": 1, "delete": 1, "unchanged": 1}


def test_plan_view_of_nothing_to_do() -> None:
    view = plan_view(ApplyResult(plan=make_plan([], []), dry_run=False))
    assert view == {"dry_run": False, "changed": False, "jobs": [],
                    "counts": {"create": 0, "update": 0, "delete": 0, "unchanged": 0}}


def test_messages_view_has_the_three_levels() -> None:
    assert messages_view() == {"info": [], "warning": [], "error": []}
    assert messages_view(warning=("w",), error=["e"]) == {"info": [], "warning": ["w"],
                                                           "error": ["e"]}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NotFoundError("job 'x' does not exist"), ["job 'x' does not exist"]),
        (InvalidJobError([Problem("retry", "9 is not allowed, use 0 to 5")]),
         ["retry: 9 is not allowed, use 0 to 5"]),
        (InvalidJobError([Problem("retry", "bad"), Problem("cpu", "worse")]),
         ["retry: bad", "cpu: worse"]),
        (InvalidInputError([Problem("a.b", "bad")], summary="jobs file: x: y"),
         ["jobs file: x: y", "a.b: bad"]),
        (InvalidInputError([], summary="nothing"), ["nothing"]),
    ],
)
def test_error_messages_name_each_field(error: TjfError, expected: list[str]) -> None:
    assert error_messages(error) == expected


def test_status_view_rounds_down_to_whole_seconds() -> None:
    assert status_view(_status(duration=timedelta(seconds=59.9)))["duration"] == 59
