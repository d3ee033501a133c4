"""What the commands talk to: the jobs API (the usual way), or Kubernetes directly.

:class:`Backend` is the set of operations the commands use, in the API client's terms
(:class:`~tjf_http.client.RemoteJob`, plain dicts of :mod:`tjf_core.views`), so a command never
knows which one it has. :func:`connect` picks by configuration: ``api`` is a
:class:`~tjf_http.client.JobsClient` presenting the tool's certificate; ``direct``
(:mod:`tjf_cli.direct`) runs :class:`~tjf_core.service.JobService` in this process over the
tool's own kubeconfig, and is the only path that imports the Kubernetes client.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tjf_core.errors import ConfigurationError

if TYPE_CHECKING:
    from tjf_cli.config import CliConfig
    from tjf_core.model import JobSpec
    from tjf_http.client import RemoteJob, RemoteJobs

__all__ = ["Backend", "connect"]


class Backend(Protocol):
    """The jobs of one tool."""

    @property
    def tool(self) -> str: ...

    def list(self) -> RemoteJobs: ...

    def get(self, name: str) -> RemoteJob: ...

    def run(self, spec: JobSpec) -> RemoteJob: ...

    def delete(self, name: str) -> None: ...

    def flush(self) -> None: ...

    def restart(self, name: str) -> None: ...

    def apply(self, jobs: Sequence[JobSpec], *, only: str | None = None,
              dry_run: bool = False) -> dict[str, Any]: ...

    def logs(self, name: str, *, lines: int | None = None,
             follow: bool = False) -> Iterator[str]: ...

    def quota(self) -> builtins.list[dict[str, Any]]: ...

    def images(self) -> builtins.list[dict[str, str]]: ...

    def close(self) -> None: ...


def connect(config: CliConfig, *, environ: Mapping[str, str], home: Path, now: datetime,
            timeout: float | None = None) -> Backend:
    """The backend the configuration asks for, with the tool's certificate checked.

    ``timeout`` (seconds) replaces the configured one when shorter (shell completion must
    not hang).
    """
    from tjf_cli.certificate import load_tool_certificate

    seconds = config.timeout if timeout is None else min(timeout, config.timeout)
    found = load_tool_certificate(environ, home=home, now=now)
    if config.mode == "direct":
        from tjf_cli.direct import DirectJobs

        return DirectJobs.from_kubeconfig(found.kubeconfig, tool=found.tool, timeout=seconds,
                                          images_file=config.images_file)
    if config.api_url is None:
        raise ConfigurationError(
            "no jobs API is configured: set api_gateway.url in ~/.toolforge.yaml (or "
            "/etc/toolforge/common.yaml), or the environment variable TJF_API_URL")
    from tjf_http.client import JobsClient

    return JobsClient(config.api_url, certificate=found.certificate, tool=found.tool,
                      ca_file=config.ca_file, timeout=seconds)
