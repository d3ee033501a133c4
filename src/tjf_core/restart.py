"""Restarting jobs: the objects and patches that make a live job run again.

A scheduled job is run now by a Job made from its CronJob's template (what
``kubectl create job --from=cronjob/NAME`` does); a continuous job is restarted by changing a
pod-template annotation, which makes its Deployment replace the pods one by one (what
``kubectl rollout restart`` does). One-off jobs cannot be restarted. Pure: the time is a
parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tjf_core.errors import InvalidJobError, Problem
from tjf_core.render import Manifest

__all__ = [
    "MANUAL_RUN_ANNOTATION",
    "RESTART_ANNOTATION",
    "render_manual_run",
    "render_restart_patch",
]

RESTART_ANNOTATION = "jobs.toolforge.org/restarted-at"
MANUAL_RUN_ANNOTATION = "cronjob.kubernetes.io/instantiate"


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _utc_text(now: datetime) -> str:
    _require_aware(now)
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render_manual_run(cronjob: Manifest, *, now: datetime) -> Manifest:
    """The Job that runs a live CronJob once, now (``kubectl create job --from=cronjob``).

    ``cronjob`` must be the object as read from the cluster: the ownerReference needs its uid,
    so that the Job is listed (and garbage collected) with the CronJob's own.
    """
    _require_aware(now)
    metadata = cronjob.get("metadata") or {}
    name, uid = metadata.get("name"), metadata.get("uid")
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    if not name or not uid or "spec" not in template:
        what = f"CronJob {name!r}" if name else "the CronJob"
        raise InvalidJobError(
            [
                Problem(
                    "",
                    f"cannot run {what} now: pass the object as read from the cluster, "
                    "with metadata.name, metadata.uid and spec.jobTemplate",
                )
            ]
        )
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[MANUAL_RUN_ANNOTATION] = "manual"
    job_meta: Manifest = {"name": f"{name}-{int(now.timestamp())}"}
    if metadata.get("namespace"):
        job_meta["namespace"] = metadata["namespace"]
    job_meta["labels"] = dict(template_meta.get("labels") or {})
    job_meta["annotations"] = annotations
    job_meta["ownerReferences"] = [
        {
            "apiVersion": cronjob.get("apiVersion", "batch/v1"),
            "kind": "CronJob",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": _deep_copy(template["spec"]),
    }


def _deep_copy(value: Any) -> Any:
    # JSON-shaped data only; faster than copy.deepcopy and never shares a list or dict.
    if isinstance(value, dict):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_copy(item) for item in value]
    return value


def render_restart_patch(*, now: datetime) -> Manifest:
    """A strategic-merge patch that makes a Deployment replace its pods (a rolling restart).

    Changing a pod-template annotation is what ``kubectl rollout restart`` does too; the value
    is the restart time, so every restart is a change.
    """
    return {
        "spec": {
            "template": {"metadata": {"annotations": {RESTART_ANNOTATION: _utc_text(now)}}}
        }
    }
