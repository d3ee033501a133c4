"""JobService on the in-memory runtime: the runtime contract, and details only the fake can set up.

The contract (``tests/runtime_contract.py``) runs here on :class:`InMemoryRuntime`; the same
cases run on a real cluster in ``tests/e2e``. The rest needs failures, hand-edited objects or
log files that a cluster test cannot arrange cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

import attrs
import pytest

from tests.runtime_contract import (
    RuntimeContract,
    RuntimeHarness,
    continuous,
    names,
    one_off,
    scheduled,
)
from tjf_core.errors import NotFoundError, QuotaExceededError, RuntimeUnavailableError
from tjf_core.identity import ToolIdentity
from tjf_core.model import JobKind, JobSpec
from tjf_core.plan import Action
from tjf_core.render import SPEC_ANNOTATION
from tjf_core.runtime import Manifest, Runtime, ToolObjects
from tjf_core.service import JobService
from tjf_core.testing import FakeClock, InMemoryDriver, InMemoryRuntime

#: The quota and limits tests/e2e/cluster.py provisions (as maintain-kubeusers does).
TOOL_QUOTA = {"requests.cpu": "2", "requests.memory": "6Gi", "limits.cpu": "2",
              "limits.memory": "8Gi", "pods": "4", "services": "1", "count/jobs.batch": "15",
              "count/cronjobs.batch": "50", "count/deployments.apps": "3"}
TOOL_LIMITS = {"type": "Container", "max": {"cpu": "1", "memory": "4Gi"},
               "min": {"cpu": "50m", "memory": "100Mi"}}


@attrs.frozen(kw_only=True)
class InMemoryHarness:
    """The harness over :class:`~tjf_core.testing.InMemoryRuntime`: one shared FakeClock."""

    runtime: InMemoryRuntime
    service: JobService
    tool: ToolIdentity
    other_tool: ToolIdentity
    driver: InMemoryDriver
    clock: FakeClock

    @classmethod
    def create(cls, tmp_path: Path) -> InMemoryHarness:
        clock = FakeClock()
        runtime = InMemoryRuntime(clock=clock)
        tools = []
        for name in ("alpha", "beta"):
            home = tmp_path / name
            home.mkdir()
            tool = ToolIdentity(tool=name, namespace=f"tool-{name}", home=PurePosixPath(home))
            runtime.add_tool(tool, resource_quota=resource_quota(tool),
                             limit_range=limit_range(tool))
            tools.append(tool)
        return cls(runtime=runtime, service=JobService(runtime, clock=clock), tool=tools[0],
                   other_tool=tools[1], driver=runtime.driver(tools[0]), clock=clock)

    def eventually(self, what: str, check: Callable[[], bool]) -> None:
        assert check(), what  # in memory everything has happened already


def resource_quota(tool: ToolIdentity, hard: dict[str, str] | None = None) -> Manifest:
    meta = {"name": tool.namespace, "namespace": tool.namespace}
    return {"kind": "ResourceQuota", "metadata": meta, "spec": {"hard": hard or TOOL_QUOTA}}


def limit_range(tool: ToolIdentity) -> Manifest:
    meta = {"name": tool.namespace, "namespace": tool.namespace}
    return {"kind": "LimitRange", "metadata": meta, "spec": {"limits": [TOOL_LIMITS]}}


class TestInMemoryRuntime(RuntimeContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> RuntimeHarness:  # mypy checks it is one
        return InMemoryHarness.create(tmp_path)


@pytest.fixture
def h(tmp_path: Path) -> InMemoryHarness:
    return InMemoryHarness.create(tmp_path)


def test_the_fake_is_a_runtime() -> None:
    runtime: Runtime = InMemoryRuntime()
    assert JobService(runtime).images()


# --- never half applied -------------------------------------------------------------------------


def test_a_failed_service_creation_removes_the_deployment(h: InMemoryHarness) -> None:
    h.runtime.fail_next("create", RuntimeUnavailableError("the API is down"), kind="Service")
    with pytest.raises(RuntimeUnavailableError):
        h.service.run(h.tool, continuous(h, "web", port=8000))
    assert h.runtime.objects(h.tool) == []
    assert h.runtime.calls["delete_job"] == 1


def test_a_service_over_quota_removes_the_deployment(h: InMemoryHarness) -> None:
    h.runtime.add_tool(h.tool, resource_quota=resource_quota(h.tool, {"services": "0"}),
                       limit_range=limit_range(h.tool))
    with pytest.raises(QuotaExceededError, match="services"):
        h.service.run(h.tool, continuous(h, "web", port=8000))
    assert h.runtime.objects(h.tool) == []
    h.service.run(h.tool, continuous(h, "web"))  # without a port it fits
    assert names(h) == ["web"]


def test_a_refused_first_object_deletes_nothing(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "keep"))
    h.runtime.fail_next("create", RuntimeUnavailableError("down"), kind="Deployment")
    with pytest.raises(RuntimeUnavailableError):
        h.service.run(h.tool, continuous(h, "web"))
    assert h.runtime.calls["delete_job"] == 0
    assert names(h) == ["keep"]


class KindlessRuntime(InMemoryRuntime):
    """Lists items as the raw API does, without ``kind``: the service must not need it."""

    def list_objects(self, tool: ToolIdentity, *, job: str | None = None) -> ToolObjects:
        def strip(items: tuple[Manifest, ...]) -> tuple[Manifest, ...]:
            return tuple({k: v for k, v in item.items() if k not in ("kind", "apiVersion")}
                         for item in items)

        listed = super().list_objects(tool, job=job)
        return ToolObjects(jobs=strip(listed.jobs), cronjobs=strip(listed.cronjobs),
                           deployments=strip(listed.deployments), pods=strip(listed.pods),
                           events=listed.events)


def test_the_service_does_not_need_the_kind_of_list_items(h: InMemoryHarness) -> None:
    runtime = KindlessRuntime(clock=h.clock)
    service = JobService(runtime, clock=h.clock)
    spec = one_off(h, "again")
    service.run(h.tool, spec)
    driver = runtime.driver(h.tool)
    [pod] = driver.pods_of("again")
    driver.set_succeeded(pod)
    service.run(h.tool, spec)  # a finished one-off job is replaced
    service.run(h.tool, continuous(h, "web"))
    assert [job.spec.kind for job in service.list(h.tool).jobs] == [
        JobKind.ONE_OFF, JobKind.CONTINUOUS]


# --- reading what others wrote ----------------------------------------------------------------


def _break_annotation(h: InMemoryHarness, kind: str, name: str) -> None:
    h.runtime.patch(h.tool, kind=kind, name=name,
                    patch={"metadata": {"annotations": {SPEC_ANNOTATION: "{not json"}}})


def test_list_warns_about_a_job_it_cannot_read(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "fine"))
    h.service.run(h.tool, continuous(h, "edited"))
    _break_annotation(h, "Deployment", "edited")
    listed = h.service.list(h.tool)
    assert [job.spec.name for job in listed.jobs] == ["fine"]
    [warning] = listed.warnings
    assert "'edited'" in warning
    assert "cannot read" in warning


def test_apply_replaces_an_unreadable_job_the_file_defines(h: InMemoryHarness) -> None:
    spec = continuous(h, "edited")
    h.service.run(h.tool, spec)
    _break_annotation(h, "Deployment", "edited")
    result = h.service.apply(h.tool, [spec])
    assert [(c.name, c.action) for c in result.plan.changes] == [("edited", Action.CREATE)]
    assert h.service.get(h.tool, "edited").spec == spec
    assert h.service.list(h.tool).warnings == ()


def test_apply_checks_the_limit_range_once_for_all_jobs(h: InMemoryHarness) -> None:
    h.runtime.add_tool(h.tool)  # no LimitRange at all
    h.service.apply(h.tool, [continuous(h, "a"), continuous(h, "b"), scheduled(h, "c")])
    assert h.runtime.calls["quota"] == 1
    assert names(h) == ["a", "b", "c"]


def test_quota_shows_what_the_tool_uses(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "a"))
    h.service.run(h.tool, continuous(h, "b"))
    items = {item.name: item for cat in h.service.quota(h.tool) for item in cat.items}
    assert (items["count/deployments.apps"].limit, items["count/deployments.apps"].used) == (
        "3", "2")
    assert items["memory"].limit == "4Gi"


def test_images_are_the_stable_ones_sorted(h: InMemoryHarness) -> None:
    shown = [image.shortname for image in h.service.images()]
    assert shown == sorted(shown)
    assert "python3.9" not in shown  # deprecated in the bundled sample


def test_restart_names_the_run_after_the_clock(h: InMemoryHarness) -> None:
    h.service.run(h.tool, scheduled(h, "nightly"))
    h.clock.advance(60)
    h.service.restart(h.tool, "nightly")
    [run] = h.runtime.objects(h.tool, "Job")
    assert run["metadata"]["name"] == f"nightly-{int(h.clock().timestamp())}"


# --- logs ----------------------------------------------------------------------------------------


def _home(h: InMemoryHarness) -> Path:
    return Path(h.tool.home)


def test_logs_of_a_filelog_job_come_from_its_files(h: InMemoryHarness) -> None:
    h.service.run(h.tool, one_off(h, "talk"))
    (_home(h) / "talk.out").write_text("one\ntwo\nthree\n")
    (_home(h) / "talk.err").write_text("oops\n")
    assert list(h.service.logs(h.tool, "talk")) == ["one", "two", "three", "oops"]
    assert list(h.service.logs(h.tool, "talk", lines=1)) == ["three", "oops"]


def test_logs_of_one_file_for_both_streams_come_once(h: InMemoryHarness) -> None:
    h.service.run(h.tool, one_off(h, "both", filelog_stdout="logs/both.log",
                                  filelog_stderr="logs/both.log"))
    (_home(h) / "logs").mkdir()
    (_home(h) / "logs" / "both.log").write_text("a\nb\n")
    assert list(h.service.logs(h.tool, "both")) == ["a", "b"]


def test_logs_before_the_job_wrote_any_are_not_found(h: InMemoryHarness) -> None:
    h.service.run(h.tool, one_off(h, "quiet"))
    with pytest.raises(NotFoundError, match="no log file"):
        h.service.logs(h.tool, "quiet")
    with pytest.raises(NotFoundError, match="'ghost'"):
        h.service.logs(h.tool, "ghost")


def test_following_logs_ends_when_the_job_finishes(h: InMemoryHarness) -> None:
    h.service.run(h.tool, one_off(h, "long"))
    [pod] = h.driver.pods_of("long")
    h.driver.set_running(pod)
    out = _home(h) / "long.out"
    out.write_text("start\n")
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the job writes while the follower waits, then ends
        naps.append(seconds)
        with out.open("a") as file:
            file.write(f"step {len(naps)}\n" if len(naps) < 3 else "last, no newline")
        if len(naps) == 3:
            h.driver.set_succeeded(pod)

    service = attrs.evolve(h.service, sleep=nap, follow_interval=0.25)
    lines = list(service.logs(h.tool, "long", follow=True))
    assert lines == ["start", "step 1", "step 2", "last, no newline"]
    assert naps == [0.25, 0.25, 0.25]


def test_logs_of_a_job_without_filelog_come_from_its_newest_pod(h: InMemoryHarness) -> None:
    h.service.run(h.tool, one_off(h, "plain", filelog=False))
    assert list(h.service.logs(h.tool, "plain")) == []  # no pod yet
    [pod] = h.driver.pods_of("plain")
    h.driver.write_log(pod, "a", "b", "c")
    assert list(h.service.logs(h.tool, "plain")) == ["a", "b", "c"]
    assert list(h.service.logs(h.tool, "plain", lines=2)) == ["b", "c"]
    h.driver.set_failed(pod, 1)
    h.service.run(h.tool, JobSpec(name="plain", command="./again", image="bookworm",
                                  filelog=False))
    [newer] = h.driver.pods_of("plain")
    h.driver.write_log(newer, "second run")
    assert list(h.service.logs(h.tool, "plain", follow=True)) == ["second run"]


def test_the_pod_of_a_restarted_continuous_job_is_the_new_one(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "bot", filelog=False))
    [old] = h.driver.pods_of("bot")
    h.driver.write_log(old, "old")
    h.clock.advance(5)
    h.service.restart(h.tool, "bot")
    [new] = h.driver.pods_of("bot")
    assert new != old
    h.driver.write_log(new, "new")
    assert list(h.service.logs(h.tool, "bot")) == ["new"]


# --- upsert (the API's PATCH) and stopping a follower early --------------------------------------


def test_upsert_creates_a_missing_job(h: InMemoryHarness) -> None:
    job, changed = h.service.upsert(h.tool, continuous(h, "web"))
    assert changed
    assert job.spec == continuous(h, "web")
    assert names(h) == ["web"]


def test_upsert_leaves_an_unchanged_job_alone(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "web"))
    before = h.runtime.objects(h.tool, "Deployment")
    job, changed = h.service.upsert(h.tool, continuous(h, "web"))
    assert not changed
    assert job.spec.name == "web"
    assert h.runtime.objects(h.tool, "Deployment") == before


def test_upsert_updates_a_changed_job_and_no_other(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "web"))
    h.service.run(h.tool, continuous(h, "other"))
    job, changed = h.service.upsert(h.tool, continuous(h, "web", command="./new"))
    assert changed
    assert job.spec.command == "./new"
    assert names(h) == ["other", "web"]


def test_a_follower_stops_when_its_reader_is_gone(h: InMemoryHarness) -> None:
    h.service.run(h.tool, continuous(h, "bot"))
    (_home(h) / "bot.out").write_text("one\n")
    wanted = [True]

    def nap(seconds: float) -> None:  # the reader goes away while the follower waits
        wanted[0] = False

    service = attrs.evolve(h.service, sleep=nap)
    lines = service.logs(h.tool, "bot", follow=True, keep_following=lambda: wanted[0])
    assert list(lines) == ["one"]  # a continuous job never ends by itself
