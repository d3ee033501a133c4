"""The use cases every front end calls: run, get, list, delete, flush, restart, apply, logs …

``JobService`` turns one request of one tool into calls on a :class:`~tjf_core.runtime.Runtime`,
using the pure layers for everything else: it validates (image catalog, LimitRange) BEFORE it
creates anything, renders, reads objects back, computes status from one listing, plans an apply
and carries the plan out only when every desired job is valid. It never half-applies: a job
whose second object (a Service) fails is removed again.

The clock is injected (``clock``), so status and restarts are testable with a fixed time.

Reading a job back (its spec, and whether the live object is what that spec renders to) is a
pure function of the object, which a uid and a resourceVersion name exactly: the service
remembers it for the objects it saw last (``readback_cache`` of them), so listing unchanged
jobs does not re-render each one. Status is computed afresh every time (it depends on the time).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from tjf_core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    NotRestartableError,
    Problem,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import Image, ImageCatalog
from tjf_core.logfiles import follow_lines, tail_lines
from tjf_core.model import JobKind, JobSpec
from tjf_core.plan import Action, Plan, PlannedChange, make_plan
from tjf_core.quota import QuotaCategory, limit_problems, quota_categories
from tjf_core.readback import is_up_to_date, read_spec
from tjf_core.render import ToolContext, log_paths, render_job, schedule_actual
from tjf_core.restart import render_manual_run, render_restart_patch
from tjf_core.runtime import Manifest, Runtime, ToolObjects
from tjf_core.settings import Settings
from tjf_core.status import JobObjects, JobStatus, group_objects, job_status

#: Readback results remembered by a service: more than the jobs of several busy tools.
READBACK_CACHE = 4096

__all__ = ["ApplyResult", "Job", "JobList", "JobService"]

log = logging.getLogger(__name__)

#: The most log lines one request may ask for (the tail is held in memory).
MAX_LOG_LINES = 1_000_000

_MAIN_KIND = {JobKind.ONE_OFF: "Job", JobKind.SCHEDULED: "CronJob",
              JobKind.CONTINUOUS: "Deployment"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@attrs.frozen(kw_only=True)
class Job:
    """A job as a front end shows it: its definition, where it runs, and how it is doing."""

    spec: JobSpec
    status: JobStatus
    #: The schedule the CronJob runs (macros spread); None unless scheduled.
    schedule_actual: str | None
    #: The catalog entry of the image; None when the catalog no longer has it.
    image: Image | None


@attrs.frozen(kw_only=True)
class JobList:
    jobs: tuple[Job, ...]
    #: Objects that could not be read back as jobs, each explained (e.g. edited by hand).
    warnings: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ApplyResult:
    """What an apply did (or, with ``dry_run``, would do), per job."""

    plan: Plan
    dry_run: bool


@attrs.define
class JobService:
    """The use cases, for one runtime. Thread-safe as long as the runtime is."""

    runtime: Runtime
    settings: Settings = attrs.field(factory=Settings, kw_only=True)
    clock: Callable[[], datetime] = attrs.field(default=_utc_now, kw_only=True)
    #: The tool's unix uid for the pod security context (None: leave it to the image).
    uid_of: Callable[[str], int | None] = attrs.field(default=lambda tool: None, kw_only=True)
    #: How long a log follower waits between looks at the file or the job.
    follow_interval: float = attrs.field(default=1.0, kw_only=True)
    sleep: Callable[[float], None] = attrs.field(default=time.sleep, kw_only=True)
    #: How many objects' readback is remembered (0: none).
    readback_cache: int = attrs.field(default=READBACK_CACHE, kw_only=True)
    _readback: dict[tuple[object, ...], tuple[ImageCatalog, JobSpec, bool]] = attrs.field(
        factory=dict, init=False, repr=False, eq=False)
    _readback_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False,
                                                 repr=False, eq=False)

    # --- reading -------------------------------------------------------------------------

    def identity(self, tool: str) -> ToolIdentity:
        """The identity of ``tool`` under this service's settings."""
        return ToolIdentity.for_tool(tool, settings=self.settings.identity)

    def images(self) -> builtins.list[Image]:
        """The images jobs can use (stable ones, sorted)."""
        return self.runtime.image_catalog().stable()

    def list(self, tool: ToolIdentity) -> JobList:
        """Every job of the tool with its status, from one listing of the runtime."""
        objects = self.runtime.list_objects(tool)
        catalog = self.runtime.image_catalog()
        jobs: builtins.list[Job] = []
        warnings: builtins.list[str] = []
        for grouped in self._grouped(objects).values():
            try:
                jobs.append(self._job(tool, grouped, catalog))
            except InvalidInputError as error:
                log.warning("tool %s: skipping unreadable job %s: %s", tool.tool, grouped.name,
                            error)
                warnings.append(f"job {grouped.name!r} cannot be read: {error}")
        jobs.sort(key=lambda job: job.spec.name)
        return JobList(jobs=tuple(jobs), warnings=tuple(warnings))

    def get(self, tool: ToolIdentity, name: str) -> Job:
        """One job; NotFoundError when the tool has no job of that name."""
        grouped = self._grouped(self.runtime.list_objects(tool, job=name)).get(name)
        if grouped is None:
            raise NotFoundError(f"job {name!r} does not exist")
        return self._job(tool, grouped, self.runtime.image_catalog())

    def quota(self, tool: ToolIdentity) -> builtins.list[QuotaCategory]:
        resource_quota, limit_range = self.runtime.quota(tool)
        return quota_categories(resource_quota=resource_quota, limit_range=limit_range)

    # --- changing ------------------------------------------------------------------------

    def run(self, tool: ToolIdentity, spec: JobSpec) -> Job:
        """Create a job. A finished one-off job of the same name is replaced.

        Everything is checked before anything is created: the image against the catalog,
        cpu and memory against the namespace's LimitRange.
        """
        catalog = self.runtime.image_catalog()
        manifests = self._validated_manifests(tool, spec, catalog,
                                              limit_range=self.runtime.quota(tool)[1])
        existing = self._grouped(self.runtime.list_objects(tool, job=spec.name)).get(spec.name)
        if existing is not None:
            if not self._finished_one_off(tool, existing, catalog):
                raise AlreadyExistsError(f"a job named {spec.name!r} already exists")
            self.runtime.delete_job(tool, spec.name)
        self._create_all(tool, manifests)
        return self.get(tool, spec.name)

    def delete(self, tool: ToolIdentity, name: str) -> None:
        """Delete one job and everything it made; NotFoundError if there is no such job."""
        if not self.runtime.delete_job(tool, name):
            raise NotFoundError(f"job {name!r} does not exist")

    def flush(self, tool: ToolIdentity) -> None:
        """Delete every job of the tool."""
        self.runtime.delete_all(tool)

    def restart(self, tool: ToolIdentity, name: str) -> None:
        """Run a scheduled job now, or replace a continuous job's pods (a rolling restart)."""
        job = self.get(tool, name)
        if job.spec.kind is JobKind.ONE_OFF:
            raise NotRestartableError(
                f"job {name!r} is a one-off job and cannot be restarted: run it again instead"
            )
        now = self.clock()
        if job.spec.kind is JobKind.SCHEDULED:
            cronjob = self.runtime.get(tool, kind="CronJob", name=name)
            if cronjob is None:
                raise NotFoundError(f"job {name!r} does not exist")
            self.runtime.create(tool, render_manual_run(cronjob, now=now))
        else:
            self.runtime.patch(tool, kind="Deployment", name=name,
                               patch=render_restart_patch(now=now))

    def apply(
        self, tool: ToolIdentity, desired: Sequence[JobSpec], *, only: str | None = None,
        dry_run: bool = False,
    ) -> ApplyResult:
        """Make the tool's jobs equal to ``desired`` (a jobs file): create, update, delete.

        Every desired job is validated (catalog, LimitRange) first; if any is invalid, nothing
        changes. Unchanged jobs are not touched. With ``only``, just that job is considered.
        """
        catalog = self.runtime.image_catalog()
        limit_range = self.runtime.quota(tool)[1]
        manifests: dict[str, builtins.list[Manifest]] = {}
        problems: builtins.list[Problem] = []
        for spec in desired:
            if only is not None and spec.name != only:
                continue
            try:
                manifests[spec.name] = self._validated_manifests(
                    tool, spec, catalog, limit_range=limit_range)
            except InvalidInputError as error:
                problems.extend(p.under(spec.name) for p in error.problems)
        if problems:
            raise InvalidInputError(problems)
        objects = self.runtime.list_objects(tool)
        current: builtins.list[JobSpec] = []
        stale: set[str] = set()
        unreadable: set[str] = set()
        for grouped in self._grouped(objects).values():
            try:
                spec, up_to_date = self._read_back(tool, grouped.main, catalog)
            except InvalidInputError:
                unreadable.add(grouped.name)  # replaced by the file's definition, if it has one
                continue
            current.append(spec)
            if not up_to_date:
                stale.add(grouped.name)
        plan = make_plan(desired, current, only=only, stale=stale)
        if not dry_run:
            for change in plan.changes:
                if change.action is Action.CREATE and change.name in unreadable:
                    self.runtime.delete_job(tool, change.name)
                self._carry_out(tool, change, manifests)
        return ApplyResult(plan=plan, dry_run=dry_run)

    def upsert(self, tool: ToolIdentity, spec: JobSpec) -> tuple[Job, bool]:
        """Create the job, or make the existing one equal to ``spec``; and whether it changed.

        The apply of a one-job file (``only=spec.name``): an unchanged job is left running,
        other jobs are never touched.
        """
        result = self.apply(tool, [spec], only=spec.name)
        return self.get(tool, spec.name), result.plan.has_changes

    # --- logs ----------------------------------------------------------------------------

    def logs(
        self, tool: ToolIdentity, name: str, *, lines: int | None = None, follow: bool = False,
        keep_following: Callable[[], bool] | None = None,
    ) -> Iterator[str]:
        """The job's output: its log files when filelog is on, else its newest pod's log.

        With ``follow``, lines keep coming until the job is no longer running, or until
        ``keep_following()`` says False (a front end whose client went away); the latter is
        looked at between reads of the log files. ``lines`` is 1 to 1,000,000.
        """
        if lines is not None and not 1 <= lines <= MAX_LOG_LINES:
            raise InvalidInputError(
                [Problem("lines", f"{lines} is not allowed, use 1 to {MAX_LOG_LINES:,}")])
        job = self.get(tool, name)
        paths = log_paths(job.spec, home=tool.home)
        if paths is None:
            return self._pod_logs(tool, name, lines=lines, follow=follow)
        if not follow:
            return tail_lines(tool.home, paths, lines=lines)

        def keep_going() -> bool:
            wanted = keep_following is None or keep_following()
            return wanted and self._is_running(tool, name)

        return follow_lines(tool.home, paths, lines=lines, sleep=self.sleep,
                            interval=self.follow_interval, keep_going=keep_going)

    # --- helpers -------------------------------------------------------------------------

    def _context(self, tool: ToolIdentity) -> ToolContext:
        return ToolContext(identity=tool, uid=self.uid_of(tool.tool))

    def _grouped(self, objects: ToolObjects) -> dict[str, JobObjects]:
        return group_objects(
            mains=[*objects.jobs, *objects.cronjobs, *objects.deployments],
            jobs=(), pods=objects.pods, events=objects.events,
        )

    def _read_back(self, tool: ToolIdentity, main: Mapping[str, Any],
                   catalog: ImageCatalog) -> tuple[JobSpec, bool]:
        """The spec of a job's main object and whether the object is up to date with it."""
        context = self._context(tool)
        metadata = main.get("metadata") or {}
        uid, version = metadata.get("uid"), metadata.get("resourceVersion")
        key: tuple[object, ...] | None = None
        if self.readback_cache > 0 and isinstance(uid, str) and uid and isinstance(
                version, str) and version:
            # The same object (uid) unchanged (resourceVersion), read for the same tool with
            # the same settings: the same answer. The catalog is compared by identity.
            key = (uid, version, main.get("kind"), context, self.settings.render)
            found = self._readback.get(key)
            if found is not None and found[0] is catalog:
                return found[1], found[2]
        spec = read_spec(main, home=tool.home, catalog=catalog)
        current = is_up_to_date(main, tool=context, settings=self.settings.render,
                                catalog=catalog, spec=spec)
        if key is not None:
            with self._readback_lock:
                self._readback.pop(key, None)
                self._readback[key] = (catalog, spec, current)
                while len(self._readback) > self.readback_cache:
                    del self._readback[next(iter(self._readback))]  # the oldest first
        return spec, current

    def _job(self, tool: ToolIdentity, grouped: JobObjects, catalog: ImageCatalog) -> Job:
        spec, current = self._read_back(tool, grouped.main, catalog)
        status = job_status(grouped, spec=spec, now=self.clock(), up_to_date=current,
                            tool=tool.tool)
        try:
            image: Image | None = catalog.resolve(spec.image)
        except InvalidInputError:
            image = None
        return Job(spec=spec, status=status, image=image,
                   schedule_actual=schedule_actual(spec, tool=tool.tool))

    def _validated_manifests(
        self, tool: ToolIdentity, spec: JobSpec, catalog: ImageCatalog, *,
        limit_range: Manifest | None,
    ) -> builtins.list[Manifest]:
        problems = limit_problems(memory=spec.memory, cpu=spec.cpu, limit_range=limit_range)
        if problems:
            raise LimitExceededError(problems)
        return render_job(spec, tool=self._context(tool), settings=self.settings.render,
                          catalog=catalog)

    def _create_all(self, tool: ToolIdentity, manifests: Sequence[Manifest]) -> None:
        created: builtins.list[Manifest] = []
        try:
            for manifest in manifests:
                created.append(self.runtime.create(tool, manifest))
        except Exception:
            if created:  # never leave half a job behind
                self.runtime.delete_job(tool, manifests[0]["metadata"]["name"])
            raise

    def _finished_one_off(self, tool: ToolIdentity, grouped: JobObjects,
                          catalog: ImageCatalog) -> bool:
        # Not by the object's "kind": the items of an API list carry none.
        try:
            job = self._job(tool, grouped, catalog)
        except InvalidInputError:
            return False
        return job.spec.kind is JobKind.ONE_OFF and job.status.short.value in (
            "succeeded", "failed")

    def _carry_out(self, tool: ToolIdentity, change: PlannedChange,
                   manifests: dict[str, builtins.list[Manifest]]) -> None:
        if change.action is Action.DELETE:
            self.runtime.delete_job(tool, change.name)
        elif change.action is Action.CREATE:
            self._create_all(tool, manifests[change.name])
        elif change.action is Action.UPDATE:
            new = change.desired
            old = change.current
            if old is None or new is None or old.kind is not new.kind or (
                old.port is not None and new.port is None
            ):
                # A different kind of object (or a Service to drop): replace the whole job.
                self.runtime.delete_job(tool, change.name)
                self._create_all(tool, manifests[change.name])
            else:
                for manifest in manifests[change.name]:
                    self.runtime.replace(tool, manifest)

    def _pod_logs(self, tool: ToolIdentity, name: str, *, lines: int | None,
                  follow: bool) -> Iterator[str]:
        grouped = self._grouped(self.runtime.list_objects(tool, job=name)).get(name)
        pods = sorted(grouped.pods if grouped else (),
                      key=lambda pod: pod.get("metadata", {}).get("creationTimestamp", ""))
        if not pods:
            return iter(())
        pod_name = pods[-1]["metadata"]["name"]
        return self.runtime.pod_logs(tool, pod=pod_name, lines=lines, follow=follow)

    def _is_running(self, tool: ToolIdentity, name: str) -> bool:
        try:
            job = self.get(tool, name)
        except NotFoundError:
            return False
        return job.status.short.value in ("pending", "running") or (
            job.spec.kind is not JobKind.ONE_OFF
        )
