"""The runtime the server runs jobs on, chosen by configuration: ``kubernetes``, ``memory`` or
``local``.

``kubernetes`` is production: :class:`tjf_core.kube.KubernetesRuntime`, imported only when
chosen (a memory demo needs no cluster client). ``memory`` keeps every object in the process
(:class:`~tjf_core.testing.InMemoryRuntime`): nothing ever runs, which is what demos, client
development and load tests of the API itself want; ``memory.delay_seconds`` makes each
runtime call take that long, to look like a cluster. ``local`` runs jobs as processes of this
machine: it is not built here but by :func:`tjf_http.local.local_mode_for`, since the app also
needs its peer identification and emailer (:meth:`tjf_http.local.LocalMode.install`).

Whether a runtime's calls may block is the runtime's to say (``blocking``): the server calls
one that never blocks on its event loop rather than in a thread (:mod:`tjf_http.executor`).
"""

from __future__ import annotations

import logging
import pwd
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from tjf_core.errors import ConfigurationError, RuntimeUnavailableError
from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog
from tjf_core.runtime import Manifest, Runtime, ToolObjects
from tjf_core.service import JobService
from tjf_core.testing import InMemoryRuntime
from tjf_http.config import Config

__all__ = ["MemoryRuntime", "SlowRuntime", "make_service", "uid_lookup"]

log = logging.getLogger("tjf_http")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_service(config: Config) -> tuple[JobService, Callable[[], None]]:
    """The service over the configured runtime, and how to release that runtime."""
    interval = config.http.server.follow_interval_seconds
    if config.runtime == "local":
        # Local mode is more than a service: the app needs its peer identification and
        # emailer, which only LocalMode.install gives it.
        raise ConfigurationError("make_service does not serve runtime 'local': use "
                                 "tjf_http.local.local_mode_for(config), then install it on "
                                 "the app")
    if config.runtime == "memory":
        runtime: Runtime = MemoryRuntime(clock=_utc_now)
        if config.memory.delay_seconds > 0:
            runtime = SlowRuntime(runtime, delay=config.memory.delay_seconds)
        service = JobService(runtime, settings=config.core, follow_interval=interval)
        return service, lambda: None
    from tjf_core.kube import KubernetesRuntime

    kube = KubernetesRuntime(config.kube_settings(),
                             container_name=config.core.render.container_name)
    service = JobService(kube, settings=config.core, follow_interval=interval,
                         uid_of=uid_lookup(config.core.identity.uid_user_template))
    return service, kube.close


def uid_lookup(template: str, *, ttl_seconds: float = 300.0,
               clock: Callable[[], float] = time.monotonic,
               getpwnam: Callable[[str], Any] = pwd.getpwnam) -> Callable[[str], int | None]:
    """The tool -> uid function for ``identity.uid_user_template`` (``tools.{tool}``).

    The system's user database answers (NSS: LDAP on Toolforge). Answers are kept for
    ``ttl_seconds``: a listing asks once per job, and tools are created while the server runs,
    so a miss is kept only a tenth as long. A tool with no such user is refused (503, naming
    the user): rendering its pods without ``runAsUser`` would run them as the image's user and
    make every existing job look out of date. No template: None (the image's user).
    """
    if not template:
        return lambda tool: None
    known: dict[str, tuple[float, int | None]] = {}

    def uid_of(tool: str) -> int | None:
        now = clock()
        found = known.get(tool)
        if found is None or found[0] <= now:
            user = template.format(tool=tool)
            try:
                found = (now + ttl_seconds, int(getpwnam(user).pw_uid))
            except KeyError:
                found = (now + ttl_seconds / 10, None)
            known[tool] = found
        if found[1] is None:
            user = template.format(tool=tool)
            log.warning("no unix user %r for tool %r (identity.uid_user_template)", user, tool)
            raise RuntimeUnavailableError(
                f"the tool {tool!r} has no unix user {user!r} on this server yet; "
                "try again later, or ask the administrators if it stays so")
        return found[1]

    return uid_of


class MemoryRuntime(InMemoryRuntime):
    """The in-memory runtime as the server uses it: its calls never block (a lock held for
    microseconds at most), so they are made on the event loop."""

    blocking: ClassVar[bool] = False


class SlowRuntime:
    """A runtime whose every call first waits ``delay`` seconds (then asks ``inner``)."""

    #: It sleeps: calls go to the thread pool.
    blocking: ClassVar[bool] = True

    def __init__(self, inner: Runtime, *, delay: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._inner = inner
        self._delay = delay
        self._sleep = sleep

    def _wait(self) -> None:
        self._sleep(self._delay)

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        self._wait()
        return self._inner.list_objects(tool, job=job)

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        self._wait()
        return self._inner.get(tool, kind=kind, name=name)

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._wait()
        return self._inner.create(tool, manifest)

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        self._wait()
        return self._inner.replace(tool, manifest)

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        self._wait()
        return self._inner.patch(tool, kind=kind, name=name, patch=patch)

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        self._wait()
        return self._inner.delete_job(tool, name)

    def delete_all(self, tool: ToolIdentity) -> None:
        self._wait()
        self._inner.delete_all(tool)

    def pod_logs(self, tool: ToolIdentity, *, pod: str, lines: int | None,
                 follow: bool) -> Iterator[str]:
        self._wait()
        return self._inner.pod_logs(tool, pod=pod, lines=lines, follow=follow)

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        self._wait()
        return self._inner.quota(tool)

    def image_catalog(self) -> ImageCatalog:
        self._wait()
        return self._inner.image_catalog()
