"""Tests of one pod's reading: buckets, messages, the legacy long text and the dict readers.

The builders here make pods as the Kubernetes API returns them; test_status reuses them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.model import JobSpec
from tjf_core.pods import (
    EPOCH,
    PodBucket,
    created_at,
    dicts_at,
    elapsed,
    explain_pod,
    int_at,
    newest_of,
    pod_bucket,
    pod_messages,
    rfc3339,
    run_of,
    text_at,
    time_at,
)

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
TOOL = "mytool"
Obj = dict[str, Any]


# --- builders ----------------------------------------------------------------------------------


def ago(seconds: float = 0) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": "toolforge-jobs-framework",
        "app.kubernetes.io/created-by": TOOL,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/version": "2",
    }


def meta(name: str, component: str, *, created: float = 3600, **extra: Any) -> Obj:
    return {
        "name": name,
        "namespace": f"tool-{TOOL}",
        "labels": labels(name.split("/")[0], component),
        "creationTimestamp": ago(created),
        **extra,
    }


def running(since: float = 600) -> Obj:
    return {"running": {"startedAt": ago(since)}}


def waiting(reason: str, message: str = "") -> Obj:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def terminated(code: int, reason: str, *, started: float = 900, finished: float = 300) -> Obj:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": ago(started),
            "finishedAt": ago(finished),
        }
    }


def pod(
    name: str,
    *,
    job_name: str,
    component: str = "jobs",
    phase: str = "Running",
    state: Obj | None = None,
    restarts: int = 0,
    last: Obj | None = None,
    scheduled: bool = True,
    created: float = 1800,
    run: str | None = None,
    unschedulable: str = "",
) -> Obj:
    metadata = meta(job_name, component, created=created)
    metadata["name"] = name
    if run is not None:
        metadata["labels"]["batch.kubernetes.io/job-name"] = run
        metadata["ownerReferences"] = [{"kind": "Job", "name": run, "controller": True}]
    container: Obj = {
        "name": "job",
        "state": state if state is not None else running(),
        "lastState": last or {},
        "restartCount": restarts,
        "ready": phase == "Running",
    }
    scheduled_condition = {"type": "PodScheduled", "status": "True" if scheduled else "False"}
    if unschedulable:
        scheduled_condition |= {"reason": "Unschedulable", "message": unschedulable}
    status: Obj = {
        "phase": phase,
        "conditions": [scheduled_condition],
        "startTime": ago(created - 5),
    }
    if scheduled:
        status["containerStatuses"] = [container]
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": "node-1" if scheduled else None,
            "containers": [{"name": "job", "resources": {"limits": {"memory": "512Mi"}}}],
        },
        "status": status,
    }


SPEC = JobSpec(name="build", command="./build.sh", image="python3.11", memory="1Gi")


# --- pod buckets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "bucket"),
    [
        (pod("p", job_name="j", phase="Failed", state=terminated(1, "Error")), PodBucket.FAILED),
        (pod("p", job_name="j", phase="Pending", scheduled=False), PodBucket.SCHEDULING),
        (
            pod("p", job_name="j", phase="Pending", state=waiting("ContainerCreating")),
            PodBucket.INITIALIZING,
        ),
        (
            pod("p", job_name="j", phase="Running", state=waiting("ContainerCreating")),
            PodBucket.INITIALIZING,
        ),
        (pod("p", job_name="j"), PodBucket.RUNNING),
        (
            pod(
                "p",
                job_name="j",
                state=waiting("CrashLoopBackOff"),
                restarts=4,
                last=terminated(1, "Error"),
            ),
            PodBucket.RESTARTED,
        ),
        (
            pod("p", job_name="j", state=running(30), restarts=1, last=terminated(2, "Error")),
            PodBucket.RESTARTED,
        ),
        (
            pod("p", job_name="j", phase="Succeeded", state=terminated(0, "Completed")),
            PodBucket.SUCCEEDED,
        ),
        (pod("p", job_name="j", phase="Unknown", state={}), PodBucket.UNKNOWN),
        ({"status": "garbage"}, PodBucket.UNKNOWN),
    ],
)
def test_pod_bucket(built: Obj, bucket: PodBucket) -> None:
    assert pod_bucket(built, now=NOW) is bucket


def test_bucket_priority_failed_beats_crash_loop_signs() -> None:
    built = pod("p", job_name="j", phase="Failed", state=waiting("CrashLoopBackOff"), restarts=3)
    assert pod_bucket(built, now=NOW) is PodBucket.FAILED


def test_bucket_priority_initializing_beats_crash_loop() -> None:
    built = pod(
        "p",
        job_name="j",
        state=waiting("ContainerCreating"),
        restarts=2,
        last=terminated(1, "Error"),
    )
    assert pod_bucket(built, now=NOW) is PodBucket.INITIALIZING


def test_a_crash_is_forgotten_after_ten_minutes_of_good_running() -> None:
    recent = pod("p", job_name="j", state=running(9 * 60), restarts=1, last=terminated(1, "Error"))
    stable = pod("p", job_name="j", state=running(11 * 60), restarts=1, last=terminated(1, "Error"))
    clean_exit = pod("p", job_name="j", state=running(5), restarts=1, last=terminated(0, "Done"))
    assert pod_bucket(recent, now=NOW) is PodBucket.RESTARTED
    assert pod_bucket(stable, now=NOW) is PodBucket.RUNNING
    assert pod_bucket(clean_exit, now=NOW) is PodBucket.RUNNING


# --- messages and the legacy long text ---------------------------------------------------------


def test_pod_messages_use_the_spec_memory_when_the_container_has_no_limit() -> None:
    oom = pod("p", job_name="j", phase="Failed", state=terminated(137, "OOMKilled"))
    oom["spec"]["containers"] = [{"name": "job"}]
    assert pod_messages(oom, SPEC) == [
        "Container job ran out of memory (OOMKilled, limit 1Gi); ask for more memory with --mem"
    ]


def test_pod_messages_of_no_pod_and_of_a_healthy_pod_are_empty() -> None:
    assert pod_messages(None, SPEC) == []
    assert pod_messages(pod("p", job_name="j"), SPEC) == []


def test_status_long_of_no_pod() -> None:
    assert explain_pod(None) == "No pod exists for this job."


def test_status_long_of_an_unscheduled_pod() -> None:
    stuck = pod("build-abcde", job_name="build", phase="Pending", scheduled=False, created=65)
    assert explain_pod(stuck) == (
        "Pod 'build-abcde' is in phase 'Pending'. Started at 2026-11-26T11:59:00Z."
    )


def test_status_long_explains_states_and_restarts() -> None:
    crashed = pod(
        "build-abcde",
        job_name="build",
        state=waiting("CrashLoopBackOff", "back-off"),
        restarts=3,
        last=terminated(2, "Error", started=400, finished=200),
    )
    assert explain_pod(crashed) == (
        "Pod 'build-abcde' is in phase 'Running'. Restarted 3 times. "
        "State 'waiting' for reason 'CrashLoopBackOff'. "
        "Last state 'terminated' for reason 'Error', exit code 2, "
        "started at 2026-11-26T11:53:20Z, finished at 2026-11-26T11:56:40Z."
    )


# --- which pod, which run ----------------------------------------------------------------------


def test_newest_of_breaks_ties_by_name_and_puts_undated_objects_first() -> None:
    first, second = pod("p-a", job_name="j", created=60), pod("p-b", job_name="j", created=60)
    undated: Obj = {"metadata": {"name": "z"}}
    assert newest_of([second, first, undated]) is second
    assert newest_of([undated]) is undated
    assert newest_of([]) is None
    assert created_at(undated) == EPOCH


def test_run_of_reads_the_owner_then_the_job_name_label() -> None:
    owned = pod("p", job_name="backup", run="backup-29400000")
    assert run_of(owned) == "backup-29400000"
    del owned["metadata"]["ownerReferences"]
    assert run_of(owned) == "backup-29400000"
    assert run_of(pod("p", job_name="backup")) is None


# --- readers -----------------------------------------------------------------------------------


def test_readers_give_none_for_what_cannot_be_read() -> None:
    obj: Obj = {"a": {"n": True, "s": "", "l": [1, {"k": 2}], "t": "yesterday"}}
    assert int_at(obj, "a", "n") is None  # a bool is not a count
    assert text_at(obj, "a", "s") is None
    assert text_at(obj, "a", "s", "deeper") is None
    assert dicts_at(obj, "a", "l") == [{"k": 2}]
    assert dicts_at(obj, "a", "n") == []
    assert time_at(obj, "a", "t") is None
    assert time_at({"t": "2026-11-26T12:00:00"}, "t") == NOW  # no zone is UTC


def test_elapsed_is_never_negative_and_unknown_without_a_start() -> None:
    assert elapsed(NOW, NOW - timedelta(seconds=5)) == timedelta(0)
    assert elapsed(None, NOW) is None


@settings(max_examples=200)
@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
    )
)
def test_rfc3339_reads_back_to_the_same_second(when: datetime) -> None:
    assert time_at({"t": rfc3339(when)}, "t") == when.replace(microsecond=0)
