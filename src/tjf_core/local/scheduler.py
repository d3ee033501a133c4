"""The local CronJob controller: fires scheduled jobs at their cron times, in their time zone.

Each CronJob remembers the last fire time it dealt with (``status.lastScheduleTime``, else its
creation), and the next one is computed from it with :func:`tjf_core.schedule.next_fire` in
the CronJob's ``timeZone``. When that time has come, the LATEST fire time that has passed is
the one run (several missed while the runtime was stopped make one run, as Kubernetes does),
and only if it is less than ``startingDeadlineSeconds`` old; an older one is skipped.

``concurrencyPolicy`` as rendered: ``Forbid`` does not start a run while one is active (it
tries again until the deadline passes), ``Replace`` deletes the active runs first, ``Allow``
just starts another. A run is a Job named ``<cronjob>-<minutes since the epoch>`` made from
``jobTemplate`` and owned by the CronJob, and started in the same round; a run refused by the
``count/jobs.batch`` quota is a FailedCreate event on the CronJob, tried again until the
deadline passes. Finished runs beyond
``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are deleted.

Manual runs (``JobService.restart``) are Jobs the service creates itself with the manual-run
annotation; they need nothing from here. All methods expect the store's lock to be held.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from tjf_core.errors import InvalidInputError
from tjf_core.local.controllers import Controllers, finished, reference
from tjf_core.local.events import record_event
from tjf_core.local.store import LocalStore, Space
from tjf_core.objectstore import (
    QUOTA_KEYS,
    admission_refusal,
    count_request,
    json_copy,
    owner_uids,
    stamp,
)
from tjf_core.pods import created_at, time_at
from tjf_core.runtime import Manifest
from tjf_core.schedule import next_fire, previous_fire

__all__ = ["Scheduler"]

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


@attrs.frozen
class _Plan:
    """When a CronJob is next due, for one version of it and one last fire time."""

    version: tuple[str, str | None, datetime]  # schedule, time zone, last fire dealt with
    due: datetime | None


class Scheduler:
    """Fires the CronJobs of every space."""

    def __init__(self, *, store: LocalStore, controllers: Controllers) -> None:
        self.store = store
        self.controllers = controllers
        self._plans: dict[str, _Plan] = {}  # by CronJob uid
        #: Fire times skipped as too late (they leave lastScheduleTime as it was).
        self._skipped: dict[str, datetime] = {}

    def reconcile(self, now: datetime) -> float | None:
        """One round over every CronJob; returns when the next one is due (or None)."""
        due: list[float] = []
        seen: set[str] = set()
        for space in list(self.store.spaces.values()):
            for cronjob in list(space.of_kind("CronJob")):
                seen.add(cronjob["metadata"]["uid"])
                when = self._cronjob(space, cronjob, now)
                if when is not None:
                    due.append(when.timestamp())
        for uid in set(self._plans) - seen:
            del self._plans[uid]
            self._skipped.pop(uid, None)
        return min(due, default=None)

    def _cronjob(self, space: Space, cronjob: Manifest, now: datetime) -> datetime | None:
        spec = cronjob.get("spec") or {}
        runs = self._runs(space, cronjob)
        self._sync_status(space, cronjob, runs)
        self._trim_history(space, cronjob, runs)
        schedule, tz = spec.get("schedule"), spec.get("timeZone")
        if not isinstance(schedule, str) or spec.get("suspend"):
            return None
        uid = cronjob["metadata"]["uid"]
        last = time_at(cronjob, "status", "lastScheduleTime") or created_at(cronjob)
        last = max(last, self._skipped.get(uid, last))
        plan = self._plan(cronjob, schedule, tz, last, now)
        if plan.due is None or now < plan.due:
            return plan.due
        latest = self._fire_time(cronjob, schedule, tz, now) or plan.due
        deadline = spec.get("startingDeadlineSeconds")
        late = isinstance(deadline, int) and now - latest > timedelta(seconds=deadline)
        active = [job for job in runs if finished(job) is None]
        policy = spec.get("concurrencyPolicy", "Allow")
        if not late and active and policy == "Forbid":
            # Tried again next round, until the deadline passes.
            return now + timedelta(seconds=1)
        if late:
            self._skipped[uid] = latest
        else:
            if active and policy == "Replace":
                self.controllers.delete(space, [("Job", job["metadata"]["name"])
                                                for job in active])
            if not self._fire(space, cronjob, latest, now):
                return now + timedelta(seconds=1)  # refused by quota: tried again
            cronjob.setdefault("status", {})["lastScheduleTime"] = stamp(latest)
            self.store.touch(space, cronjob)
        return self._plan(cronjob, schedule, tz, latest, now).due

    def _plan(self, cronjob: Manifest, schedule: str, tz: str | None, last: datetime,
              now: datetime) -> _Plan:
        uid = cronjob["metadata"]["uid"]
        version = (schedule, tz, last)
        plan = self._plans.get(uid)
        if plan is None or plan.version != version:
            try:
                due: datetime | None = next_fire(schedule, after=last, tz=tz,
                                                 job=cronjob["metadata"]["name"])
            except InvalidInputError as error:
                record_event(self.store, self._space_of(cronjob), kind="CronJob",
                             name=cronjob["metadata"]["name"], reason="InvalidSchedule",
                             message=str(error), now=now)
                due = None
            plan = self._plans[uid] = _Plan(version, due)
        return plan

    def _space_of(self, cronjob: Manifest) -> Space:
        return self.store.spaces[cronjob["metadata"]["namespace"]]

    @staticmethod
    def _fire_time(cronjob: Manifest, schedule: str, tz: str | None,
                   now: datetime) -> datetime | None:
        try:
            return previous_fire(schedule, before=now, tz=tz, job=cronjob["metadata"]["name"])
        except InvalidInputError:
            return None

    def _fire(self, space: Space, cronjob: Manifest, scheduled: datetime,
              now: datetime) -> bool:
        """Make the run of ``scheduled``; False if quota refused it."""
        name = cronjob["metadata"]["name"]
        run_name = f"{name}-{int(scheduled.timestamp()) // 60}"
        if ("Job", run_name) in space.objects:
            return True
        template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
        meta = template.get("metadata") or {}
        count = sum(1 for _ in space.of_kind("Job"))
        refusal = admission_refusal(
            self.controllers.quota(space), resource=QUOTA_KEYS["Job"][0], name=run_name,
            namespace=space.namespace, requested=count_request("Job"),
            used=lambda key: Decimal(count))
        if refusal is not None:
            record_event(self.store, space, kind="CronJob", name=name, reason="FailedCreate",
                         message=f"Error creating job: {refusal}", now=now)
            return False
        annotations = {**(meta.get("annotations") or {}), SCHEDULED_ANNOTATION: stamp(scheduled)}
        job = self.store.add(space, {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": run_name, "labels": dict(meta.get("labels") or {}),
                         "annotations": annotations, "ownerReferences": [reference(cronjob)]},
            "spec": template.get("spec") or {},
        })
        self.controllers.start_job(space, job, now)  # at once: its cron time is now
        record_event(self.store, space, kind="CronJob", name=name, reason="SuccessfulCreate",
                     message=f"Created job {run_name}", now=now, warning=False)
        return True

    @staticmethod
    def _runs(space: Space, cronjob: Manifest) -> list[Manifest]:
        uid = cronjob["metadata"]["uid"]
        runs = [job for job in space.of_kind("Job") if uid in owner_uids(job)]
        runs.sort(key=lambda job: (created_at(job), job["metadata"]["name"]))
        return runs

    def _sync_status(self, space: Space, cronjob: Manifest, runs: list[Manifest]) -> None:
        status = cronjob.setdefault("status", {})
        before = json_copy(status)
        active = [{"kind": "Job", "name": job["metadata"]["name"],
                   "namespace": space.namespace, "uid": job["metadata"]["uid"],
                   "apiVersion": "batch/v1"} for job in runs if finished(job) is None]
        if active:
            status["active"] = active
        else:
            status.pop("active", None)
        for job in runs:
            if finished(job) == "Complete":
                done = (job.get("status") or {}).get("completionTime")
                if done and done > status.get("lastSuccessfulTime", ""):
                    status["lastSuccessfulTime"] = done
        if status != before:
            self.store.touch(space, cronjob)

    def _trim_history(self, space: Space, cronjob: Manifest, runs: list[Manifest]) -> None:
        spec = cronjob.get("spec") or {}
        doomed: list[tuple[str, str]] = []
        for outcome, key in (("Complete", "successfulJobsHistoryLimit"),
                             ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(key, 3 if outcome == "Complete" else 1)
            done = [job for job in runs if finished(job) == outcome]
            if isinstance(limit, int) and len(done) > limit:
                doomed.extend(("Job", job["metadata"]["name"])
                              for job in done[:len(done) - limit])
        if doomed:
            self.controllers.delete(space, doomed)
