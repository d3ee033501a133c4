from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from tests.strategies import job_specs
from tjf_core.convert import (
    JobsFileEntry,
    dump_jobs_file,
    job_from_api,
    job_from_yaml_entry,
    job_to_api,
    job_to_yaml_entry,
    load_jobs_file,
    spec_from_json,
    spec_to_json,
)
from tjf_core.errors import InvalidInputError, InvalidJobError
from tjf_core.images import ImageCatalog
from tjf_core.model import Emails, HealthCheckType, JobKind, JobSpec


def _api_problems(data: Any) -> list[str]:
    with pytest.raises(InvalidJobError) as caught:
        job_from_api(data)
    return [str(p) for p in caught.value.problems]


def _yaml_problems(text: str) -> list[str]:
    with pytest.raises(InvalidInputError) as caught:
        load_jobs_file(text)
    return [str(p) for p in caught.value.problems]


# --- API JSON -------------------------------------------------------------------------------


def test_old_aliases_and_new_names_give_the_same_spec() -> None:
    old = job_from_api({"name": "bot", "cmd": "./bot", "imagename": "python3.11",
                        "continuous": True})
    new = job_from_api({"name": "bot", "command": "./bot", "image": "python3.11",
                        "kind": "continuous"})
    assert old == new
    assert old.kind is JobKind.CONTINUOUS


def test_schedule_makes_a_scheduled_job_and_nulls_mean_defaults() -> None:
    spec = job_from_api({"name": "a", "command": "x", "image": "i", "schedule": "@daily",
                         "continuous": False, "timeout": None, "emails": "ONFAILURE"})
    assert spec.kind is JobKind.SCHEDULED
    assert spec.timeout is None
    assert spec.emails is Emails.ONFAILURE


def test_api_output_is_canonical() -> None:
    spec = job_from_api({"name": "a", "cmd": "x", "imagename": "i", "cpu": 0.5, "memory": "1G"})
    assert job_to_api(spec) == {
        "name": "a", "command": "x", "image": "i", "kind": "one-off", "filelog": True,
        "filelog_stdout": "a.out", "filelog_stderr": "a.err", "emails": "none", "retry": 0,
        "memory": "1G", "cpu": "500m", "mount": "all",
    }


def test_every_problem_of_a_document_is_reported_with_its_key() -> None:
    problems = _api_problems({
        "name": "ok", "cmd": 5, "imagename": "i", "retry": 9, "cpu": "lots",
        "emails": "sometimes", "filelog": "maybe", "helth_check": {}, "port": "80x",
    })
    assert "helth_check: is not a known key, did you mean 'health_check'?" in problems
    assert "command: 5 is not allowed, use text" in problems
    assert "retry: 9 is not allowed, use 0 to 5" in problems
    assert "emails: 'sometimes' is not allowed, use one of none, all, onfinish, onfailure" \
        in problems
    assert "filelog: 'maybe' is not allowed, use true or false" in problems
    assert "port: '80x' is not allowed, use a whole number" in problems
    assert any(p.startswith('cpu: "lots" is not a Kubernetes quantity') for p in problems)
    assert len(problems) == 7


def test_types_are_strict() -> None:
    assert "name: 5 is not allowed, use text" in _api_problems(
        {"name": 5, "command": "x", "image": "i"})
    assert "retry: true is not allowed, use a whole number" in _api_problems(
        {"name": "a", "command": "x", "image": "i", "retry": True})
    assert "retry: 1.5 is not allowed, use a whole number" in _api_problems(
        {"name": "a", "command": "x", "image": "i", "retry": 1.5})
    # form bodies send numbers as text: digits are fine
    assert job_from_api({"name": "a", "command": "x", "image": "i", "retry": "2"}).retry == 2


def test_missing_required_fields_and_non_mappings() -> None:
    assert sorted(_api_problems({})) == ["command: is required", "image: is required",
                                         "name: is required"]
    assert _api_problems(["a"]) == ["a job must be a mapping of keys to values, got a list"]


def test_conflicting_spellings() -> None:
    assert "imagename: give either 'image' or 'imagename', not both" in _api_problems(
        {"name": "a", "command": "x", "image": "i", "imagename": "j"})
    assert "continuous: contradicts kind 'one-off'" in _api_problems(
        {"name": "a", "command": "x", "image": "i", "kind": "one-off", "continuous": True})


def test_nested_health_check_keys() -> None:
    spec = job_from_api({"name": "a", "command": "x", "image": "i", "continuous": True,
                         "port": 8080, "health_check": {"type": "http", "path": "/ok"}})
    assert spec.health_check is not None
    assert spec.health_check.type is HealthCheckType.HTTP
    assert "health_check.paht: is not a known key, did you mean 'path'?" in _api_problems(
        {"name": "a", "command": "x", "image": "i", "continuous": True, "port": 1,
         "health_check": {"type": "http", "paht": "/"}})


@settings(max_examples=300)
@given(job_specs())
def test_api_json_round_trip(spec: JobSpec) -> None:
    assert job_from_api(job_to_api(spec)) == spec
    assert spec_from_json(spec_to_json(spec)) == spec
    # through real JSON text, as the API sends it
    assert job_from_api(json.loads(json.dumps(job_to_api(spec)))) == spec


def test_spec_annotation_is_compact_and_sorted() -> None:
    text = spec_to_json(JobSpec(name="a", command="x", image="i"))
    assert " " not in text
    assert list(json.loads(text)) == sorted(json.loads(text))
    with pytest.raises(InvalidJobError, match="not valid JSON"):
        spec_from_json("{nope")


# --- jobs.yaml ------------------------------------------------------------------------------


def test_yaml_entry_keys() -> None:
    entry = job_from_yaml_entry({
        "name": "a", "command": "x", "image": "i", "mem": "1Gi", "no-filelog": True,
        "wait": True, "retry": 1,
    })
    assert entry.wait is True
    assert entry.spec.filelog is False
    assert str(entry.spec.memory) == "1Gi"


def test_yaml_floats_are_read_as_written() -> None:
    entry = job_from_yaml_entry(yaml.safe_load("{name: a, command: x, image: i, cpu: 0.25}"))
    assert str(entry.spec.cpu) == "250m"


def test_yaml_unknown_key_suggests_the_yaml_spelling() -> None:
    problems = _yaml_problems("- {name: a, command: x, image: i, memory: 1Gi, scedule: '@daily'}")
    assert "a.memory: is not a known key, did you mean 'mem'?" in problems
    assert "a.scedule: is not a known key, did you mean 'schedule'?" in problems


def test_yaml_problems_are_placed_under_the_job_and_use_dash_keys() -> None:
    problems = _yaml_problems(
        "- {name: good, command: x, image: i}\n"
        "- {name: bad, command: x, image: i, retry: 9, mem: lots, filelog-stdout: ../x}\n"
        "- {command: x, image: i}\n"
        "- {name: good, command: y, image: i}\n"
        "- {name: w, command: x, image: i, schedule: '@daily', wait: true}\n"
    )
    assert "bad.retry: 9 is not allowed, use 0 to 5" in problems
    assert any(p.startswith('bad.mem: "lots" is not a Kubernetes quantity') for p in problems)
    assert any(p.startswith("bad.filelog-stdout: '../x' is not allowed") for p in problems)
    assert "[2].name: is required" in problems
    assert "[3].name: 'good' is already used by entry [0]" in problems
    assert "w.wait: is only allowed for one-off jobs" in problems
    assert len(problems) == 6


def test_yaml_syntax_errors_say_where() -> None:
    problems = _yaml_problems("- name: a\n  command: [unclosed\n")
    assert len(problems) == 1
    assert problems[0].startswith("not valid YAML at line 3, column 1")


def test_jobs_file_must_be_a_list() -> None:
    assert _yaml_problems("name: a") == ["a jobs file must be a list of jobs, got a mapping"]
    assert load_jobs_file("") == []


def test_dump_leaves_out_defaults() -> None:
    spec = JobSpec(name="a", command="x", image="i", schedule="@daily", memory="512Mi")
    assert job_to_yaml_entry(spec) == {"name": "a", "command": "x", "image": "i",
                                       "schedule": "@daily"}
    continuous = JobSpec(name="a", command="x", image="i", kind=JobKind.CONTINUOUS, port=80,
                         filelog=False)
    assert job_to_yaml_entry(continuous) == {"name": "a", "command": "x", "image": "i",
                                             "continuous": True, "no-filelog": True, "port": 80}


@settings(max_examples=300)
@given(job_specs())
def test_jobs_yaml_round_trip(spec: JobSpec) -> None:
    text = dump_jobs_file([spec])
    assert load_jobs_file(text) == [JobsFileEntry(spec=spec)]
    entry = job_to_yaml_entry(spec, wait=spec.kind is JobKind.ONE_OFF)
    assert job_from_yaml_entry(entry) == JobsFileEntry(spec=spec, wait=entry.get("wait", False))


def test_dump_keeps_characters_yaml_would_fold() -> None:
    spec = JobSpec(name="a", command="echo a\x85b\u2028c\u2029d é", image="i")
    assert load_jobs_file(dump_jobs_file([spec]))[0].spec == spec


def test_jobs_file_images_are_checked_against_a_catalog() -> None:
    catalog = ImageCatalog.from_yaml("python3.11: {image: registry/py311:latest}\n")
    text = "- {name: a, command: x, image: python3.11}\n- {name: b, command: x, image: py2}\n"
    assert len(load_jobs_file(text)) == 2  # without a catalog, any image name is taken
    with pytest.raises(InvalidInputError) as caught:
        load_jobs_file(text, catalog=catalog)
    (problem,) = caught.value.problems
    assert problem.path == "b.image"
    assert "is not a known image" in problem.message
