"""Direct mode: the jobs service in this process, acting with the tool's own kubeconfig.

For a cluster without the jobs API server (or to debug one), ``jobs.mode: direct`` runs
:class:`~tjf_core.service.JobService` over :class:`~tjf_core.kube.KubernetesRuntime` with the
kubeconfig the tool already has; RBAC is the tool's own, as with kubectl. Answers are shaped
by :mod:`tjf_core.views`, exactly as the API would send them, and read back the way the API
client reads them, so the commands cannot tell the modes apart.

This module imports the Kubernetes client (through :mod:`tjf_core.kube`): only
:func:`tjf_cli.backend.connect` imports it, and only in direct mode.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tjf_core.identity import ToolIdentity
from tjf_core.model import JobSpec
from tjf_core.service import JobService
from tjf_core.views import image_view, job_view, plan_view, quota_view
from tjf_http.client import RemoteJob, RemoteJobs

__all__ = ["DirectJobs"]


class DirectJobs:
    """The :class:`~tjf_cli.backend.Backend` operations over a JobService, for one tool."""

    def __init__(self, service: JobService, identity: ToolIdentity, *,
                 close: Callable[[], None] = lambda: None) -> None:
        self._service = service
        self._identity = identity
        self._close = close

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path, *, tool: str, timeout: float,
                        images_file: str | None = None) -> DirectJobs:
        from tjf_core.kube import KubernetesRuntime, KubeSettings

        # The template is formatted with the tool's home and name: braces in a real path
        # must not be read as fields.
        template = str(kubeconfig).replace("{", "{{").replace("}", "}}")
        settings = KubeSettings(
            kubeconfig_template=template,
            # The image catalog is read with the same (the tool's) credentials.
            service_kubeconfig=str(kubeconfig),
            request_timeout_seconds=timeout,
            images_file=images_file,
        )
        runtime = KubernetesRuntime(settings)
        service = JobService(runtime)
        return cls(service, service.identity(tool), close=runtime.close)

    @property
    def tool(self) -> str:
        return self._identity.tool

    def list(self) -> RemoteJobs:
        listed = self._service.list(self._identity)
        return RemoteJobs(jobs=tuple(RemoteJob.from_view(job_view(job)) for job in listed.jobs),
                          warnings=listed.warnings)

    def get(self, name: str) -> RemoteJob:
        return RemoteJob.from_view(job_view(self._service.get(self._identity, name)))

    def run(self, spec: JobSpec) -> RemoteJob:
        return RemoteJob.from_view(job_view(self._service.run(self._identity, spec)))

    def delete(self, name: str) -> None:
        self._service.delete(self._identity, name)

    def flush(self) -> None:
        self._service.flush(self._identity)

    def restart(self, name: str) -> None:
        self._service.restart(self._identity, name)

    def apply(self, jobs: Sequence[JobSpec], *, only: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        return plan_view(self._service.apply(self._identity, jobs, only=only, dry_run=dry_run))

    def logs(self, name: str, *, lines: int | None = None,
             follow: bool = False) -> Iterator[str]:
        return self._service.logs(self._identity, name, lines=lines, follow=follow)

    def quota(self) -> builtins.list[dict[str, Any]]:
        return list(quota_view(self._service.quota(self._identity))["categories"])

    def images(self) -> builtins.list[dict[str, str]]:
        return [image_view(image) for image in self._service.images()]

    def close(self) -> None:
        self._close()
