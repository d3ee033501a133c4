"""The seam between the use cases and whatever runs jobs: the ``Runtime`` protocol.

:class:`~tjf_core.service.JobService` decides WHAT to do (render, validate, plan, compute
status); a runtime only stores and fetches objects of one tool. Two runtimes implement it:
``tjf_core.kube.KubernetesRuntime`` (the real cluster) and ``tjf_core.testing.InMemoryRuntime``
(a fake for fast tests of the service and the front ends). One contract test suite runs against
both, so they cannot drift.

Objects cross this seam as plain dicts in the Kubernetes API's JSON shape (camelCase keys), the
same shape :mod:`tjf_core.render` produces and :mod:`tjf_core.status` reads. Errors are the
core's (:mod:`tjf_core.errors`): a runtime translates its own failures (HTTP 409 ->
``AlreadyExistsError``, quota 403 -> ``QuotaExceededError``, unreachable ->
``RuntimeUnavailableError`` …) so that no caller ever sees a client library's exception.

Two optional extras a front end may use, read with ``getattr`` because most runtimes have
neither: a ``blocking`` attribute (``False`` when no call ever waits on I/O, so a server may
call it on its event loop instead of in a thread), and an ``abort()`` method on the iterator
``pod_logs`` returns, safe to call from another thread, that ends a followed log at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import attrs

from tjf_core.identity import ToolIdentity
from tjf_core.images import ImageCatalog

__all__ = ["Manifest", "Runtime", "ToolObjects"]

Manifest = dict[str, Any]


@attrs.frozen(kw_only=True)
class ToolObjects:
    """Everything live that belongs to one tool's jobs, as one listing returns it.

    ``jobs`` holds every Job managed by the framework, including the runs of CronJobs
    (:func:`tjf_core.status.group_objects` tells them apart).
    """

    jobs: tuple[Manifest, ...] = ()
    cronjobs: tuple[Manifest, ...] = ()
    deployments: tuple[Manifest, ...] = ()
    pods: tuple[Manifest, ...] = ()
    events: tuple[Manifest, ...] = ()


class Runtime(Protocol):
    """What the service needs from a place that runs jobs; every method acts on ONE tool.

    Kinds are the Kubernetes kinds the renderer makes: ``Job``, ``CronJob``, ``Deployment``,
    ``Service``.
    """

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        """The tool's framework-managed Jobs, CronJobs, Deployments, their pods and events.

        A constant number of calls whatever the number of jobs (one per kind, pods, events).
        With ``job``, only the objects labelled as that job's (``app.kubernetes.io/name``);
        events are the namespace's either way (they carry no labels).
        """
        ...

    def get(self, tool: ToolIdentity, *, kind: str, name: str) -> Manifest | None:
        """One object by kind and name, or None."""
        ...

    def create(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        """Create ``manifest``; AlreadyExistsError if its name is taken. Returns the live object."""
        ...

    def replace(self, tool: ToolIdentity, manifest: Manifest) -> Manifest:
        """Create ``manifest``, or replace the object of that kind and name.

        Where the runtime refuses an in-place change (an immutable field), the old object is
        deleted and the new one created.
        """
        ...

    def patch(self, tool: ToolIdentity, *, kind: str, name: str, patch: Manifest) -> Manifest:
        """Apply a strategic-merge ``patch``; NotFoundError if the object does not exist."""
        ...

    def delete_job(self, tool: ToolIdentity, name: str) -> bool:
        """Delete every object of job ``name`` (selected by its identity labels), pods included.

        Returns without waiting for pods to terminate. True if anything was deleted.
        """
        ...

    def delete_all(self, tool: ToolIdentity) -> None:
        """Delete every framework-managed object of the tool, without waiting."""
        ...

    def pod_logs(
        self, tool: ToolIdentity, *, pod: str, lines: int | None, follow: bool
    ) -> Iterator[str]:
        """The log lines of the job container of ``pod`` (the last ``lines`` when given)."""
        ...

    def quota(self, tool: ToolIdentity) -> tuple[Manifest | None, Manifest | None]:
        """The tool's ResourceQuota and LimitRange (None where the namespace has none)."""
        ...

    def image_catalog(self) -> ImageCatalog:
        """The current image catalog (the last good one if a refresh failed)."""
        ...
