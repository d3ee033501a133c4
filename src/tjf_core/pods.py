"""What one pod is doing, read from the plain dict the Kubernetes API returns for it.

A job's status (:mod:`tjf_core.status`) is decided by its pods, but what a pod is doing does
not depend on the kind of job that made it: the bucket it falls in, the sentences that say
what went wrong in it and the legacy long explanation old clients print (``status_long``,
REFERENCE §5) are the same for every kind, so they live here, apart from the per-kind rules.
So do the readers of dicts that may be malformed (other tools' objects, half written ones):
they return ``None`` (or an empty list) for whatever cannot be read and never raise, and the
status code reads every object through them. "Now" is a parameter.

Decisions:

* Each pod falls in ONE bucket, tested in the order failed > scheduling > initializing >
  running > restarted > succeeded > unknown, where *running* means phase Running with no sign
  of a crash loop, and a crash loop (*restarted*) is a container waiting in CrashLoopBackOff,
  or one restarted after a non-zero exit that has not yet run 10 minutes since (Kubernetes
  forgets a crash after 10 minutes of good running: it resets the back-off, and so do we).
* Timestamps are read as aware UTC datetimes; one without a zone is taken as UTC, one that
  cannot be parsed as missing. An object without a creation time sorts as created at
  :data:`EPOCH`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tjf_core.model import JobSpec
from tjf_core.quota import Manifest

__all__ = [
    "EPOCH",
    "PodBucket",
    "created_at",
    "dicts_at",
    "elapsed",
    "explain_pod",
    "int_at",
    "label_of",
    "main_container",
    "newest_of",
    "pod_bucket",
    "pod_messages",
    "rfc3339",
    "run_of",
    "text_at",
    "time_at",
    "value_at",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
_STARTING = frozenset({"ContainerCreating", "PodInitializing"})
_STABLE_AFTER = timedelta(minutes=10)


# --- reading dicts that may be malformed -------------------------------------------------------


def value_at(obj: object, *keys: str) -> Any:
    """The value under ``keys``, or ``None`` where a step is missing or not a mapping."""
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def text_at(obj: object, *keys: str) -> str | None:
    """A non-empty string under ``keys``, else ``None``."""
    value = value_at(obj, *keys)
    return value if isinstance(value, str) and value else None


def int_at(obj: object, *keys: str) -> int | None:
    """An integer (not a bool) under ``keys``, else ``None``."""
    value = value_at(obj, *keys)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dicts_at(obj: object, *keys: str) -> list[Mapping[str, Any]]:
    """The mappings of the list under ``keys``; other items, or no list, give none."""
    value = value_at(obj, *keys)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def time_at(obj: object, *keys: str) -> datetime | None:
    """The timestamp under ``keys`` in UTC, or ``None`` when missing or unreadable."""
    text = text_at(obj, *keys)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def label_of(obj: object, key: str) -> str | None:
    return text_at(obj, "metadata", "labels", key)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def elapsed(start: datetime | None, end: datetime) -> timedelta | None:
    """How long from ``start`` to ``end``, never negative; ``None`` when the start is unknown."""
    return None if start is None else max(end - start, timedelta(0))


def created_at(obj: Manifest) -> datetime:
    return time_at(obj, "metadata", "creationTimestamp") or EPOCH


def newest_of(objs: Iterable[Manifest]) -> Manifest | None:
    """The object created last; the name breaks ties so the choice never depends on order."""
    return max(
        objs, key=lambda o: (created_at(o), text_at(o, "metadata", "name") or ""), default=None
    )


# --- pods --------------------------------------------------------------------------------------


class PodBucket(enum.Enum):
    """What a pod is doing; the order of the members is the order they are tested in."""

    FAILED = "failed"
    SCHEDULING = "scheduling"
    INITIALIZING = "initializing"
    RUNNING = "running"
    RESTARTED = "restarted"
    SUCCEEDED = "succeeded"
    UNKNOWN = "unknown"


def _containers(pod: Manifest) -> list[Mapping[str, Any]]:
    return dicts_at(pod, "status", "containerStatuses")


def _crash_looping(pod: Manifest, now: datetime) -> bool:
    for status in _containers(pod):
        if text_at(status, "state", "waiting", "reason") == "CrashLoopBackOff":
            return True
        code = int_at(status, "lastState", "terminated", "exitCode")
        if (int_at(status, "restartCount") or 0) > 0 and code not in (None, 0):
            since = time_at(status, "state", "running", "startedAt")
            if since is None or now - since < _STABLE_AFTER:
                return True
    return False


def _scheduled(pod: Manifest) -> bool:
    for condition in dicts_at(pod, "status", "conditions"):
        if text_at(condition, "type") == "PodScheduled":
            return text_at(condition, "status") == "True"
    return text_at(pod, "spec", "nodeName") is not None


def pod_bucket(pod: Manifest, *, now: datetime) -> PodBucket:
    """The one bucket a pod falls in (order and crash-loop rule in the module docstring)."""
    phase = text_at(pod, "status", "phase")
    waiting = {text_at(c, "state", "waiting", "reason") for c in _containers(pod)}
    crash_loop = _crash_looping(pod, now)
    if phase == "Failed":
        return PodBucket.FAILED
    if phase == "Pending" and not _scheduled(pod):
        return PodBucket.SCHEDULING
    if phase == "Pending" or waiting & _STARTING:
        return PodBucket.INITIALIZING
    if phase == "Running" and not crash_loop:
        return PodBucket.RUNNING
    if crash_loop:
        return PodBucket.RESTARTED
    return PodBucket.SUCCEEDED if phase == "Succeeded" else PodBucket.UNKNOWN


def run_of(pod: Manifest) -> str | None:
    """The name of the Job that made a pod: its owner, else its job-name label."""
    for ref in dicts_at(pod, "metadata", "ownerReferences"):
        if text_at(ref, "kind") == "Job":
            return text_at(ref, "name")
    return next((v for v in (label_of(pod, k) for k in _JOB_NAME_LABELS) if v), None)


def main_container(pod: Manifest) -> Mapping[str, Any] | None:
    """The status of the container named ``job``, else of the first container."""
    statuses = _containers(pod)
    named = [s for s in statuses if text_at(s, "name") == "job"]
    return next(iter(named or statuses), None)


def _memory_limit(pod: Manifest, container: str, spec: JobSpec) -> str:
    for item in dicts_at(pod, "spec", "containers"):
        if text_at(item, "name") == container:
            return text_at(item, "resources", "limits", "memory") or str(spec.memory)
    return str(spec.memory)


def pod_messages(pod: Manifest | None, spec: JobSpec) -> list[str]:
    """Sentences about what went wrong in a pod: scheduling, waiting, out of memory, exit."""
    if pod is None:
        return []
    found = []
    for condition in dicts_at(pod, "status", "conditions"):
        if text_at(condition, "type") == "PodScheduled" and text_at(condition, "status") == "False":
            found.append(f"Waiting to be scheduled: {text_at(condition, 'message') or 'no reason'}")
    for status in _containers(pod):
        name = text_at(status, "name") or "?"
        reason = text_at(status, "state", "waiting", "reason")
        if reason and reason not in _STARTING:
            detail = text_at(status, "state", "waiting", "message")
            text = f"Container {name} is waiting: {reason}"
            found.append(f"{text} ({detail})" if detail else text)
        ended = value_at(status, "state", "terminated") or value_at(
            status, "lastState", "terminated"
        )
        code = int_at(ended, "exitCode")
        if text_at(ended, "reason") == "OOMKilled":
            limit = _memory_limit(pod, name, spec)
            found.append(
                f"Container {name} ran out of memory (OOMKilled, limit {limit}); "
                "ask for more memory with --mem"
            )
        elif code:
            why = text_at(ended, "reason")
            found.append(f"Container {name} exited with code {code}" + (f" ({why})" if why else ""))
    return found


def explain_pod(pod: Manifest | None) -> str:
    """The legacy long status: phase, restarts, state, reason, exit code, timestamps."""
    if pod is None:
        return "No pod exists for this job."
    name = text_at(pod, "metadata", "name") or "?"
    parts = [f"Pod '{name}' is in phase '{text_at(pod, 'status', 'phase') or 'Unknown'}'."]
    container = main_container(pod)
    restarts = int_at(container, "restartCount") or 0
    if restarts:
        parts.append(f"Restarted {restarts} time{'s' if restarts > 1 else ''}.")
    for label, key in (("State", "state"), ("Last state", "lastState")):
        state = value_at(container, key)
        if not isinstance(state, Mapping) or not state:
            continue
        which = next(iter(state))
        detail = state[which] if isinstance(state[which], Mapping) else {}
        text = f"{label} '{which}'"
        if text_at(detail, "reason"):
            text += f" for reason '{text_at(detail, 'reason')}'"
        if int_at(detail, "exitCode") is not None:
            text += f", exit code {int_at(detail, 'exitCode')}"
        for word, field in (("started at", "startedAt"), ("finished at", "finishedAt")):
            when = time_at(detail, field)
            if when is not None:
                text += f", {word} {rfc3339(when)}"
        parts.append(text + ".")
    started = time_at(pod, "status", "startTime")
    if container is None and started is not None:
        parts.append(f"Started at {rfc3339(started)}.")
    return " ".join(parts)
