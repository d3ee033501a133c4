"""Tests of job status: the legacy strings per kind, grouping and fire times (pods: test_pods)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_pods import NOW, TOOL, Obj, ago, meta, pod, running, terminated, waiting
from tjf_core.model import JobKind, JobSpec
from tjf_core.schedule import next_fire, previous_fire
from tjf_core.status import JobObjects, StatusShort, format_duration, group_objects, job_status

# --- builders ----------------------------------------------------------------------------------


def condition(kind: str, *, reason: str = "", message: str = "", when: float = 0) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": ago(when),
    }


def job(
    name: str,
    *,
    component: str = "jobs",
    started: float | None = 3600,
    conditions: tuple[Obj, ...] = (),
    completed: float | None = None,
    failed: int | None = None,
    backoff: int = 0,
    parent: str | None = None,
    created: float = 3600,
) -> Obj:
    metadata = meta(name, component, created=created)
    if parent is not None:
        metadata["labels"]["app.kubernetes.io/name"] = parent
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": parent, "controller": True}
        ]
    status: Obj = {"conditions": list(conditions)}
    if started is not None:
        status["startTime"] = ago(started)
    if completed is not None:
        status["completionTime"] = ago(completed)
    if failed is not None:
        status["failed"] = failed
    return {
        "metadata": metadata,
        "spec": {"backoffLimit": backoff, "template": {"spec": {"restartPolicy": "Never"}}},
        "status": status,
    }


def cronjob(
    name: str, *, schedule: str = "17 * * * *", tz: str | None = None, last: float | None = None
) -> Obj:
    spec: Obj = {"schedule": schedule, "jobTemplate": {"spec": {}}}
    if tz is not None:
        spec["timeZone"] = tz
    status: Obj = {} if last is None else {"lastScheduleTime": ago(last)}
    return {"metadata": meta(name, "cronjobs"), "spec": spec, "status": status}


def deployment(name: str, *, replicas: int = 1, available: int | None = None) -> Obj:
    status: Obj = {"replicas": replicas}
    if available is not None:
        status["availableReplicas"] = available
    return {
        "metadata": meta(name, "deployments"),
        "spec": {"replicas": replicas, "template": {}},
        "status": status,
    }


def event(kind: str, name: str, reason: str, message: str, *, when: float = 60) -> Obj:
    return {
        "metadata": {"name": f"{name}.17f0a", "creationTimestamp": ago(when)},
        "involvedObject": {"kind": kind, "name": name, "namespace": f"tool-{TOOL}"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "lastTimestamp": ago(when),
        "count": 3,
    }


def quota_event(kind: str, name: str, *, when: float = 60) -> Obj:
    message = (
        f'Error creating: pods "{name}-x7k2p" is forbidden: exceeded quota: tool-{TOOL}, '
        "requested: limits.cpu=500m,limits.memory=512Mi,requests.cpu=250m, "
        "used: limits.cpu=2,limits.memory=2Gi,requests.cpu=2, "
        "limited: limits.cpu=2,limits.memory=2Gi,requests.cpu=2"
    )
    return event(kind, name, "FailedCreate", message, when=when)


ONE_OFF = JobSpec(name="build", command="./build.sh", image="python3.11")
SCHEDULED = JobSpec(name="backup", command="./backup.sh", image="python3.11", schedule="17 * * * *")
CONTINUOUS = JobSpec(name="bot", command="./bot.py", image="python3.11", kind=JobKind.CONTINUOUS)


def one_off(main: Obj, *pods: Obj, events: tuple[Obj, ...] = ()) -> Any:
    objects = JobObjects(name="build", main=main, pods=pods, events=events)
    return job_status(objects, spec=ONE_OFF, now=NOW)


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (125, "2m5s"),
        (3723, "1h2m3s"),
        (3600, "1h0m0s"),
        (3 * 86400 + 4 * 3600 + 59, "3d4h"),
        (-5, "0s"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=86399))
def test_format_duration_below_a_day_is_exact(seconds: int) -> None:
    text = format_duration(timedelta(seconds=seconds))
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
    assert total == seconds


# --- one-off jobs ------------------------------------------------------------------------------


def test_completed() -> None:
    main = job("build", started=600, completed=100, conditions=(condition("Complete", when=100),))
    done = pod("build-abcde", job_name="build", phase="Succeeded", state=terminated(0, "Completed"))
    status = one_off(main, done)
    assert (status.status_short, status.short) == ("Completed", StatusShort.SUCCEEDED)
    assert status.duration == timedelta(seconds=500)
    assert status.messages == ()


def test_failed_backoff_limit() -> None:
    failure = condition(
        "Failed",
        reason="BackoffLimitExceeded",
        message="Job has reached the specified backoff limit",
        when=10,
    )
    main = job("build", started=70, conditions=(failure,), failed=1)
    dead = pod("build-abcde", job_name="build", phase="Failed", state=terminated(3, "Error"))
    status = one_off(main, dead)
    assert (status.status_short, status.short) == ("Failed", StatusShort.FAILED)
    assert status.duration == timedelta(seconds=60)
    assert any("BackoffLimitExceeded" in m for m in status.messages)
    assert "Container job exited with code 3 (Error)" in status.messages


def test_failed_deadline_exceeded() -> None:
    failure = condition(
        "Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline"
    )
    status = one_off(job("build", conditions=(failure,)))
    assert status.status_short == "Failed"
    assert status.messages[0] == (
        "The job failed (DeadlineExceeded): Job was active longer than specified deadline"
    )


def test_failed_out_of_memory_says_so() -> None:
    failure = condition("Failed", reason="BackoffLimitExceeded", message="backoff")
    oom = pod("build-abcde", job_name="build", phase="Failed", state=terminated(137, "OOMKilled"))
    status = one_off(job("build", conditions=(failure,)), oom)
    assert any("OOMKilled, limit 512Mi" in m and "--mem" in m for m in status.messages)


def test_running_for() -> None:
    status = one_off(job("build", started=3723), pod("build-abcde", job_name="build"))
    assert (status.status_short, status.short) == ("Running for 1h2m3s", StatusShort.RUNNING)
    assert status.duration == timedelta(seconds=3723)


def test_a_failed_attempt_that_is_retried_is_still_running() -> None:
    main = job("build", started=125, failed=1, backoff=2)
    dead = pod("build-abcde", job_name="build", phase="Failed", state=terminated(1, "Error"))
    status = one_off(main, dead)
    assert (status.status_short, status.short) == ("Running for 2m5s", StatusShort.RUNNING)
    assert status.messages[0] == "Attempt 1 failed; Kubernetes retries it"


def test_a_failed_attempt_without_retries_left_is_failed() -> None:
    dead = pod("build-abcde", job_name="build", phase="Failed", state=terminated(1, "Error"))
    status = one_off(job("build", failed=1, backoff=0), dead)
    assert (status.status_short, status.short) == ("Failed", StatusShort.FAILED)


def test_unable_to_start_out_of_quota() -> None:
    status = one_off(job("build", started=30), events=(quota_event("Job", "build"),))
    assert status.status_short == "Unable to start, out of quota for cpu, memory"
    assert status.short is StatusShort.PENDING
    assert status.messages == (
        "Unable to start: out of quota for limits.cpu (used 2 of 2, requested 500m), "
        "limits.memory (used 2Gi of 2Gi, requested 512Mi), requests.cpu (used 2 of 2, "
        f"requested 250m) in quota tool-{TOOL}",
    )


def test_a_quota_refusal_before_the_newest_pod_is_over() -> None:
    events = (quota_event("Job", "build", when=3000),)
    status = one_off(job("build"), pod("build-abcde", job_name="build", created=60), events=events)
    assert status.short is StatusShort.RUNNING


def test_other_failed_create_events_are_not_quota() -> None:
    other = event("Job", "build", "FailedCreate", 'pods "build-x" is forbidden: no service account')
    status = one_off(job("build"), events=(other,))
    assert status.status_short == "Pending"


def test_pending_while_scheduling() -> None:
    stuck = pod(
        "build-abcde",
        job_name="build",
        phase="Pending",
        scheduled=False,
        unschedulable="0/3 nodes are available: 3 Insufficient memory.",
    )
    status = one_off(job("build"), stuck)
    assert (status.status_short, status.short) == ("Pending", StatusShort.PENDING)
    assert status.messages == (
        "Waiting to be scheduled: 0/3 nodes are available: 3 Insufficient memory.",
    )
    assert status.duration is None


def test_pending_while_initializing_names_image_problems() -> None:
    pulling = pod(
        "build-abcde",
        job_name="build",
        phase="Pending",
        state=waiting("ImagePullBackOff", 'Back-off pulling image "x"'),
    )
    status = one_off(job("build"), pulling)
    assert status.status_short == "Pending"
    assert status.messages == (
        'Container job is waiting: ImagePullBackOff (Back-off pulling image "x")',
    )


def test_pending_without_pods() -> None:
    status = one_off(job("build", started=None))
    assert (status.status_short, status.short) == ("Pending", StatusShort.PENDING)
    assert status.status_long == "No pod exists for this job."


def test_failure_target_counts_as_failed() -> None:
    target = condition("FailureTarget", reason="BackoffLimitExceeded", message="limit")
    assert one_off(job("build", conditions=(target,))).status_short == "Failed"


def test_a_succeeded_pod_before_the_job_condition_is_completed() -> None:
    done = pod(
        "build-abcde",
        job_name="build",
        phase="Succeeded",
        state=terminated(0, "Completed", started=100, finished=40),
    )
    status = one_off(job("build", started=100), done)
    assert (status.status_short, status.short) == ("Completed", StatusShort.SUCCEEDED)
    assert status.duration == timedelta(seconds=60)


def test_a_naive_now_is_taken_as_utc() -> None:
    objects = JobObjects(
        name="build", main=job("build", started=45), pods=(pod("build-abcde", job_name="build"),)
    )
    naive = NOW.replace(tzinfo=None)
    assert job_status(objects, spec=ONE_OFF, now=naive).status_short == "Running for 45s"


def test_unknown() -> None:
    lost = pod("build-abcde", job_name="build", phase="Unknown", state={})
    status = one_off(job("build"), lost)
    assert (status.status_short, status.short) == ("Unknown", StatusShort.UNKNOWN)


def test_the_newest_pod_decides() -> None:
    old = pod(
        "build-aaaaa", job_name="build", phase="Failed", state=terminated(1, "Error"), created=600
    )
    new = pod("build-bbbbb", job_name="build", created=60)
    status = one_off(job("build", failed=1, backoff=3), old, new)
    assert status.short is StatusShort.RUNNING
    assert "build-bbbbb" in status.status_long


def test_up_to_date_is_passed_through() -> None:
    objects = JobObjects(name="build", main=job("build"))
    assert not job_status(objects, spec=ONE_OFF, now=NOW, up_to_date=False).up_to_date


# --- scheduled jobs ----------------------------------------------------------------------------


def scheduled(
    main: Obj,
    runs: tuple[Obj, ...] = (),
    pods: tuple[Obj, ...] = (),
    events: tuple[Obj, ...] = (),
    spec: JobSpec = SCHEDULED,
    now: datetime = NOW,
) -> Any:
    objects = JobObjects(name="backup", main=main, jobs=runs, pods=pods, events=events)
    return job_status(objects, spec=spec, now=now, tool=TOOL)


def test_waiting_for_scheduled_time() -> None:
    status = scheduled(cronjob("backup"))
    assert (status.status_short, status.short) == (
        "Waiting for scheduled time",
        StatusShort.PENDING,
    )
    assert status.duration is None


def test_last_schedule_time_after_a_successful_run() -> None:
    run = job(
        "backup-29400000",
        component="cronjobs",
        parent="backup",
        started=2400,
        completed=2280,
        conditions=(condition("Complete"),),
        created=2400,
    )
    status = scheduled(cronjob("backup", last=2400), runs=(run,))
    assert status.status_short == "Last schedule time: 2026-11-26T11:20:00Z"
    assert status.short is StatusShort.SUCCEEDED
    assert status.duration == timedelta(seconds=120)


def test_last_schedule_time_after_a_failed_run() -> None:
    failure = condition("Failed", reason="BackoffLimitExceeded", message="limit reached")
    run = job("backup-29400000", component="cronjobs", parent="backup", conditions=(failure,))
    status = scheduled(cronjob("backup", last=2400), runs=(run,))
    assert status.status_short == "Last schedule time: 2026-11-26T11:20:00Z"
    assert status.short is StatusShort.FAILED
    assert status.messages == ("The job failed (BackoffLimitExceeded): limit reached",)


def test_last_schedule_time_when_the_run_is_gone() -> None:
    status = scheduled(cronjob("backup", last=2400))
    assert (status.status_short, status.short) == (
        "Last schedule time: 2026-11-26T11:20:00Z",
        StatusShort.PENDING,
    )


def test_the_running_job_decides_while_one_runs() -> None:
    old = job(
        "backup-29399940",
        component="cronjobs",
        parent="backup",
        conditions=(condition("Complete"),),
        created=7200,
    )
    now_running = job(
        "backup-29400000", component="cronjobs", parent="backup", started=125, created=130
    )
    pods = (
        pod(
            "backup-29399940-aaaaa",
            job_name="backup",
            component="cronjobs",
            phase="Succeeded",
            state=terminated(0, "Completed"),
            run="backup-29399940",
            created=7200,
        ),
        pod(
            "backup-29400000-bbbbb",
            job_name="backup",
            component="cronjobs",
            run="backup-29400000",
            created=125,
        ),
    )
    status = scheduled(cronjob("backup", last=130), runs=(now_running, old), pods=pods)
    assert (status.status_short, status.short) == ("Running for 2m5s", StatusShort.RUNNING)
    assert "backup-29400000-bbbbb" in status.status_long


def test_a_run_refused_for_quota_on_its_pods() -> None:
    run = job("backup-29400000", component="cronjobs", parent="backup", started=30, created=30)
    events = (quota_event("Job", "backup-29400000", when=20),)
    status = scheduled(cronjob("backup", last=30), runs=(run,), events=events)
    assert status.status_short == "Unable to start, out of quota for cpu, memory"


def test_a_cronjob_refused_for_quota_on_jobs() -> None:
    message = (
        'Error creating job: jobs.batch "backup-29400000" is forbidden: exceeded quota: '
        f"tool-{TOOL}, requested: count/jobs.batch=1, used: count/jobs.batch=15, "
        "limited: count/jobs.batch=15"
    )
    events = (event("CronJob", "backup", "FailedCreate", message, when=30),)
    status = scheduled(cronjob("backup", last=3600), events=events)
    assert (status.status_short, status.short) == (
        "Unable to start, out of quota for jobs",
        StatusShort.PENDING,
    )
    stale = scheduled(cronjob("backup", last=10), events=events)
    assert stale.status_short == "Last schedule time: 2026-11-26T11:59:50Z"


@pytest.mark.parametrize(
    ("now", "previous", "following"),
    [
        # Berlin is UTC+1 in November and UTC+2 in July.
        (NOW, datetime(2026, 11, 26, 8, 30, tzinfo=UTC), datetime(2026, 11, 27, 8, 30, tzinfo=UTC)),
        (
            datetime(2026, 7, 1, 12, tzinfo=UTC),
            datetime(2026, 7, 1, 7, 30, tzinfo=UTC),
            datetime(2026, 7, 2, 7, 30, tzinfo=UTC),
        ),
    ],
)
def test_previous_and_next_schedule_in_the_job_timezone(
    now: datetime, previous: datetime, following: datetime
) -> None:
    spec = JobSpec(
        name="backup",
        command="./b",
        image="python3.11",
        schedule="30 9 * * *",
        timezone="Europe/Berlin",
    )
    status = scheduled(cronjob("backup", schedule="30 9 * * *"), spec=spec, now=now)
    assert status.previous_schedule == previous
    assert status.next_schedule == following
    assert status.next_schedule is not None
    assert status.next_schedule.tzinfo is not None


def test_fire_times_use_the_expanded_schedule_of_the_cronjob() -> None:
    spec = JobSpec(name="backup", command="./b", image="python3.11", schedule="@hourly")
    status = scheduled(cronjob("backup", schedule="42 * * * *"), spec=spec)
    assert status.previous_schedule == datetime(2026, 11, 26, 11, 42, tzinfo=UTC)
    assert status.next_schedule == datetime(2026, 11, 26, 12, 42, tzinfo=UTC)


def test_fire_times_fall_back_to_the_spread_spec_schedule() -> None:
    spec = JobSpec(name="backup", command="./b", image="python3.11", schedule="@daily")
    main = cronjob("backup")
    del main["spec"]["schedule"]
    status = scheduled(main, spec=spec)
    assert status.next_schedule == next_fire("@daily", after=NOW, tool=TOOL, job="backup")
    assert status.previous_schedule == previous_fire("@daily", before=NOW, tool=TOOL, job="backup")


def test_an_unreadable_cronjob_schedule_gives_no_fire_times() -> None:
    status = scheduled(cronjob("backup", schedule="every day"))
    assert (status.previous_schedule, status.next_schedule) == (None, None)


# --- continuous jobs ---------------------------------------------------------------------------


def continuous(main: Obj, *pods: Obj, events: tuple[Obj, ...] = ()) -> Any:
    objects = JobObjects(name="bot", main=main, pods=pods, events=events)
    return job_status(objects, spec=CONTINUOUS, now=NOW)


def bot_pod(suffix: str = "7d4b9c-xk2lp", **fields: Any) -> Obj:
    return pod(f"bot-{suffix}", job_name="bot", component="deployments", **fields)


def test_continuous_running() -> None:
    status = continuous(deployment("bot", available=1), bot_pod(state=running(3600)))
    assert (status.status_short, status.short) == ("Running", StatusShort.RUNNING)
    assert status.duration == timedelta(hours=1)
    assert status.messages == ()


def test_continuous_partly_available() -> None:
    status = continuous(deployment("bot", replicas=2, available=1), bot_pod())
    assert status.status_short == "Running"
    assert status.messages == ("1 of 2 replicas are available",)


def test_continuous_not_running() -> None:
    status = continuous(deployment("bot", available=0))
    assert (status.status_short, status.short) == ("Not running", StatusShort.PENDING)


def test_continuous_not_running_because_its_pod_failed() -> None:
    dead = bot_pod(phase="Failed", state=terminated(1, "Error"))
    status = continuous(deployment("bot", available=0), dead)
    assert (status.status_short, status.short) == ("Not running", StatusShort.FAILED)


def test_crash_loop_via_crash_loop_back_off() -> None:
    crashing = bot_pod(
        state=waiting("CrashLoopBackOff", "back-off 5m0s restarting failed"),
        restarts=7,
        last=terminated(1, "Error"),
    )
    status = continuous(deployment("bot", available=0), crashing)
    assert status.status_short == "Specified command fails to run"
    assert status.short is StatusShort.FAILED
    assert "Container job exited with code 1 (Error)" in status.messages


def test_crash_loop_via_last_state_with_another_replica_running() -> None:
    healthy = bot_pod("7d4b9c-aaaaa")
    crashed = bot_pod(
        "7d4b9c-bbbbb",
        state=running(20),
        restarts=2,
        last=terminated(137, "OOMKilled"),
        created=3000,
    )
    status = continuous(deployment("bot", replicas=2, available=1), healthy, crashed)
    assert status.status_short == "Specified command fails to run"
    assert any("OOMKilled" in m for m in status.messages)


def test_continuous_out_of_quota_on_the_replica_set() -> None:
    events = (quota_event("ReplicaSet", "bot-7d4b9c"),)
    status = continuous(deployment("bot", available=0), events=events)
    assert status.status_short == "Unable to start, out of quota for cpu, memory"
    assert status.short is StatusShort.PENDING
    enough = continuous(deployment("bot", available=1), bot_pod(), events=events)
    assert enough.status_short == "Running"


def test_terminating_pods_do_not_count() -> None:
    leaving = bot_pod(state=waiting("CrashLoopBackOff"))
    leaving["metadata"]["deletionTimestamp"] = ago(5)
    status = continuous(deployment("bot", available=0), leaving)
    assert status.status_short == "Not running"


# --- grouping ----------------------------------------------------------------------------------


def test_group_objects_three_jobs_and_unrelated_objects() -> None:
    one = job("build")
    cron = cronjob("backup")
    bot = deployment("bot", available=1)
    scheduled_run = job("backup-29400000", component="cronjobs", parent="backup")
    manual_run = job("backup-1764158400", component="cronjobs", parent="backup")
    del manual_run["metadata"]["labels"]  # made by hand: only its owner says whose it is
    orphan_run = job("gone-29400000", component="cronjobs", parent="gone")
    webservice_pod = pod("build-web-1", job_name="build", component="web")
    webservice_pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "webservice"
    pods = [
        pod("build-abcde", job_name="build"),
        pod("backup-29400000-xyz12", job_name="backup", component="cronjobs"),
        bot_pod(),
        webservice_pod,
        pod("other-abcde", job_name="other"),
        {"metadata": "broken"},
        {},
    ]
    events = [
        event("Job", "build", "SuccessfulCreate", "Created pod: build-abcde"),
        event("CronJob", "backup", "SuccessfulCreate", "Created job backup-29400000"),
        event("Job", "backup-1764158400", "SuccessfulCreate", "Created pod"),
        event("Pod", "backup-29400000-xyz12", "Scheduled", "Assigned"),
        quota_event("ReplicaSet", "bot-7d4b9c"),
        event("Deployment", "bot", "ScalingReplicaSet", "Scaled up"),
        event("Pod", "bot-7d4b9c-xk2lp", "Started", "Started container job"),
        event("ReplicaSet", "botany-5f6", "SuccessfulCreate", "other"),
        event("Pod", "other-abcde", "Started", "not ours"),
        {"involvedObject": None},
        {},
    ]
    foreign = job("someone-else")
    foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "helm"
    mains = [one, cron, bot, scheduled_run, foreign, {"spec": None}, {"metadata": {}}]
    grouped = group_objects(mains=mains, jobs=[manual_run, orphan_run], pods=pods, events=events)

    assert set(grouped) == {"build", "backup", "bot"}
    assert grouped["build"].main is one
    assert [p["metadata"]["name"] for p in grouped["build"].pods] == ["build-abcde"]
    assert [e["reason"] for e in grouped["build"].events] == ["SuccessfulCreate"]
    backup = grouped["backup"]
    assert backup.jobs == (scheduled_run, manual_run)
    assert [p["metadata"]["name"] for p in backup.pods] == ["backup-29400000-xyz12"]
    assert len(backup.events) == 3
    assert [p["metadata"]["name"] for p in grouped["bot"].pods] == ["bot-7d4b9c-xk2lp"]
    assert [e["reason"] for e in grouped["bot"].events] == [
        "FailedCreate",
        "ScalingReplicaSet",
        "Started",
    ]


def test_group_objects_reads_the_kind_field_when_present() -> None:
    dep = {"kind": "Deployment", "metadata": {"name": "bot"}}
    grouped = group_objects(mains=[dep], jobs=[], pods=[], events=[])
    assert grouped["bot"].main is dep


def test_grouped_objects_give_each_job_its_status() -> None:
    grouped = group_objects(
        mains=[job("build", started=45), deployment("bot", available=1)],
        jobs=[],
        pods=[pod("build-abcde", job_name="build"), bot_pod()],
        events=[],
    )
    assert job_status(grouped["build"], spec=ONE_OFF, now=NOW).status_short == "Running for 45s"
    assert job_status(grouped["bot"], spec=CONTINUOUS, now=NOW).status_short == "Running"


# --- robustness --------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "Running",
            "Pending",
            "Failed",
            "True",
            "Job",
            "2026-11-26T10:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "metadata",
                    "status",
                    "spec",
                    "phase",
                    "state",
                    "conditions",
                    "name",
                    "containerStatuses",
                    "waiting",
                    "running",
                    "terminated",
                    "lastState",
                    "restartCount",
                    "exitCode",
                    "reason",
                    "type",
                    "startTime",
                    "labels",
                    "involvedObject",
                    "kind",
                    "message",
                    "creationTimestamp",
                    "replicas",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    main=st.dictionaries(st.sampled_from(["metadata", "spec", "status"]), JSON, max_size=3),
    junk=st.lists(
        st.dictionaries(
            st.sampled_from(["metadata", "status", "spec", "involvedObject", "reason"]),
            JSON,
            max_size=4,
        ),
        max_size=3,
    ),
    spec=st.sampled_from([ONE_OFF, SCHEDULED, CONTINUOUS]),
)
def test_malformed_objects_never_crash(main: Obj, junk: list[Obj], spec: JobSpec) -> None:
    grouped = group_objects(mains=[main, *junk], jobs=junk, pods=junk, events=junk)
    for objects in grouped.values():
        job_status(objects, spec=spec, now=NOW)
    objects = JobObjects(
        name="x", main=main, jobs=tuple(junk), pods=tuple(junk), events=tuple(junk)
    )
    status = job_status(objects, spec=spec, now=NOW)
    assert isinstance(status.status_short, str)
    assert isinstance(status.status_long, str)
    # An exit code belongs to a run that ended.
    ended = (StatusShort.SUCCEEDED, StatusShort.FAILED)
    assert status.exit_code is None or status.short in ended


# --- exit codes --------------------------------------------------------------------------------


def test_exit_codes_of_one_off_jobs() -> None:
    complete = job("build", conditions=(condition("Complete"),))
    succeeded = pod("build-a", job_name="build", phase="Succeeded",
                    state=terminated(0, "Completed"))
    assert one_off(complete, succeeded).exit_code == 0
    assert one_off(complete).exit_code == 0  # the pod is gone: a Job completes on exit 0
    failure = condition("Failed", reason="BackoffLimitExceeded", message="limit")
    dead = pod("build-a", job_name="build", phase="Failed", state=terminated(3, "Error"))
    assert one_off(job("build", conditions=(failure,)), dead).exit_code == 3
    assert one_off(job("build", failed=1), dead).exit_code == 3  # no retries left
    deadline = condition("Failed", reason="DeadlineExceeded", message="too long")
    assert one_off(job("build", conditions=(deadline,))).exit_code is None


def test_no_exit_code_while_a_job_runs_or_retries() -> None:
    assert one_off(job("build"), pod("build-a", job_name="build")).exit_code is None
    retried = pod("build-a", job_name="build", phase="Failed", state=terminated(1, "Error"))
    status = one_off(job("build", failed=1, backoff=2), retried)
    assert (status.short, status.exit_code) == (StatusShort.RUNNING, None)
    assert one_off(job("build")).exit_code is None  # no pod yet


def test_the_newest_pod_gives_the_exit_code() -> None:
    failure = condition("Failed", reason="BackoffLimitExceeded", message="limit")
    first = pod("build-a", job_name="build", phase="Failed", state=terminated(2, "Error"),
                created=1800)
    second = pod("build-b", job_name="build", phase="Failed", state=terminated(5, "Error"),
                 created=600)
    assert one_off(job("build", conditions=(failure,), failed=2), first, second).exit_code == 5


def test_a_scheduled_jobs_exit_code_is_its_last_runs() -> None:
    failure = condition("Failed", reason="BackoffLimitExceeded", message="limit")
    run = job("backup-29400000", component="cronjobs", parent="backup", conditions=(failure,))
    dead = pod("backup-29400000-a", job_name="backup", component="cronjobs", phase="Failed",
               state=terminated(4, "Error"), run="backup-29400000")
    status = scheduled(cronjob("backup", last=2400), runs=(run,), pods=(dead,))
    assert (status.short, status.exit_code) == (StatusShort.FAILED, 4)
    assert scheduled(cronjob("backup")).exit_code is None


def test_a_crash_looping_continuous_job_gives_its_last_exit_code() -> None:
    crashing = bot_pod(state=waiting("CrashLoopBackOff"), restarts=3, last=terminated(9, "Error"))
    assert continuous(deployment("bot", available=0), crashing).exit_code == 9
    healthy = continuous(deployment("bot", available=1), bot_pod(state=running(3600)))
    assert healthy.exit_code is None
