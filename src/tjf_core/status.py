"""A job's status, computed from the live Kubernetes objects that belong to it.

Listing a tool's jobs must cost a constant number of API calls (one list per kind, one for pods,
one for events), so status is a pure function over those lists: :func:`group_objects` sorts them
into one :class:`JobObjects` per job in a single pass over each list, and :func:`job_status`
turns one job's objects into both the structured status and the legacy strings old clients
print (REFERENCE §5). "Now" is a parameter. Objects that cannot be read (other tools', half
written, malformed) are skipped, never raised on: every object is read through the readers
of :mod:`tjf_core.pods`.

Decisions:

* What one pod is doing (its :class:`~tjf_core.pods.PodBucket`) is decided in
  :mod:`tjf_core.pods`. The newest pod decides, except that a continuous job with ANY
  crash-looping replica shows ``Specified command fails to run``: its command fails, whatever
  the other replicas do.
* ``short``: a crash loop is ``failed``; out of quota, scheduling, initializing and waiting for
  the first run are ``pending``; a failed attempt that Kubernetes retries is ``running``; an
  idle scheduled job shows its last run's outcome, ``pending`` when that is unknown.
* A FailedCreate quota refusal counts for a Job only if no pod was created after it, and for a
  Deployment only while it has fewer live pods than replicas wanted.
* Fire times use the CronJob's schedule and time zone (what Kubernetes runs), falling back to
  the spec's (the job's ``timezone``, UTC by default) where the CronJob does not say.
* ``exit_code`` is given only when ``short`` is succeeded or failed: the exit code of the
  deciding pod's main container (its current state, else its last one, as while it restarts),
  so that ``run --wait`` can exit with it. A Job that completed without a readable pod exited
  0 (Kubernetes completes a Job only on a zero exit); a failure without a terminated container
  (stopped at its deadline, pod gone) has none.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from tjf_core.errors import InvalidInputError
from tjf_core.model import JobKind, JobSpec
from tjf_core.pods import (
    EPOCH,
    PodBucket,
    created_at,
    dicts_at,
    elapsed,
    explain_pod,
    int_at,
    label_of,
    main_container,
    newest_of,
    pod_bucket,
    pod_messages,
    rfc3339,
    run_of,
    text_at,
    time_at,
    value_at,
)
from tjf_core.quota import Manifest, QuotaRefusal, parse_quota_refusal, quota_exceeded_message
from tjf_core.schedule import next_fire, previous_fire

__all__ = [
    "JobObjects",
    "JobStatus",
    "Manifest",
    "StatusShort",
    "format_duration",
    "group_objects",
    "job_status",
]

_NAME = "app.kubernetes.io/name"
_COMPONENT = "app.kubernetes.io/component"
_MANAGED_BY = "app.kubernetes.io/managed-by"
_MANAGER = "toolforge-jobs-framework"
_COMPONENT_OF_KIND = {"Job": "jobs", "CronJob": "cronjobs", "Deployment": "deployments"}


class StatusShort(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class JobStatus:
    short: StatusShort
    duration: timedelta | None  # how long the current (or last) run ran
    up_to_date: bool
    messages: tuple[str, ...]
    previous_schedule: datetime | None = None
    next_schedule: datetime | None = None
    status_short: str  # the legacy strings of REFERENCE §5, exactly
    status_long: str  # explains the newest pod
    exit_code: int | None = None  # the finished run's (see the module docstring)


@attrs.frozen(kw_only=True)
class JobObjects:
    """Everything live that belongs to ONE job."""

    name: str
    main: Manifest  # the Job, CronJob or Deployment
    jobs: tuple[Manifest, ...] = ()  # a CronJob's Jobs
    pods: tuple[Manifest, ...] = ()
    events: tuple[Manifest, ...] = ()


def format_duration(duration: timedelta) -> str:
    """Compact text of a duration: ``45s``, ``2m5s``, ``1h2m3s``, and ``3d4h`` from a day on."""
    seconds = max(int(duration.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


# --- grouping ----------------------------------------------------------------------------------


def _kind(obj: Manifest) -> str | None:
    """Job, CronJob or Deployment; items of an API list carry no ``kind``, so guess by shape."""
    kind = text_at(obj, "kind")
    if kind in _COMPONENT_OF_KIND:
        return kind
    spec = value_at(obj, "spec")
    if not isinstance(spec, Mapping):
        return None
    if "jobTemplate" in spec:
        return "CronJob"
    if (text_at(obj, "apiVersion") or "").startswith("apps/") or "replicas" in spec:
        return "Deployment"
    if label_of(obj, _COMPONENT) == "deployments":
        return "Deployment"
    return "Job" if "template" in spec else None


def _ours(obj: Manifest, kind: str | None = None) -> bool:
    """Not made by another manager, and (when ``kind`` is given) labelled for that kind."""
    manager = label_of(obj, _MANAGED_BY)
    component = label_of(obj, _COMPONENT)
    if manager is not None and manager != _MANAGER:
        return False
    return kind is None or component is None or component == _COMPONENT_OF_KIND.get(kind)


def _parent_cronjob(job: Manifest) -> str | None:
    """The CronJob a Job belongs to: its owner, else its name label when labelled cronjobs."""
    for ref in dicts_at(job, "metadata", "ownerReferences"):
        if text_at(ref, "kind") == "CronJob":
            return text_at(ref, "name")
    return label_of(job, _NAME) if label_of(job, _COMPONENT) == "cronjobs" else None


def group_objects(
    *,
    mains: Iterable[Manifest],
    jobs: Iterable[Manifest],
    pods: Iterable[Manifest],
    events: Iterable[Manifest],
) -> dict[str, JobObjects]:
    """Sort a tool's objects into one :class:`JobObjects` per job, one pass over each list.

    ``mains`` are the Jobs, CronJobs and Deployments labelled component jobs/cronjobs/
    deployments; ``jobs`` the Jobs CronJobs made (labelled component cronjobs, or owned by a
    CronJob). A Job in ``mains`` that belongs to a CronJob is taken as one of its Jobs, so a
    caller may list all Jobs once and pass them as ``mains``. Pods and a CronJob's Jobs join by
    the ``app.kubernetes.io/name`` label; events by their involved object: the main object, a
    CronJob's Jobs, the pods, and a Deployment's ReplicaSets (``<deployment>-<hash>``). When two
    mains share a name, the first wins.
    """
    main_of: dict[str, Manifest] = {}
    kind_of: dict[str, str] = {}
    children: list[Manifest] = []
    for obj in mains:
        kind, name = _kind(obj), text_at(obj, "metadata", "name")
        if kind is None or name is None or not _ours(obj):
            continue
        if kind == "Job" and _parent_cronjob(obj) is not None:
            children.append(obj)
        elif name not in main_of:
            main_of[name], kind_of[name] = obj, kind
    owner: dict[tuple[str, str], str] = {(kind_of[n], n): n for n in main_of}
    found: dict[str, dict[str, list[Manifest]]] = {
        n: {"jobs": [], "pods": [], "events": []} for n in main_of
    }
    for job in [*children, *jobs]:
        parent = _parent_cronjob(job) or label_of(job, _NAME)
        name = text_at(job, "metadata", "name")
        if parent in main_of and name and kind_of[parent] == "CronJob" and _ours(job):
            found[parent]["jobs"].append(job)
            owner["Job", name] = parent
    for pod in pods:
        parent, name = label_of(pod, _NAME), text_at(pod, "metadata", "name")
        if parent in main_of and name and _ours(pod, kind_of[parent]):
            found[parent]["pods"].append(pod)
            owner["Pod", name] = parent
    for event in events:
        kind, name = _involved(event)
        if kind is None or name is None:
            continue
        parent = owner.get((kind, name))
        if parent is None and kind == "ReplicaSet":
            base = name.rpartition("-")[0]
            parent = base if kind_of.get(base) == "Deployment" else None
        if parent is not None:
            found[parent]["events"].append(event)
    return {
        name: JobObjects(
            name=name,
            main=main,
            jobs=tuple(found[name]["jobs"]),
            pods=tuple(found[name]["pods"]),
            events=tuple(found[name]["events"]),
        )
        for name, main in main_of.items()
    }


# --- status by kind ----------------------------------------------------------------------------


@attrs.frozen
class _Outcome:
    short: StatusShort
    legacy: str
    duration: timedelta | None = None
    messages: tuple[str, ...] = ()
    exit_code: int | None = None


def _exit_code(pod: Manifest | None) -> int | None:
    """The exit code of the pod's main container: its current state, else its last one."""
    container = main_container(pod) if pod is not None else None
    for state in ("state", "lastState"):
        code = int_at(container, state, "terminated", "exitCode")
        if code is not None:
            return code
    return None


def _event_time(event: Manifest) -> datetime:
    for keys in (
        ("series", "lastObservedTime"),
        ("lastTimestamp",),
        ("eventTime",),
        ("deprecatedLastTimestamp",),
        ("firstTimestamp",),
    ):
        when = time_at(event, *keys)
        if when is not None:
            return when
    return created_at(event)


def _quota_refusal(
    events: Iterable[Manifest], *, kinds: frozenset[str], after: datetime | None
) -> tuple[QuotaRefusal, str] | None:
    """The newest FailedCreate quota refusal on an object of ``kinds``, later than ``after``."""
    best: tuple[datetime, QuotaRefusal, str] | None = None
    for event in events:
        if text_at(event, "reason") != "FailedCreate" or _involved(event)[0] not in kinds:
            continue
        text = text_at(event, "message") or text_at(event, "note") or ""
        refusal, when = parse_quota_refusal(text), _event_time(event)
        if refusal is None or (after is not None and when < after):
            continue
        if best is None or when >= best[0]:
            best = (when, refusal, text)
    return None if best is None else best[1:]


def _out_of_quota(found: tuple[QuotaRefusal, str]) -> _Outcome:
    refusal, text = found
    names = []
    for resource in refusal.resources:
        name = resource.name.removeprefix("limits.").removeprefix("requests.")
        names.append(name.removeprefix("count/").split(".")[0])
    legacy = "Unable to start, out of quota for " + ", ".join(dict.fromkeys(names))
    explained = quota_exceeded_message(text) or "out of quota"
    return _Outcome(StatusShort.PENDING, legacy, None, (f"Unable to start: {explained}",))


def _true_conditions(job: Manifest) -> dict[str, Mapping[str, Any]]:
    conditions = dicts_at(job, "status", "conditions")
    return {text_at(c, "type") or "": c for c in conditions if text_at(c, "status") == "True"}


def _batch(
    job: Manifest, pods: list[Manifest], events: list[Manifest], *, spec: JobSpec, now: datetime
) -> _Outcome:
    """The status of one Job run (a one-off job, or one run of a scheduled job)."""
    conditions = _true_conditions(job)
    newest = newest_of(pods)
    start = time_at(job, "status", "startTime") or time_at(newest, "status", "startTime")
    if "Complete" in conditions:
        complete = conditions["Complete"]
        end = time_at(job, "status", "completionTime") or time_at(complete, "lastTransitionTime")
        code = _exit_code(newest)
        return _Outcome(StatusShort.SUCCEEDED, "Completed", elapsed(start, end or now),
                        exit_code=0 if code is None else code)
    # FailureTarget (Kubernetes >= 1.31) comes first, while the Job's pods are being stopped.
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is not None:
        reason = text_at(failed, "reason") or "Failed"
        sentence = f"The job failed ({reason}): {text_at(failed, 'message') or 'no message'}"
        end = time_at(failed, "lastTransitionTime") or now
        messages = (sentence, *pod_messages(newest, spec))
        return _Outcome(StatusShort.FAILED, "Failed", elapsed(start, end), messages,
                        _exit_code(newest))
    after = None if newest is None else created_at(newest)
    quota = _quota_refusal(events, kinds=frozenset({"Job"}), after=after)
    if quota is not None:
        return _out_of_quota(quota)
    if newest is None:
        return _Outcome(StatusShort.PENDING, "Pending")
    bucket, messages = pod_bucket(newest, now=now), tuple(pod_messages(newest, spec))
    running = f"Running for {format_duration(now - (start or now))}"
    if bucket in (PodBucket.SCHEDULING, PodBucket.INITIALIZING):
        return _Outcome(StatusShort.PENDING, "Pending", None, messages)
    if bucket is PodBucket.RUNNING:
        return _Outcome(StatusShort.RUNNING, running, elapsed(start, now), messages)
    if bucket is PodBucket.RESTARTED:
        return _Outcome(StatusShort.FAILED, "Specified command fails to run", None, messages,
                        _exit_code(newest))
    if bucket is PodBucket.SUCCEEDED:
        end = time_at(main_container(newest), "state", "terminated", "finishedAt") or now
        return _Outcome(StatusShort.SUCCEEDED, "Completed", elapsed(start, end), messages,
                        _exit_code(newest))
    if bucket is PodBucket.FAILED:
        attempts = int_at(job, "status", "failed") or 1
        limit = int_at(job, "spec", "backoffLimit")
        if limit is None or attempts <= limit:  # the Job controller will try again
            retry = f"Attempt {attempts} failed; Kubernetes retries it"
            return _Outcome(StatusShort.RUNNING, running, elapsed(start, now), (retry, *messages))
        return _Outcome(StatusShort.FAILED, "Failed", elapsed(start, now), messages,
                        _exit_code(newest))
    return _Outcome(StatusShort.UNKNOWN, "Unknown", None, messages)


def _fire_times(
    cron: Manifest, *, spec: JobSpec, now: datetime, tool: str
) -> tuple[datetime | None, datetime | None]:
    schedule = text_at(cron, "spec", "schedule") or spec.schedule
    if schedule is None:
        return None, None
    tz = text_at(cron, "spec", "timeZone") or spec.timezone
    try:
        return (
            previous_fire(schedule, before=now, tz=tz, tool=tool, job=spec.name),
            next_fire(schedule, after=now, tz=tz, tool=tool, job=spec.name),
        )
    except InvalidInputError:  # a CronJob edited by hand; its status still shows
        return None, None


def _involved(event: Manifest) -> tuple[str | None, str | None]:
    involved = value_at(event, "involvedObject") or value_at(event, "regarding")
    return text_at(involved, "kind"), text_at(involved, "name")


def _scheduled_outcome(objects: JobObjects, *, spec: JobSpec, now: datetime) -> _Outcome:
    runs = sorted(objects.jobs, key=lambda j: (created_at(j), text_at(j, "metadata", "name") or ""))
    active = [j for j in runs if not {"Complete", "Failed"} & _true_conditions(j).keys()]
    last = (active or runs)[-1] if runs else None
    run: _Outcome | None = None
    after = time_at(objects.main, "status", "lastScheduleTime")
    if last is not None:
        name = text_at(last, "metadata", "name") or ""
        pods = [p for p in objects.pods if run_of(p) == name]
        mine = {("Job", name), *(("Pod", text_at(p, "metadata", "name")) for p in pods)}
        events = [e for e in objects.events if _involved(e) in mine]
        run = _batch(last, pods, events, spec=spec, now=now)
        if active:
            return run
        after = max(after or EPOCH, created_at(last))
    quota = _quota_refusal(objects.events, kinds=frozenset({"CronJob"}), after=after)
    if quota is not None:
        return _out_of_quota(quota)
    last_schedule = time_at(objects.main, "status", "lastScheduleTime")
    if last_schedule is None:
        legacy = "Waiting for scheduled time"
    else:
        legacy = f"Last schedule time: {rfc3339(last_schedule)}"
    if run is None or run.short not in (StatusShort.SUCCEEDED, StatusShort.FAILED):
        return _Outcome(StatusShort.PENDING, legacy)
    return _Outcome(run.short, legacy, run.duration, run.messages, run.exit_code)


def _continuous_outcome(objects: JobObjects, *, spec: JobSpec, now: datetime) -> _Outcome:
    deployment = objects.main
    wanted = int_at(deployment, "spec", "replicas")
    wanted = 1 if wanted is None else wanted
    available = int_at(deployment, "status", "availableReplicas") or 0
    live = [p for p in objects.pods if value_at(p, "metadata", "deletionTimestamp") is None]
    buckets = [(pod, pod_bucket(pod, now=now)) for pod in live]
    crashing = newest_of(p for p, b in buckets if b is PodBucket.RESTARTED)
    if crashing is not None:
        messages = tuple(pod_messages(crashing, spec))
        return _Outcome(StatusShort.FAILED, "Specified command fails to run", None, messages,
                        _exit_code(crashing))
    active = [p for p, b in buckets if b not in (PodBucket.FAILED, PodBucket.SUCCEEDED)]
    if len(active) < wanted:
        quota = _quota_refusal(
            objects.events, kinds=frozenset({"ReplicaSet", "Deployment"}), after=None
        )
        if quota is not None:
            return _out_of_quota(quota)
    running = newest_of(p for p, b in buckets if b is PodBucket.RUNNING)
    if running is not None or 0 < wanted <= available:
        container = main_container(running) if running is not None else None
        start = time_at(container, "state", "running", "startedAt") or time_at(
            running, "status", "startTime"
        )
        short_of = f"{available} of {wanted} replicas are available"
        messages = () if available >= wanted else (short_of,)
        return _Outcome(StatusShort.RUNNING, "Running", elapsed(start, now), messages)
    newest = newest_of(live)
    bucket = None if newest is None else pod_bucket(newest, now=now)
    failed = bucket is PodBucket.FAILED
    return _Outcome(StatusShort.FAILED if failed else StatusShort.PENDING, "Not running", None,
                    tuple(pod_messages(newest, spec)), _exit_code(newest) if failed else None)


def job_status(
    objects: JobObjects,
    *,
    spec: JobSpec,
    now: datetime,
    up_to_date: bool = True,
    tool: str = "",
) -> JobStatus:
    """The status of one job from its live objects at ``now`` (rules in the module docstring).

    ``tool`` only matters for a scheduled job whose CronJob lacks a schedule: the spec's macro
    is then spread for (tool, job) as at creation.
    """
    now = now if now.tzinfo else now.replace(tzinfo=UTC)  # a naive "now" is taken as UTC
    previous = following = None
    if spec.kind is JobKind.SCHEDULED:
        outcome = _scheduled_outcome(objects, spec=spec, now=now)
        previous, following = _fire_times(objects.main, spec=spec, now=now, tool=tool)
    elif spec.kind is JobKind.CONTINUOUS:
        outcome = _continuous_outcome(objects, spec=spec, now=now)
    else:
        outcome = _batch(objects.main, list(objects.pods), list(objects.events), spec=spec, now=now)
    return JobStatus(
        short=outcome.short,
        duration=outcome.duration,
        up_to_date=up_to_date,
        messages=tuple(dict.fromkeys(outcome.messages)),
        previous_schedule=previous,
        next_schedule=following,
        status_short=outcome.legacy,
        status_long=explain_pod(newest_of(objects.pods)),
        exit_code=outcome.exit_code,
    )
