"""Rendering: a validated job becomes the Kubernetes objects that run it.

Everything here is a pure function from (spec, tool, settings) to plain dicts with the API's
camelCase keys, ready for any client to send; no Kubernetes client types, no I/O, no clock. The
same input always gives the same dict, so the output can be golden-tested and compared with
live objects (:mod:`tjf_core.readback` re-renders to decide whether a live object is current).

What each kind becomes is fixed by REFERENCE §3: a one-off job is a ``batch/v1`` Job, a
scheduled one a CronJob, a continuous one a Deployment (plus a Service when it has a port).
Every top object carries the spec as canonical JSON (:data:`SPEC_ANNOTATION`) so it reads back
exactly; the labels exist for selectors, the emailer and humans.
"""

from __future__ import annotations

import functools
import shlex
from decimal import ROUND_CEILING, Context, Decimal
from pathlib import PurePosixPath
from typing import Any

import attrs

from tjf_core.convert import spec_to_json
from tjf_core.errors import InvalidJobError, Problem
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.model import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    HealthCheckType,
    JobKind,
    JobSpec,
    PortProtocol,
    tool_problems,
)
from tjf_core.quantity import Quantity, QuantityFormat
from tjf_core.schedule import kubernetes_schedule
from tjf_core.settings import RenderSettings

__all__ = [
    "COMPONENT_LABEL",
    "CRON_ANNOTATION",
    "EMAILS_LABEL",
    "FILELOG_LABEL",
    "MANAGED_BY",
    "MOUNT_LABEL",
    "NAME_LABEL",
    "SHELL",
    "SPEC_ANNOTATION",
    "Manifest",
    "ToolContext",
    "log_paths",
    "render_job",
    "schedule_actual",
    "selector_labels",
    "shell_line",
]

Manifest = dict[str, Any]

SPEC_ANNOTATION = "jobs.toolforge.org/spec"
CRON_ANNOTATION = "jobs.toolforge.org/cron-expression"

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
FILELOG_LABEL = "jobs.toolforge.org/filelog"
EMAILS_LABEL = "jobs.toolforge.org/emails"
MOUNT_LABEL = "toolforge.org/mount-storage"
MANAGED_BY = "toolforge-jobs-framework"
#: The container command before the shell line; readback recognises it.
SHELL = ("/bin/sh", "-c", "--")

_COMPONENTS = {
    JobKind.ONE_OFF: "jobs",
    JobKind.SCHEDULED: "cronjobs",
    JobKind.CONTINUOUS: "deployments",
}
_CONCURRENCY_POLICY = {"forbid": "Forbid", "allow": "Allow", "replace": "Replace"}
#: (periodSeconds, failureThreshold): up to two minutes to start, then checked every 10 s.
_STARTUP_PROBE = (1, 120)
_LIVENESS_PROBE = (10, 3)


@attrs.frozen(kw_only=True)
class ToolContext:
    """The tool a job belongs to, as rendering needs it."""

    identity: ToolIdentity
    #: The tool's unix uid (and gid); None leaves the user to the image, only forcing non-root.
    uid: int | None = None


def selector_labels(tool: str, job: str) -> dict[str, str]:
    """The labels that find a job's pods; only immutable ones (REFERENCE §3)."""
    return {
        "toolforge": "tool",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/created-by": tool,
        NAME_LABEL: job,
    }


def _labels(spec: JobSpec, tool: str) -> dict[str, str]:
    labels = selector_labels(tool, spec.name)
    labels[COMPONENT_LABEL] = _COMPONENTS[spec.kind]
    labels["app.kubernetes.io/version"] = "2"
    if spec.filelog:
        labels[FILELOG_LABEL] = "yes"
    labels[EMAILS_LABEL] = spec.emails.value
    labels[MOUNT_LABEL] = spec.mount.value
    return labels


def schedule_actual(spec: JobSpec, *, tool: str) -> str | None:
    """The schedule the CronJob runs: macros spread for (tool, job); None if not scheduled.

    This is the text written into the CronJob, so it is also what Kubernetes accepts (weekday
    7 written as 0), not only the spread macro.
    """
    if spec.schedule is None:
        return None
    return _cron_schedule(spec.schedule, tool, spec.name)


@functools.lru_cache(maxsize=4096)
def _cron_schedule(schedule: str, tool: str, job: str) -> str:
    # Parsing cron text is a tenth of rendering, and status polls re-render the same jobs.
    return kubernetes_schedule(schedule, tool=tool, job=job)


def log_paths(spec: JobSpec, *, home: PurePosixPath) -> tuple[str, str] | None:
    """The absolute stdout and stderr files of a job with filelog on; None when it is off."""
    if not spec.filelog or spec.filelog_stdout is None or spec.filelog_stderr is None:
        return None
    return _in_home(home, spec.filelog_stdout), _in_home(home, spec.filelog_stderr)


def _in_home(home: PurePosixPath, path: str) -> str:
    """``str(home / path)``; plain relative paths skip pathlib, which is slow to parse."""
    parts = path.split("/")
    if "" in parts or "." in parts:  # absolute, '//', trailing '/', './': let pathlib tidy
        return str(home / path)
    return f"{home}/{path}"


def shell_line(spec: JobSpec, *, home: PurePosixPath) -> str:
    """The ``sh -c`` line: the command, after redirecting to the log files when filelog is on."""
    paths = log_paths(spec, home=home)
    if paths is None:
        return spec.command
    # Quoted: a path with a space or a ';' must stay one file name, never become shell code.
    out, err = (shlex.quote(path) for path in paths)
    return f"exec 1>>{out};exec 2>>{err};{spec.command}"


_EXACT = Context(prec=60)
_HALF = Decimal("0.5")


@functools.lru_cache(maxsize=1024)
def _limit_and_request(
    limit: Quantity, fmt: QuantityFormat, default: Quantity, whole: bool
) -> tuple[str, str]:
    """The limit and request texts of one resource; ``whole`` rounds the request up to a unit.

    Memoized (jobs use few distinct amounts, and quantity arithmetic is slow next to the
    rest of rendering); ``fmt`` is only part of the key, since equal quantities may print
    differently (``1Gi``, ``1073741824``).
    """
    if limit <= default:
        # Up to the default, a job reserves what it may use; beyond it, half (REFERENCE §2).
        text = str(limit)
        return text, text
    # Exact in Decimal (a quantity has at most 28 digits); Quantity() then rounds up to a
    # nano as `limit / 2` would, without its slower rational arithmetic.
    half = _EXACT.multiply(limit.value, _HALF)
    if whole:
        # Half of an odd number of bytes: a fraction of a byte cannot be reserved.
        half = half.to_integral_value(rounding=ROUND_CEILING)
    return str(limit), str(Quantity(half, fmt))


def _resources(spec: JobSpec) -> dict[str, Any]:
    memory_limit, memory_request = _limit_and_request(
        spec.memory, spec.memory.format, DEFAULT_MEMORY, True
    )
    cpu_limit, cpu_request = _limit_and_request(spec.cpu, spec.cpu.format, DEFAULT_CPU, False)
    return {
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
        "requests": {"cpu": cpu_request, "memory": memory_request},
    }


def _probe_action(spec: JobSpec) -> dict[str, Any] | None:
    check = spec.health_check
    if check is not None and check.type is HealthCheckType.SCRIPT:
        return {"exec": {"command": ["/bin/sh", "-c", check.script]}}
    if check is not None and check.type is HealthCheckType.HTTP:
        return {"httpGet": {"path": check.path, "port": spec.port}}
    if spec.port is not None and spec.port_protocol is PortProtocol.TCP:
        return {"tcpSocket": {"port": spec.port}}
    return None


def _container(spec: JobSpec, *, image: str, home: PurePosixPath, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "workingDir": str(home),
        "command": [*SHELL, shell_line(spec, home=home)],
        "resources": _resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.port is not None:
        protocol = (spec.port_protocol or PortProtocol.TCP).value.upper()
        container["env"] = [{"name": "PORT", "value": str(spec.port)}]
        container["ports"] = [{"containerPort": spec.port, "protocol": protocol}]
    if spec.kind is JobKind.CONTINUOUS:
        for key, (period, failures) in (
            ("startupProbe", _STARTUP_PROBE),
            ("livenessProbe", _LIVENESS_PROBE),
        ):
            # Built afresh for each probe: the two must not share (mutable) parts.
            action = _probe_action(spec)
            if action is not None:
                container[key] = {**action, "periodSeconds": period, "failureThreshold": failures}
    return container


def _pod_template(
    spec: JobSpec, labels: dict[str, str], *, image: str, tool: ToolContext,
    settings: RenderSettings,
) -> dict[str, Any]:
    security: dict[str, Any] = {"runAsNonRoot": True}
    if tool.uid is not None:
        security = {"runAsUser": tool.uid, "runAsGroup": tool.uid, **security}
    home = tool.identity.home
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "restartPolicy": "Always" if spec.kind is JobKind.CONTINUOUS else "Never",
            "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
            "securityContext": security,
            "containers": [
                _container(spec, image=image, home=home, name=settings.container_name)
            ],
        },
    }


def _job_spec(spec: JobSpec, template: dict[str, Any], settings: RenderSettings) -> Manifest:
    job: Manifest = {
        "backoffLimit": spec.retry,
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
    }
    if spec.timeout is not None:
        job["activeDeadlineSeconds"] = spec.timeout
    job["template"] = template
    return job


def _metadata(
    spec: JobSpec, labels: dict[str, str], namespace: str, annotations: dict[str, str]
) -> Manifest:
    return {
        "name": spec.name,
        "namespace": namespace,
        "labels": labels,
        "annotations": annotations,
    }


def _render_problems(
    spec: JobSpec, *, tool: ToolContext, settings: RenderSettings
) -> list[Problem]:
    found = tool_problems(spec, home=tool.identity.home)
    if (
        spec.timezone is not None
        and spec.kind is JobKind.SCHEDULED
        and settings.cronjob_api_version == "batch/v1beta1"
    ):
        found.append(
            Problem(
                "timezone",
                f"{spec.timezone!r} cannot be used: this cluster's CronJobs (batch/v1beta1) "
                "have no time zone, remove it and write the schedule in UTC",
            )
        )
    return found


def render_job(
    spec: JobSpec, *, tool: ToolContext, settings: RenderSettings,
    catalog: ImageCatalog | None = None,
) -> list[Manifest]:
    """The objects that run ``spec``: the main object first, then a Service if it has a port.

    Raises InvalidJobError for what this tool or cluster cannot run (log files outside the
    home, a time zone on batch/v1beta1) and UnknownImageError for an image the catalog lacks.
    """
    problems = _render_problems(spec, tool=tool, settings=settings)
    if problems:
        raise InvalidJobError(problems)
    image = catalog.resolve(spec.image).url if catalog is not None else spec.image
    name = tool.identity.tool
    namespace = tool.identity.namespace
    labels = _labels(spec, name)
    template = _pod_template(spec, labels, image=image, tool=tool, settings=settings)
    annotations = {SPEC_ANNOTATION: spec_to_json(spec)}
    if spec.kind is JobKind.ONE_OFF:
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": _metadata(spec, labels, namespace, annotations),
                "spec": _job_spec(spec, template, settings),
            }
        ]
    if spec.kind is JobKind.SCHEDULED:
        return [_cronjob(spec, labels, template, annotations, tool=tool, settings=settings)]
    return _continuous(spec, labels, template, annotations, tool=tool)


def _cronjob(
    spec: JobSpec, labels: dict[str, str], template: dict[str, Any],
    annotations: dict[str, str], *, tool: ToolContext, settings: RenderSettings,
) -> Manifest:
    assert spec.schedule is not None  # a scheduled spec always has one (model invariant)
    annotations[CRON_ANNOTATION] = spec.schedule
    cron: Manifest = {
        "schedule": _cron_schedule(spec.schedule, tool.identity.tool, spec.name),
    }
    if spec.timezone is not None:
        cron["timeZone"] = spec.timezone
    policy = spec.concurrency.value if spec.concurrency is not None else "forbid"
    cron["concurrencyPolicy"] = _CONCURRENCY_POLICY[policy]
    cron["startingDeadlineSeconds"] = settings.starting_deadline_seconds
    cron["successfulJobsHistoryLimit"] = 1
    cron["failedJobsHistoryLimit"] = 1
    cron["jobTemplate"] = {
        "metadata": {"labels": dict(labels)},
        "spec": _job_spec(spec, template, settings),
    }
    return {
        "apiVersion": settings.cronjob_api_version,
        "kind": "CronJob",
        "metadata": _metadata(spec, labels, tool.identity.namespace, annotations),
        "spec": cron,
    }


def _continuous(
    spec: JobSpec, labels: dict[str, str], template: dict[str, Any],
    annotations: dict[str, str], *, tool: ToolContext,
) -> list[Manifest]:
    replicas = spec.replicas if spec.replicas is not None else 1
    selector = selector_labels(tool.identity.tool, spec.name)
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, labels, tool.identity.namespace, annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # One replica: never two copies at once (a bot must not run twice); more
            # replicas are meant to serve in parallel, so keep serving while rolling.
            "strategy": {"type": "Recreate" if replicas == 1 else "RollingUpdate"},
            "template": template,
        },
    }
    if spec.port is None:
        return [deployment]
    protocol = (spec.port_protocol or PortProtocol.TCP).value.upper()
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": spec.name,
            "namespace": tool.identity.namespace,
            "labels": dict(labels),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {"port": spec.port, "targetPort": spec.port, "protocol": protocol}
            ],
        },
    }
    return [deployment, service]
