"""What the commands talk to: the jobs API (the usual way), or Kubernetes directly.

:class:`Backend` is the set of operations the commands use, in the API client's terms
(:class:`~tjf_http.client.RemoteJob`, plain dicts of :mod:`tjf_core.views`), so a command never
knows which one it has. :func:`connect` picks by configuration: ``api`` is a
:class:`~tjf_http.client.JobsClient` presenting the tool's certificate, or, on a local
``tjf-api``'s unix socket, only its unix user; ``direct`` (:mod:`tjf_cli.direct`) runs
:class:`~tjf_core.service.JobService` in this process over the tool's own kubeconfig, and is the
only path that imports the Kubernetes client.

When nothing configures the API's URL, :func:`with_local_api` looks for a local ``tjf-api``
where :func:`tjf_core.local_identity.socket_candidates` says its socket is.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tjf_core.errors import ConfigurationError

if TYPE_CHECKING:
    from tjf_cli.config import CliConfig
    from tjf_core.model import JobSpec
    from tjf_http.client import RemoteJob, RemoteJobs

__all__ = ["Backend", "connect", "with_local_api"]


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


def with_local_api(config: CliConfig, *, environ: Mapping[str, str], uid: int,
                   exists: Callable[[str], bool] = os.path.exists) -> CliConfig:
    """``config``, with a local ``tjf-api``'s socket as the API when nothing names another.

    The socket is the first of :func:`~tjf_core.local_identity.socket_candidates` (for user
    ``uid``) that ``exists``; when none does, ConfigurationError says how to configure an API
    or start a local one. Direct mode, or a configured URL, leave ``config`` as it is.
    """
    if config.mode != "api" or config.api_url is not None:
        return config
    from tjf_core.local_identity import SOCKET_VARIABLE, socket_candidates

    candidates = socket_candidates(environ, uid=uid)
    for candidate in candidates:
        if exists(str(candidate)):
            source = (f"the environment variable {SOCKET_VARIABLE}"
                      if environ.get(SOCKET_VARIABLE) else
                      "the default local socket, as no jobs API URL is configured")
            return attrs.evolve(config, api_url=f"unix://{candidate}", api_url_source=source)
    looked = " or ".join(str(candidate) for candidate in candidates)
    raise ConfigurationError(
        f"no jobs API is configured, and no local one runs here (no socket at {looked}): set "
        "api_gateway.url in ~/.toolforge.yaml (or /etc/toolforge/common.yaml), or the "
        "environment variable TJF_API_URL; or start `tjf-api` in local mode (or set "
        f"{SOCKET_VARIABLE} to its socket)")


def connect(config: CliConfig, *, environ: Mapping[str, str], home: Path, now: datetime,
            timeout: float | None = None) -> Backend:
    """The backend the configuration asks for, with the tool's certificate checked.

    ``timeout`` (seconds) replaces the configured one when shorter (shell completion must
    not hang). A unix socket's API needs no certificate: the tool is this process's unix user.
    """
    from tjf_cli.certificate import load_tool_certificate

    seconds = config.timeout if timeout is None else min(timeout, config.timeout)
    if config.mode == "api" and config.api_url is not None:
        from tjf_http.client import JobsClient, is_unix_url

        if is_unix_url(config.api_url):
            return JobsClient(config.api_url, certificate=None, timeout=seconds)
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
