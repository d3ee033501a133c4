from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from tjf_core.errors import InvalidInputError, InvalidJobError
from tjf_core.model import (
    Concurrency,
    HealthCheck,
    HealthCheckType,
    JobKind,
    JobSpec,
    PortProtocol,
    tool_problems,
)
from tjf_core.quantity import Quantity


def _problems(**fields: object) -> list[str]:
    base: dict[str, object] = {"name": "job", "command": "./run", "image": "python3.11"}
    base.update(fields)
    with pytest.raises(InvalidJobError) as caught:
        JobSpec(**base)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_defaults_are_filled_in_per_kind() -> None:
    one_off = JobSpec(name="a", command="x", image="i")
    assert one_off.kind is JobKind.ONE_OFF
    assert (one_off.filelog_stdout, one_off.filelog_stderr) == ("a.out", "a.err")
    assert one_off.memory == Quantity.parse("512Mi")
    assert one_off.cpu == Quantity.parse("0.5")
    assert one_off.concurrency is None
    assert one_off.replicas is None

    scheduled = JobSpec(name="a", command="x", image="i", schedule="@daily")
    assert scheduled.kind is JobKind.SCHEDULED
    assert scheduled.concurrency is Concurrency.FORBID

    continuous = JobSpec(name="a", command="x", image="i", kind=JobKind.CONTINUOUS, port=80)
    assert continuous.replicas == 1
    assert continuous.port_protocol is PortProtocol.TCP


def test_two_spellings_of_one_job_are_equal() -> None:
    a = JobSpec(name="a", command="x", image="i", cpu="0.5", memory="0.5Gi")
    b = JobSpec(name="a", command="x", image="i", cpu="500m", filelog_stdout="a.out")
    assert a == b
    assert hash(a) == hash(b)


def test_no_filelog_means_no_log_files() -> None:
    spec = JobSpec(name="a", command="x", image="i", filelog=False)
    assert spec.filelog_stdout is None
    assert spec.filelog_stderr is None


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(name="Bad_Name", retry=9, timeout=0, cpu="0", schedule="61 * * * *")
    assert "retry: 9 is not allowed, use 0 to 5" in problems
    assert any(p.startswith("name: 'Bad_Name' is not allowed") for p in problems)
    assert "timeout: 0 is not allowed, use a number of seconds >= 1" in problems
    assert any(p.startswith("cpu: 0 is not allowed") for p in problems)
    assert any(p.startswith("schedule: minute field: 61 is out of range") for p in problems)
    assert len(problems) == 5


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x" * 53}, "name: 'xxxx"),
        ({"name": ""}, "name: is required"),
        ({"command": "  "}, "command: is required"),
        ({"image": ""}, "image: is required"),
        ({"timezone": "UTC"}, "timezone: is only allowed for scheduled jobs"),
        ({"schedule": "@daily", "timezone": "Mars/Base"}, "timezone: 'Mars/Base' is not a known"),
        ({"schedule": "@reboot"}, "schedule: @reboot is not supported"),
        ({"kind": JobKind.SCHEDULED}, "schedule: is required for a scheduled job"),
        ({"replicas": 2}, "replicas: is only allowed for continuous jobs"),
        ({"kind": JobKind.CONTINUOUS, "replicas": 0}, "replicas: 0 is not allowed, use 1 or more"),
        ({"kind": JobKind.CONTINUOUS, "retry": 1}, "retry: is only allowed for one-off and sch"),
        ({"kind": JobKind.CONTINUOUS, "timeout": 5}, "timeout: is only allowed for one-off and"),
        ({"kind": JobKind.CONTINUOUS, "port": 70000}, "port: 70000 is not allowed, use 1 to 65535"),
        ({"kind": JobKind.CONTINUOUS, "port_protocol": PortProtocol.UDP},
         "port_protocol: is only allowed together with port"),
        ({"kind": JobKind.CONTINUOUS, "port": 80, "name": "9lives"},
         "name: '9lives' cannot name the Service"),
        ({"kind": JobKind.CONTINUOUS,
          "health_check": HealthCheck(type=HealthCheckType.HTTP, path="/h")},
         "health_check: an http health check needs a tcp port"),
        ({"kind": JobKind.CONTINUOUS,
          "health_check": HealthCheck(type=HealthCheckType.SCRIPT)},
         "health_check.script: is required for a script health check"),
        ({"filelog": False, "filelog_stdout": "x.out"},
         "filelog_stdout: is only allowed when filelog is on"),
        ({"filelog_stderr": "../other/x.err"}, "filelog_stderr: '../other/x.err' is not allowed"),
        ({"memory": "1.5"}, "memory: 1500m is not a whole number of bytes"),
        ({"retry": True}, "retry: True is not allowed, use 0 to 5"),
    ],
)
def test_each_rule_names_its_field(fields: dict[str, object], expected: str) -> None:
    problems = _problems(**fields)
    assert any(p.startswith(expected) for p in problems), problems


def test_bad_quantity_from_python_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        JobSpec(name="a", command="x", image="i", memory="lots")
    assert caught.value.problems[0].path == "memory"


def test_absolute_log_paths_must_stay_in_the_home() -> None:
    home = PurePosixPath("/data/project/mytool")
    inside = JobSpec(name="a", command="x", image="i", filelog_stdout="/data/project/mytool/a")
    outside = JobSpec(name="a", command="x", image="i", filelog_stderr="/etc/passwd")
    assert tool_problems(inside, home=home) == []
    assert [str(p) for p in tool_problems(outside, home=home)] == [
        "filelog_stderr: '/etc/passwd' is not allowed: it must be inside /data/project/mytool"
    ]


def test_python_callers_may_spell_choices_as_text() -> None:
    spec = JobSpec(name="a", command="x", image="i", kind="continuous",
                   port=53, port_protocol="udp", emails="onfailure")
    assert spec.kind is JobKind.CONTINUOUS
    assert spec.port_protocol is PortProtocol.UDP
    assert str(spec.emails.value) == "onfailure"
    with pytest.raises(InvalidJobError, match="kind: 'weird' is not allowed, use one of one-off"):
        JobSpec(name="a", command="x", image="i", kind="weird")
