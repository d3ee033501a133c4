"""Settings of the local runtime: back-offs, grace periods, the default quota, the environment.

One frozen class, built once by whoever wires the runtime (``tjf-api`` without a cluster, a
test, a benchmark). The defaults are Kubernetes' own timings and Toolforge's quota, so a local
job behaves as it would on the cluster; tests shorten the timings.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

__all__ = ["DEFAULT_LIMIT_RANGE", "DEFAULT_QUOTA", "LocalSettings"]

#: What maintain-kubeusers gives a Toolforge tool's namespace (ResourceQuota ``spec.hard``).
DEFAULT_QUOTA: Mapping[str, str] = MappingProxyType({
    "requests.cpu": "2", "requests.memory": "6Gi", "limits.cpu": "2", "limits.memory": "8Gi",
    "pods": "16", "services": "1", "count/jobs.batch": "15", "count/cronjobs.batch": "50",
    "count/deployments.apps": "16",
})
#: The ``type: Container`` entry of a Toolforge tool's LimitRange.
DEFAULT_LIMIT_RANGE: Mapping[str, Any] = MappingProxyType({
    "type": "Container",
    "default": {"cpu": "500m", "memory": "512Mi"},
    "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
    "max": {"cpu": "1", "memory": "4Gi"},
    "min": {"cpu": "50m", "memory": "100Mi"},
})
_CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be more than 0, got {value}")


@attrs.frozen(kw_only=True)
class LocalSettings:
    """How the local runtime supervises processes (times in seconds)."""

    #: The longest the supervisor sleeps between two looks at its jobs. Exits, creates and
    #: deletes wake it at once; this only bounds how late a timer may be noticed.
    tick: float = attrs.field(default=1.0, validator=_positive)
    #: SIGTERM to SIGKILL when a process is stopped; None: the pod's
    #: ``terminationGracePeriodSeconds`` (15 s as rendered).
    grace_period: float | None = None
    #: A continuous job's container is restarted after ``restart_backoff * 2**(n-1)`` seconds
    #: for its n-th consecutive failure, at most ``restart_backoff_max`` (the kubelet's 10 s
    #: doubling to 5 min), and after running ``backoff_reset`` seconds it starts over.
    restart_backoff: float = attrs.field(default=10.0, validator=_positive)
    restart_backoff_max: float = attrs.field(default=300.0, validator=_positive)
    backoff_reset: float = attrs.field(default=600.0, validator=_positive)
    #: A failed attempt of a Job is retried after ``retry_backoff * 2**(n-1)`` seconds, at most
    #: ``retry_backoff_max`` (the Job controller's 10 s doubling to 6 min).
    retry_backoff: float = attrs.field(default=10.0, validator=_positive)
    retry_backoff_max: float = attrs.field(default=360.0, validator=_positive)
    #: Multiplies the probes' periods (tests check health faster than every 10 s).
    probe_period_scale: float = attrs.field(default=1.0, validator=_positive)
    #: Limit each job's address space (RLIMIT_AS) to its memory limit.
    enforce_memory: bool = True
    #: The unix user a tool's jobs (and health checks) run as, ``{tool}`` replaced by the
    #: tool's name (Toolforge: ``tools.{tool}``); None: the runtime's own user. Any other user
    #: needs the runtime to run as root; log files it creates are given to that user.
    run_as: str | None = None
    #: Permissions of a tool's home, made at the tool's first job (given to ``run_as``'s user).
    home_mode: int = 0o700
    #: ``PATH`` inside a job, and more variables for every job (a job's own ``env`` wins).
    path: str = _CONTAINER_PATH
    environment: Mapping[str, str] = attrs.field(factory=dict, converter=dict)
    #: ResourceQuota ``hard`` items and the LimitRange ``Container`` entry of every tool that
    #: was not given its own with :meth:`~tjf_core.local.LocalRuntime.set_quota`.
    resource_quota: Mapping[str, str] = attrs.field(default=DEFAULT_QUOTA, converter=dict)
    limit_range: Mapping[str, Any] = attrs.field(default=DEFAULT_LIMIT_RANGE, converter=dict)
    #: Events older than this are forgotten (the apiserver's default event TTL).
    event_ttl: float = attrs.field(default=3600.0, validator=_positive)
    #: Finished runs kept in the history of each job.
    run_history: int = 100
    #: How often ``pod_logs(follow=True)`` looks for new lines.
    follow_interval: float = attrs.field(default=0.5, validator=_positive)

    def grace_for(self, pod_grace: object) -> float:
        """The SIGTERM-to-SIGKILL time for a pod whose spec says ``pod_grace`` seconds."""
        if self.grace_period is not None:
            return self.grace_period
        if isinstance(pod_grace, int | float) and not isinstance(pod_grace, bool):
            return max(float(pod_grace), 0.0)
        return 30.0  # Kubernetes' default
