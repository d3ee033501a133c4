"""The JSON shapes of the service's results, so every front end shows the same thing.

The REST API, the command line client's direct mode and scripts all turn a
:class:`~tjf_core.service.Job` (and friends) into plain JSON-ready dicts here, never by
themselves. Two shapes of a job exist:

* :func:`job_view`, the modern one: the canonical spec fields of :func:`~tjf_core.convert.
  job_to_api` (nulls left out, as there), plus ``image_state``, ``schedule_actual`` (scheduled
  jobs only), the structured ``status`` (its keys always present, null when unknown) and the
  legacy ``status_short``/``status_long`` strings.
* :func:`legacy_job_view`, what the 2021-2023 ``toolforge-jobs`` client reads (REFERENCE §1).
  That client compares ``filelog`` with the STRING ``"True"`` (a JSON ``true`` would make every
  job show "File log: no"), and its ``load`` compares ``memory``/``cpu``/``filelog_stdout``/
  ``filelog_stderr`` with the keys of the jobs.yaml entry: so those are given only when they
  differ from what the model fills in by itself (as a jobs.yaml would leave them out), or an
  old ``load`` would re-create every unchanged job.

Everything is pure: times are rendered as RFC 3339 UTC text, durations as whole seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs

from tjf_core.convert import job_to_api
from tjf_core.errors import InvalidInputError, TjfError
from tjf_core.images import Image
from tjf_core.model import JobKind, JobSpec
from tjf_core.plan import Action
from tjf_core.pods import rfc3339
from tjf_core.quota import QuotaCategory
from tjf_core.service import ApplyResult, Job, JobList
from tjf_core.status import JobStatus

__all__ = [
    "IMAGE_STATE_UNKNOWN",
    "error_messages",
    "image_view",
    "job_list_view",
    "job_view",
    "legacy_job_view",
    "messages_view",
    "plan_view",
    "quota_view",
    "status_view",
]

#: ``image_state`` of a job whose image the catalog no longer has.
IMAGE_STATE_UNKNOWN = "unknown"


def _time(when: datetime | None) -> str | None:
    return None if when is None else rfc3339(when)


def _image_state(job: Job) -> str:
    return job.image.state.value if job.image is not None else IMAGE_STATE_UNKNOWN


def status_view(status: JobStatus) -> dict[str, Any]:
    """The structured status: ``short``, ``duration`` (whole seconds), ``up_to_date`` …

    ``exit_code`` is the finished run's container exit code (null while it runs, or when
    unknown): what ``run --wait`` exits with.
    """
    duration = status.duration
    return {
        "short": status.short.value,
        "duration": None if duration is None else int(duration.total_seconds()),
        "up_to_date": status.up_to_date,
        "messages": list(status.messages),
        "previous_schedule": _time(status.previous_schedule),
        "next_schedule": _time(status.next_schedule),
        "exit_code": status.exit_code,
    }


def job_view(job: Job) -> dict[str, Any]:
    """A job in the modern API's shape (see the module docstring)."""
    view = job_to_api(job.spec)
    view["image_state"] = _image_state(job)
    if job.schedule_actual is not None:
        view["schedule_actual"] = job.schedule_actual
    view["status"] = status_view(job.status)
    view["status_short"] = job.status.status_short
    view["status_long"] = job.status.status_long
    return view


def job_list_view(jobs: JobList) -> list[dict[str, Any]]:
    """Every job of a listing in the modern shape (its warnings go to the messages)."""
    return [job_view(job) for job in jobs.jobs]


#: Fields the legacy shape gives only when they are not what the model fills in by itself.
_LEGACY_UNLESS_DEFAULT = ("filelog_stdout", "filelog_stderr", "memory", "cpu")


def _non_default(spec: JobSpec) -> dict[str, Any]:
    """The fields of ``_LEGACY_UNLESS_DEFAULT`` whose values the model would not fill in."""
    # Built once without those fields, the spec shows the model's own defaults for this job.
    rest = {field.name: getattr(spec, field.name) for field in attrs.fields(JobSpec)
            if field.name not in _LEGACY_UNLESS_DEFAULT}
    defaults = JobSpec(**rest)
    return {name: getattr(spec, name) for name in _LEGACY_UNLESS_DEFAULT
            if getattr(spec, name) != getattr(defaults, name)}


def legacy_job_view(job: Job) -> dict[str, Any]:
    """A job as the 2021-2023 ``toolforge-jobs`` client reads it (see the module docstring)."""
    spec = job.spec
    given = _non_default(spec)
    view: dict[str, Any] = {
        "name": spec.name,
        "cmd": spec.command,
        "image": spec.image,
        "image_state": _image_state(job),
        "filelog": "True" if spec.filelog else "False",
        "filelog_stdout": given.get("filelog_stdout"),
        "filelog_stderr": given.get("filelog_stderr"),
        "emails": spec.emails.value,
        "retry": spec.retry,
        "schedule": spec.schedule,
        "schedule_actual": job.schedule_actual,
        "continuous": True if spec.kind is JobKind.CONTINUOUS else None,
    }
    for key in ("memory", "cpu"):
        if key in given:
            view[key] = str(given[key])
    view["status_short"] = job.status.status_short
    view["status_long"] = job.status.status_long
    return view


def image_view(image: Image) -> dict[str, str]:
    """One image as the images endpoint lists it: ``{shortname, image}``."""
    return {"shortname": image.shortname, "image": image.url}


def quota_view(categories: Iterable[QuotaCategory]) -> dict[str, Any]:
    """The quota: ``{categories: [{name, items: [{name, limit, used}]}]}``."""
    return {
        "categories": [
            {
                "name": category.name,
                "items": [
                    {"name": item.name, "limit": item.limit, "used": item.used}
                    for item in category.items
                ],
            }
            for category in categories
        ]
    }


def plan_view(result: ApplyResult) -> dict[str, Any]:
    """What an apply did (or would do): per job its action and the fields that changed."""
    return {
        "dry_run": result.dry_run,
        "changed": result.plan.has_changes,
        "jobs": [
            {
                "name": change.name,
                "action": change.action.value,
                "changed_fields": list(change.changed_fields),
                # unchanged definition, but the live objects drifted from it
                "stale": change.stale,
            }
            for change in result.plan.changes
        ],
        "counts": {
            action.value: len(result.plan.with_action(action)) for action in Action
        },
    }


def messages_view(
    *, info: Sequence[str] = (), warning: Sequence[str] = (), error: Sequence[str] = (),
) -> dict[str, list[str]]:
    """The ``messages`` object every modern response carries."""
    return {"info": list(info), "warning": list(warning), "error": list(error)}


def error_messages(error: TjfError) -> list[str]:
    """The lines that explain ``error``: one per problem of an input error, each naming its field.

    The error's own message comes first only when it says more than its problems joined.
    """
    if not isinstance(error, InvalidInputError) or not error.problems:
        return [str(error)]
    lines = [str(problem) for problem in error.problems]
    message, joined = str(error), "; ".join(lines)
    if message == joined:
        return lines
    # InvalidInputError words a summary as "<summary>: <problems joined>".
    headline = message.removesuffix(": " + joined)
    return [headline, *lines]
