"""One contract for every :class:`~tjf_core.runtime.Runtime`, run through the JobService.

The in-memory fake is only worth its speed if it behaves like the cluster; this suite is what
keeps the two honest. Each case is written once, against a :class:`RuntimeHarness`, and runs on
every runtime that provides one.

How to run it (plain pytest, no plugin): the cases are the ``test_*`` methods of
:class:`RuntimeContract`. A test module subclasses it under a ``Test*`` name and gives the
subclass a ``harness`` fixture; pytest collects the inherited methods once per subclass::

    class TestInMemoryRuntime(RuntimeContract):       # tests/core/test_service.py
        @pytest.fixture
        def harness(self, tmp_path: Path) -> RuntimeHarness:
            return InMemoryHarness.create(tmp_path)

Neither this module (not ``test_*.py``) nor the base class (not ``Test*``) is collected on its
own. A class rather than ``from … import *``: linters see no star import, the fixture is
scoped to its class, and ``pytest -k InMemory`` / ``-k Kube`` selects a runtime.

What a harness must provide (the tools look like Toolforge's: a ResourceQuota with count quotas
and a LimitRange with per-container max, as ``tests/e2e/cluster.py`` provisions them); the
cases read the numbers through ``service.quota`` and never assume them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol

import attrs
import pytest

from tjf_core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    NotRestartableError,
    QuotaExceededError,
    UnknownImageError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.model import JobKind, JobSpec
from tjf_core.plan import Action
from tjf_core.quantity import Quantity
from tjf_core.restart import MANUAL_RUN_ANNOTATION, RESTART_ANNOTATION
from tjf_core.runtime import Manifest, Runtime
from tjf_core.service import JobService
from tjf_core.status import StatusShort
from tjf_core.testing import CountingRuntime

__all__ = ["ClusterDriver", "RuntimeContract", "RuntimeHarness"]

MAIN_KIND = {JobKind.ONE_OFF: "Job", JobKind.SCHEDULED: "CronJob",
             JobKind.CONTINUOUS: "Deployment"}


class ClusterDriver(Protocol):
    """Plays what the cluster does on its own, for ``harness.tool``'s jobs."""

    def pods_of(self, job: str) -> list[str]:
        """The pod names of ``job``, oldest first; waits (with a deadline) until there are."""
        ...

    def set_running(self, pod: str) -> None: ...
    def set_succeeded(self, pod: str) -> None: ...
    def set_failed(self, pod: str, exit_code: int) -> None: ...
    def set_crash_loop(self, pod: str, restarts: int) -> None: ...


class RuntimeHarness(Protocol):
    """A runtime under test, a service over it, and two tools that can use it."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def service(self) -> JobService: ...
    @property
    def tool(self) -> ToolIdentity:
        """Has a real, empty temp dir as home, a ResourceQuota and a LimitRange."""
        ...
    @property
    def other_tool(self) -> ToolIdentity: ...
    @property
    def driver(self) -> ClusterDriver: ...

    def eventually(self, what: str, check: Callable[[], bool]) -> None:
        """Wait until ``check()`` (deletes finish in the background on a cluster)."""
        ...


# --- building jobs ---------------------------------------------------------------------------


def image(h: RuntimeHarness) -> str:
    return h.service.images()[0].shortname


def job_spec(h: RuntimeHarness, name: str, kind: JobKind, **fields: Any) -> JobSpec:
    fields.setdefault("command", f"./{name}.sh")
    if kind is JobKind.SCHEDULED:
        fields.setdefault("schedule", "17 3 * * *")
    return JobSpec(name=name, kind=kind, image=image(h), **fields)


def one_off(h: RuntimeHarness, name: str, **fields: Any) -> JobSpec:
    return job_spec(h, name, JobKind.ONE_OFF, **fields)


def continuous(h: RuntimeHarness, name: str, **fields: Any) -> JobSpec:
    return job_spec(h, name, JobKind.CONTINUOUS, **fields)


def scheduled(h: RuntimeHarness, name: str, **fields: Any) -> JobSpec:
    return job_spec(h, name, JobKind.SCHEDULED, **fields)


def live(h: RuntimeHarness, spec: JobSpec, tool: ToolIdentity | None = None) -> Manifest:
    found = h.runtime.get(tool or h.tool, kind=MAIN_KIND[spec.kind], name=spec.name)
    assert found is not None, f"no {MAIN_KIND[spec.kind]} {spec.name}"
    return found


def version(obj: Manifest) -> tuple[object, ...]:
    """What changes when anyone but a controller writes the object.

    Not the resourceVersion: on a cluster the controllers bump it with every status update.
    A write of ours changes the uid (re-created), the generation (spec) or the metadata; a
    no-op write changes nothing, as the apiserver skips it.
    """
    meta = obj["metadata"]
    ours = {k: v for k, v in (meta.get("annotations") or {}).items()
            if "kubernetes.io/" not in k}  # controllers annotate too (a Deployment's revision)
    return meta["uid"], meta.get("generation"), meta.get("labels"), ours, obj.get("spec")


def names(h: RuntimeHarness, tool: ToolIdentity | None = None) -> list[str]:
    return [job.spec.name for job in h.service.list(tool or h.tool).jobs]


def gone(h: RuntimeHarness, name: str) -> bool:
    return name not in names(h)


def quota_item(h: RuntimeHarness, name: str) -> tuple[str | None, str | None]:
    for category in h.service.quota(h.tool):
        for item in category.items:
            if item.name == name:
                return item.limit, item.used
    raise AssertionError(f"service.quota shows no {name}")


class RuntimeContract:
    """The cases; a subclass named ``Test*`` with a ``harness`` fixture runs them."""

    # --- each kind: create, get, list, delete --------------------------------------------

    @pytest.mark.parametrize("kind", list(JobKind), ids=lambda kind: kind.value)
    def test_each_kind_is_created_read_listed_and_deleted(
        self, harness: RuntimeHarness, kind: JobKind
    ) -> None:
        h = harness
        port = {"port": 8080} if kind is JobKind.CONTINUOUS else {}
        spec = job_spec(h, "first", kind, **port)
        assert h.service.run(h.tool, spec).spec == spec
        assert h.service.get(h.tool, "first").spec == spec
        assert names(h) == ["first"]
        assert live(h, spec)["metadata"]["uid"]
        if port:
            assert h.runtime.get(h.tool, kind="Service", name="first") is not None
        h.service.delete(h.tool, "first")
        h.eventually("the job is gone", lambda: gone(h, "first"))
        with pytest.raises(NotFoundError):
            h.service.get(h.tool, "first")
        assert h.runtime.get(h.tool, kind=MAIN_KIND[kind], name="first") is None
        assert h.runtime.get(h.tool, kind="Service", name="first") is None
        with pytest.raises(NotFoundError) as deleted_twice:
            h.service.delete(h.tool, "first")
        assert deleted_twice.value.http_status == 404

    # --- refusals ------------------------------------------------------------------------

    def test_a_taken_name_is_a_409_and_changes_nothing(self, harness: RuntimeHarness) -> None:
        h = harness
        spec = continuous(h, "taken")
        h.service.run(h.tool, spec)
        before = version(live(h, spec))
        for again in (spec, one_off(h, "taken"), scheduled(h, "taken")):
            with pytest.raises(AlreadyExistsError, match="taken") as refused:
                h.service.run(h.tool, again)
            assert refused.value.http_status == 409
        assert version(live(h, spec)) == before
        assert h.runtime.get(h.tool, kind="Job", name="taken") is None

    def test_an_unknown_image_is_refused_before_anything_is_made(
        self, harness: RuntimeHarness
    ) -> None:
        h = harness
        spec = JobSpec(name="typo", command="true", image="pyton3.11")
        with pytest.raises(UnknownImageError) as refused:
            h.service.run(h.tool, spec)
        assert [p.path for p in refused.value.problems] == ["image"]
        assert "pyton3.11" in str(refused.value)
        assert names(h) == []

    def test_the_limit_range_is_checked_and_named(self, harness: RuntimeHarness) -> None:
        h = harness
        limit, _ = quota_item(h, "memory")
        assert limit is not None, "the harness tool must have a LimitRange with max memory"
        top = Quantity.parse(limit)
        spec = one_off(h, "greedy", memory=top * Decimal(2))
        with pytest.raises(LimitExceededError) as refused:
            h.service.run(h.tool, spec)
        assert [p.path for p in refused.value.problems] == ["memory"]
        assert str(top) in str(refused.value)
        assert names(h) == []

    def test_a_count_quota_refuses_and_is_named(self, harness: RuntimeHarness) -> None:
        h = harness
        limit, used = quota_item(h, "count/deployments.apps")
        assert limit is not None, "the harness tool must have a count/deployments.apps quota"
        for index in range(int(limit) - int(used or 0)):
            h.service.run(h.tool, continuous(h, f"bot{index}"))
        with pytest.raises(QuotaExceededError) as refused:
            h.service.run(h.tool, continuous(h, "one-too-many"))
        assert refused.value.http_status == 409
        assert "count/deployments.apps" in str(refused.value)
        assert h.tool.namespace in str(refused.value)  # Toolforge names the quota so
        assert "one-too-many" not in names(h)

    def test_tools_never_see_each_other(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, continuous(h, "mine"))
        assert names(h, h.other_tool) == []
        with pytest.raises(NotFoundError):
            h.service.get(h.other_tool, "mine")
        with pytest.raises(NotFoundError):
            h.service.delete(h.other_tool, "mine")
        h.service.run(h.other_tool, continuous(h, "mine"))  # a name is per tool
        h.service.flush(h.other_tool)
        h.eventually("the other tool's job is gone", lambda: names(h, h.other_tool) == [])
        assert names(h) == ["mine"]

    # --- status, from what the cluster reports -------------------------------------------

    def test_a_new_job_is_pending(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "fresh"))
        assert h.service.get(h.tool, "fresh").status.short is StatusShort.PENDING

    def test_a_running_pod_is_running(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "busy"))
        h.service.run(h.tool, continuous(h, "daemon"))
        for name in ("busy", "daemon"):
            [pod] = h.driver.pods_of(name)
            h.driver.set_running(pod)
            status = h.service.get(h.tool, name).status
            assert status.short is StatusShort.RUNNING
            assert status.status_short.startswith("Running")

    def test_a_succeeded_pod_completes_the_job(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "done"))
        [pod] = h.driver.pods_of("done")
        h.driver.set_succeeded(pod)
        status = h.service.get(h.tool, "done").status
        assert (status.short, status.status_short) == (StatusShort.SUCCEEDED, "Completed")

    def test_a_failed_pod_fails_the_job_with_its_exit_code(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "broken"))
        [pod] = h.driver.pods_of("broken")
        h.driver.set_failed(pod, 3)
        status = h.service.get(h.tool, "broken").status
        assert (status.short, status.status_short) == (StatusShort.FAILED, "Failed")
        assert any("exited with code 3" in message for message in status.messages)

    def test_a_crash_loop_says_the_command_fails(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, continuous(h, "crashy"))
        [pod] = h.driver.pods_of("crashy")
        h.driver.set_crash_loop(pod, 4)
        status = h.service.get(h.tool, "crashy").status
        assert status.short is StatusShort.FAILED
        assert status.status_short == "Specified command fails to run"

    # --- restart -------------------------------------------------------------------------

    def test_restarting_a_scheduled_job_runs_it_now(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, scheduled(h, "nightly"))
        h.service.restart(h.tool, "nightly")
        [run] = h.runtime.list_objects(h.tool).jobs
        assert run["metadata"]["annotations"][MANUAL_RUN_ANNOTATION] == "manual"
        owners = run["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"]) for o in owners] == [("CronJob", "nightly")]
        assert names(h) == ["nightly"]  # a run of the CronJob, not a job of its own
        [pod] = h.driver.pods_of("nightly")
        h.driver.set_running(pod)
        assert h.service.get(h.tool, "nightly").status.short is StatusShort.RUNNING

    def test_restarting_a_continuous_job_rolls_its_pods(self, harness: RuntimeHarness) -> None:
        h = harness
        spec = continuous(h, "web", port=8000)
        h.service.run(h.tool, spec)
        before = live(h, spec)
        assert RESTART_ANNOTATION not in before["spec"]["template"]["metadata"].get(
            "annotations", {})
        h.service.restart(h.tool, "web")
        after = live(h, spec)
        assert after["spec"]["template"]["metadata"]["annotations"][RESTART_ANNOTATION]
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
        assert h.service.get(h.tool, "web").spec == spec

    def test_a_one_off_job_cannot_be_restarted(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "once"))
        with pytest.raises(NotRestartableError) as refused:
            h.service.restart(h.tool, "once")
        assert refused.value.http_status == 400
        with pytest.raises(NotFoundError):
            h.service.restart(h.tool, "never-made")

    # --- apply ---------------------------------------------------------------------------

    def test_apply_creates_updates_in_place_and_deletes(self, harness: RuntimeHarness) -> None:
        h = harness
        web, cron = continuous(h, "web", port=8000), scheduled(h, "cron")
        bot, gone_bot = continuous(h, "bot"), continuous(h, "old-bot")
        first = h.service.apply(h.tool, [web, cron, bot, gone_bot])
        assert {c.action for c in first.plan.changes} == {Action.CREATE}
        web_before, service_before = live(h, web), h.runtime.get(h.tool, kind="Service",
                                                                     name="web")
        cron_before, bot_before = live(h, cron), live(h, bot)
        new_cron = attrs.evolve(cron, command="./other.sh")
        new_bot = attrs.evolve(bot, command="./better-bot.sh")
        second = h.service.apply(h.tool, [web, new_cron, new_bot])
        actions = {c.name: c.action for c in second.plan.changes}
        assert actions == {"web": Action.UNCHANGED, "cron": Action.UPDATE,
                           "bot": Action.UPDATE, "old-bot": Action.DELETE}
        assert version(live(h, web)) == version(web_before)
        assert h.runtime.get(h.tool, kind="Service", name="web") == service_before
        for old, spec in ((cron_before, new_cron), (bot_before, new_bot)):
            now = live(h, spec)
            assert now["metadata"]["uid"] == old["metadata"]["uid"]
            assert now["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]
            assert h.service.get(h.tool, spec.name).spec == spec
        h.eventually("old-bot is deleted", lambda: gone(h, "old-bot"))
        assert names(h) == ["bot", "cron", "web"]

    def test_apply_with_an_invalid_job_changes_nothing(self, harness: RuntimeHarness) -> None:
        h = harness
        web = continuous(h, "web")
        h.service.apply(h.tool, [web])
        before = version(live(h, web))
        bad = JobSpec(name="bad", command="true", image="no-such-image")
        with pytest.raises(InvalidInputError) as refused:
            h.service.apply(h.tool, [attrs.evolve(web, command="./new.sh"), bad])
        assert [p.path for p in refused.value.problems] == ["bad.image"]
        assert version(live(h, web)) == before
        assert names(h) == ["web"]
        with pytest.raises(InvalidInputError):  # nor does a file that empties the tool
            h.service.apply(h.tool, [bad])
        assert names(h) == ["web"]

    def test_apply_only_touches_the_named_job(self, harness: RuntimeHarness) -> None:
        h = harness
        a, b, c = continuous(h, "a"), scheduled(h, "b"), continuous(h, "c")
        h.service.apply(h.tool, [a, b, c])
        b_before, c_before = version(live(h, b)), version(live(h, c))
        new_a, new_b = attrs.evolve(a, command="./a2.sh"), attrs.evolve(b, command="./b2.sh")
        result = h.service.apply(h.tool, [new_a, new_b], only="a")
        assert [(ch.name, ch.action) for ch in result.plan.changes] == [("a", Action.UPDATE)]
        assert h.service.get(h.tool, "a").spec == new_a
        assert (version(live(h, b)), version(live(h, c))) == (b_before, c_before)

    def test_apply_dry_run_changes_nothing(self, harness: RuntimeHarness) -> None:
        h = harness
        a, b = continuous(h, "a"), scheduled(h, "b")
        h.service.apply(h.tool, [a, b])
        before = [version(live(h, a)), version(live(h, b))]
        result = h.service.apply(h.tool, [attrs.evolve(a, command="./a2.sh"), one_off(h, "n")],
                                 dry_run=True)
        actions = {c.name: c.action for c in result.plan.changes}
        assert actions == {"a": Action.UPDATE, "b": Action.DELETE, "n": Action.CREATE}
        assert result.dry_run
        assert [version(live(h, a)), version(live(h, b))] == before
        assert names(h) == ["a", "b"]

    # --- flush, re-run, cost ---------------------------------------------------------------

    def test_flush_leaves_no_labelled_object(self, harness: RuntimeHarness) -> None:
        h = harness
        h.service.run(h.tool, one_off(h, "once"))
        h.service.run(h.tool, scheduled(h, "cron"))
        h.service.run(h.tool, continuous(h, "web", port=8000))
        h.service.run(h.other_tool, continuous(h, "theirs"))
        h.service.restart(h.tool, "cron")
        for name in ("once", "cron", "web"):
            assert h.driver.pods_of(name)
        h.service.flush(h.tool)

        def empty() -> bool:
            objects = h.runtime.list_objects(h.tool)
            return not (objects.jobs or objects.cronjobs or objects.deployments or objects.pods)

        h.eventually("every object of the tool is deleted", empty)
        assert h.runtime.get(h.tool, kind="Service", name="web") is None
        assert names(h, h.other_tool) == ["theirs"]

    @pytest.mark.parametrize("finish", ["succeeded", "failed"])
    def test_run_replaces_a_finished_one_off_job(
        self, harness: RuntimeHarness, finish: str
    ) -> None:
        h = harness
        spec = one_off(h, "again")
        h.service.run(h.tool, spec)
        first = live(h, spec)["metadata"]["uid"]
        [pod] = h.driver.pods_of("again")
        if finish == "succeeded":
            h.driver.set_succeeded(pod)
        else:
            h.driver.set_failed(pod, 1)
        h.service.run(h.tool, spec)
        assert live(h, spec)["metadata"]["uid"] != first
        assert names(h) == ["again"]

    def test_run_does_not_replace_a_running_one_off_job(self, harness: RuntimeHarness) -> None:
        h = harness
        spec = one_off(h, "busy")
        h.service.run(h.tool, spec)
        [pod] = h.driver.pods_of("busy")
        h.driver.set_running(pod)
        with pytest.raises(AlreadyExistsError):
            h.service.run(h.tool, spec)

    def test_listing_costs_the_same_calls_for_any_number_of_jobs(
        self, harness: RuntimeHarness
    ) -> None:
        h = harness
        counting = CountingRuntime(h.runtime)
        service = attrs.evolve(h.service, runtime=counting)
        h.service.run(h.tool, one_off(h, "j0"))
        service.list(h.tool)
        one_job = dict(counting.calls)
        counting.calls.clear()
        h.service.run(h.tool, scheduled(h, "j2"))
        for spec in (one_off(h, "j1"), continuous(h, "j3", port=80)):
            h.service.run(h.tool, spec)
            h.driver.pods_of(spec.name)
        assert len(service.list(h.tool).jobs) == 4
        assert dict(counting.calls) == one_job
        assert one_job["list_objects"] == 1

    def test_one_job_can_be_listed_alone(self, harness: RuntimeHarness) -> None:
        h = harness
        for spec in (one_off(h, "alone"), one_off(h, "alone2"), continuous(h, "other")):
            h.service.run(h.tool, spec)
            h.driver.pods_of(spec.name)
        listed = h.runtime.list_objects(h.tool, job="alone")
        mains = [*listed.jobs, *listed.cronjobs, *listed.deployments]
        assert [obj["metadata"]["name"] for obj in mains] == ["alone"]
        assert listed.pods
        assert {pod["metadata"]["labels"]["app.kubernetes.io/name"] for pod in listed.pods} == {
            "alone"}
        assert h.service.get(h.tool, "alone").spec.name == "alone"
        nothing = h.runtime.list_objects(h.tool, job="no,such=job")
        assert (nothing.jobs, nothing.cronjobs, nothing.deployments, nothing.pods) == (
            (), (), (), ())
