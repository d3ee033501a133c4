"""Pod dicts of jobs, as the Kubernetes API would return them, for the emailer's tests.

The metadata and container come from :func:`tjf_core.render.render_job` (so the labels and the
command are exactly what tjf writes); the status is given by the test.
"""

from __future__ import annotations

from typing import Any

from tjf_core.identity import ToolIdentity
from tjf_core.model import JobSpec
from tjf_core.render import ToolContext, render_job
from tjf_core.settings import IdentitySettings, RenderSettings

__all__ = ["job_pod", "running", "terminated", "waiting"]

_KINDS: dict[str, dict[str, Any]] = {
    "one-off": {}, "scheduled": {"schedule": "@daily"}, "continuous": {},
}


def running(at: str = "2024-05-01T10:00:00Z") -> dict[str, Any]:
    return {"running": {"startedAt": at}}


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    detail = {"reason": reason}
    if message is not None:
        detail["message"] = message
    return {"waiting": detail}


def terminated(
    code: int, *, reason: str | None = None, at: str = "2024-05-01T10:05:00Z",
    started: str = "2024-05-01T10:00:00Z", message: str | None = None,
) -> dict[str, Any]:
    detail: dict[str, Any] = {"exitCode": code, "startedAt": started, "finishedAt": at}
    if reason is None:
        reason = "Completed" if code == 0 else "Error"
    detail["reason"] = reason
    if message is not None:
        detail["message"] = message
    return {"terminated": detail}


def job_pod(
    *, tool: str = "mytool", job: str = "web", pod: str | None = None, kind: str = "continuous",
    emails: str = "all", filelog: bool = True, state: dict[str, Any] | None = None,
    last_state: dict[str, Any] | None = None, restarts: int = 0, phase: str = "Running",
    started: str = "2024-05-01T10:00:00Z", **spec_fields: Any,
) -> dict[str, Any]:
    """A pod of the job ``job`` of ``tool``, its container in ``state`` (running by default)."""
    spec = JobSpec(name=job, command="./run.sh", image="bookworm", kind=kind, emails=emails,
                   filelog=filelog, **_KINDS[kind], **spec_fields)
    identity = ToolIdentity.for_tool(tool, settings=IdentitySettings())
    [top, *_] = render_job(spec, tool=ToolContext(identity=identity), settings=RenderSettings())
    template = top["spec"]["template"] if kind != "scheduled" else (
        top["spec"]["jobTemplate"]["spec"]["template"]
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod or f"{job}-5d9f8-x2x7q",
            "namespace": identity.namespace,
            "labels": dict(template["metadata"]["labels"]),
        },
        "spec": template["spec"],
        "status": {
            "phase": phase,
            "startTime": started,
            "containerStatuses": [{
                "name": "job",
                "restartCount": restarts,
                "state": state if state is not None else running(),
                "lastState": last_state or {},
            }],
        },
    }
