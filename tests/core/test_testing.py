"""The fakes of tjf_core.testing behave like the Kubernetes API where the service can tell.

(The runtime contract, run on the fake in test_service.py, covers it through the service; these
cases pin the API-server bookkeeping and the driver directly.)
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    RuntimeUnavailableError,
)
from tjf_core.identity import ToolIdentity
from tjf_core.images import Image, ImageCatalog, ImageState
from tjf_core.model import JobKind, JobSpec
from tjf_core.render import ToolContext, render_job
from tjf_core.service import JobService
from tjf_core.settings import RenderSettings
from tjf_core.status import StatusShort
from tjf_core.testing import CountingRuntime, FakeClock, InMemoryRuntime, bundled_catalog

TOOL = ToolIdentity(tool="alpha", namespace="tool-alpha", home=PurePosixPath("/data/alpha"))
OTHER = ToolIdentity(tool="beta", namespace="tool-beta", home=PurePosixPath("/data/beta"))
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def rendered(name: str, **fields: Any) -> list[dict[str, Any]]:
    fields.setdefault("command", "./run.sh")
    spec = JobSpec(name=name, image="bookworm", **fields)
    return render_job(spec, tool=ToolContext(identity=TOOL), settings=RenderSettings(),
                      catalog=bundled_catalog())


def quota(**hard: str) -> dict[str, Any]:
    return {"metadata": {"name": "tool-alpha"},
            "spec": {"hard": {key.replace("_", "/", 1).replace("_", "."): value
                              for key, value in hard.items()}}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def rt(clock: FakeClock) -> InMemoryRuntime:
    return InMemoryRuntime(clock=clock)


# --- the API server's bookkeeping --------------------------------------------------------------


def test_create_fills_in_what_the_api_server_does(rt: InMemoryRuntime,
                                                  clock: FakeClock) -> None:
    clock.advance(90)
    [job] = rendered("one")
    made = rt.create(TOOL, job)
    meta = made["metadata"]
    assert meta["creationTimestamp"] == "2024-05-01T12:01:30Z"
    assert meta["namespace"] == "tool-alpha"
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["resourceVersion"]
    assert made["status"] == {}
    assert rt.get(TOOL, kind="Job", name="one") == made
    made["metadata"]["name"] = "changed"  # callers get copies
    assert rt.get(TOOL, kind="Job", name="one") is not None


def test_a_taken_name_is_refused_naming_the_object(rt: InMemoryRuntime) -> None:
    [deployment] = rendered("web", kind=JobKind.CONTINUOUS)
    rt.create(TOOL, deployment)
    with pytest.raises(AlreadyExistsError, match="a job named 'web' already exists"):
        rt.create(TOOL, deployment)
    rt.create(OTHER, {**deployment, "metadata": {**deployment["metadata"],
                                                 "namespace": "tool-beta"}})


def test_an_object_for_another_namespace_is_refused(rt: InMemoryRuntime) -> None:
    [job] = rendered("one")
    with pytest.raises(InvalidInputError, match="tool-beta"):
        rt.create(OTHER, job)
    with pytest.raises(InvalidInputError, match="kind"):
        rt.create(TOOL, {"metadata": {"name": "x"}})


def test_replace_keeps_identity_and_counts_spec_changes(rt: InMemoryRuntime) -> None:
    [deployment] = rendered("web", kind=JobKind.CONTINUOUS)
    first = rt.replace(TOOL, deployment)  # creates
    same = rt.replace(TOOL, deployment)
    assert same["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(same["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert same["metadata"]["generation"] == 1
    [changed] = rendered("web", kind=JobKind.CONTINUOUS, command="./other.sh")
    after = rt.replace(TOOL, changed)
    assert after["metadata"]["generation"] == 2
    assert after["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]


def test_replacing_a_job_with_a_new_template_recreates_it(rt: InMemoryRuntime) -> None:
    [job] = rendered("once")
    first = rt.create(TOOL, job)
    [pod] = rt.driver(TOOL).pods_of("once")
    assert rt.replace(TOOL, job)["metadata"]["uid"] == first["metadata"]["uid"]
    [changed] = rendered("once", command="./other.sh")
    again = rt.replace(TOOL, changed)
    assert again["metadata"]["uid"] != first["metadata"]["uid"]
    assert rt.get(TOOL, kind="Pod", name=pod) is None  # the old Job's pod was collected


def test_patch_merges_deeply_and_refuses_what_kubernetes_would(rt: InMemoryRuntime) -> None:
    [deployment] = rendered("web", kind=JobKind.CONTINUOUS)
    before = rt.create(TOOL, deployment)
    patched = rt.patch(TOOL, kind="Deployment", name="web", patch={
        "metadata": {"annotations": {"a": "1"}, "labels": {"jobs.toolforge.org/emails": None}},
        "spec": {"replicas": 2}})
    assert patched["metadata"]["annotations"]["a"] == "1"
    assert "jobs.toolforge.org/emails" not in patched["metadata"]["labels"]
    assert patched["spec"]["template"] == before["spec"]["template"]
    assert (patched["spec"]["replicas"], patched["metadata"]["generation"]) == (2, 2)
    with pytest.raises(NotFoundError, match="Deployment 'nope'"):
        rt.patch(TOOL, kind="Deployment", name="nope", patch={})
    [job] = rendered("once")
    rt.create(TOOL, job)
    with pytest.raises(InvalidInputError, match="immutable"):
        rt.patch(TOOL, kind="Job", name="once",
                 patch={"spec": {"template": {"metadata": {"labels": {"x": "y"}}}}})


def test_lists_hold_only_managed_objects(rt: InMemoryRuntime) -> None:
    for manifest in rendered("web", kind=JobKind.CONTINUOUS, port=80):
        rt.create(TOOL, manifest)
    rt.put(TOOL, {"kind": "Deployment", "metadata": {"name": "theirs"}, "spec": {"replicas": 1}})
    rt.put(TOOL, {"kind": "Event", "metadata": {"name": "e1"}, "reason": "Pulled"})
    listed = rt.list_objects(TOOL)
    [deployment] = listed.deployments
    assert deployment["metadata"]["name"] == "web"
    assert deployment["kind"] == "Deployment"  # as tjf_core.kube lists them
    assert [event["reason"] for event in listed.events] == ["Pulled"]
    assert rt.list_objects(OTHER).deployments == ()


def test_deleting_a_job_takes_everything_labelled_with_it(rt: InMemoryRuntime) -> None:
    for manifest in rendered("web", kind=JobKind.CONTINUOUS, port=80):
        rt.create(TOOL, manifest)
    [job] = rendered("keep")
    rt.create(TOOL, job)
    driver = rt.driver(TOOL)
    [pod] = driver.pods_of("web")
    driver.write_log(pod, "hello")
    assert rt.delete_job(TOOL, "web") is True
    assert [(o["kind"], o["metadata"]["name"]) for o in rt.objects(TOOL)] == [("Job", "keep")]
    assert rt.delete_job(TOOL, "web") is False
    with pytest.raises(NotFoundError, match="pod"):
        rt.pod_logs(TOOL, pod=pod, lines=None, follow=False)
    labels = {"app.kubernetes.io/name": "web",
              "app.kubernetes.io/managed-by": "toolforge-jobs-framework"}
    rt.put(TOOL, {"kind": "Pod", "metadata": {"name": "web-left", "labels": labels}})
    assert rt.delete_job(TOOL, "web") is False  # a pod left terminating is not a job
    assert rt.get(TOOL, kind="Pod", name="web-left") is None


def test_delete_all_spares_what_the_framework_did_not_make(rt: InMemoryRuntime) -> None:
    for name in ("a", "b"):
        [job] = rendered(name)
        rt.create(TOOL, job)
    rt.put(TOOL, {"kind": "Deployment", "metadata": {"name": "theirs"}})
    rt.put(TOOL, {"kind": "Deployment", "metadata": {"name": "a", "labels": {
        "app.kubernetes.io/name": "a"}}})  # named like a job, but not the framework's
    rt.delete_all(TOOL)
    assert [o["metadata"]["name"] for o in rt.objects(TOOL)] == ["theirs", "a"]
    assert rt.delete_job(TOOL, "a") is False


# --- quota ---------------------------------------------------------------------------------------


def test_count_quotas_refuse_like_the_apiserver(rt: InMemoryRuntime) -> None:
    rt.add_tool(TOOL, resource_quota=quota(count_jobs_batch="1"))
    [first], [second] = rendered("a"), rendered("b")
    rt.create(TOOL, first)
    with pytest.raises(QuotaExceededError) as refused:
        rt.create(TOOL, second)
    assert str(refused.value) == (
        "out of quota for count/jobs.batch (used 1 of 1, requested 1) in quota tool-alpha: "
        "delete jobs that are no longer needed or request a quota increase")
    rt.replace(TOOL, first)  # an update is not a new object
    resource_quota, limit_range = rt.quota(TOOL)
    assert resource_quota is not None
    assert limit_range is None
    assert resource_quota["status"] == {"hard": {"count/jobs.batch": "1"},
                                        "used": {"count/jobs.batch": "1"}}


def test_pods_beyond_the_quota_become_a_failed_create_event(rt: InMemoryRuntime) -> None:
    rt.add_tool(TOOL, resource_quota=quota(pods="1"))
    service = JobService(rt, clock=rt.clock)
    for name in ("a", "b"):
        service.run(TOOL, JobSpec(name=name, command="x", image="bookworm"))
        rt.driver(TOOL).pods_of(name)
    assert service.get(TOOL, "a").status.short is StatusShort.PENDING
    status = service.get(TOOL, "b").status
    assert status.status_short == "Unable to start, out of quota for pods"


# --- the driver ----------------------------------------------------------------------------------


def test_a_job_is_retried_up_to_its_backoff_limit(rt: InMemoryRuntime) -> None:
    [job] = rendered("flaky", retry=1)
    rt.create(TOOL, job)
    driver = rt.driver(TOOL)
    [first] = driver.pods_of("flaky")
    assert driver.pods_of("flaky") == [first]  # no second pod while one is live
    driver.set_failed(first, 2)
    [_, second] = driver.pods_of("flaky")
    driver.set_failed(second, 2)
    status = rt.get(TOOL, kind="Job", name="flaky")
    assert status is not None
    assert status["status"]["failed"] == 2
    assert status["status"]["conditions"][0]["reason"] == "BackoffLimitExceeded"
    assert len(driver.pods_of("flaky")) == 2  # a failed Job makes no more pods


def test_a_changed_pod_template_rolls_the_pods(rt: InMemoryRuntime) -> None:
    [deployment] = rendered("web", kind=JobKind.CONTINUOUS, replicas=2)
    rt.create(TOOL, deployment)
    driver = rt.driver(TOOL)
    old = driver.pods_of("web")
    assert len(old) == 2
    for pod in old:
        driver.set_running(pod)
    live = rt.get(TOOL, kind="Deployment", name="web")
    assert live is not None
    assert live["status"]["availableReplicas"] == 2
    rt.patch(TOOL, kind="Deployment", name="web",
             patch={"spec": {"template": {"metadata": {"annotations": {"r": "1"}}}}})
    new = driver.pods_of("web")
    assert len(new) == 2
    assert not set(new) & set(old)
    [replica_set] = rt.objects(TOOL, "ReplicaSet")
    assert replica_set["metadata"]["labels"]["pod-template-hash"]


def test_the_driver_refuses_unknown_pods(rt: InMemoryRuntime) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        rt.driver(TOOL).set_running("ghost")


# --- helpers -------------------------------------------------------------------------------------


def test_calls_are_counted_and_failures_injected_once(rt: InMemoryRuntime) -> None:
    rt.fail_next("create", RuntimeUnavailableError("down"), kind="Service")
    deployment, service = rendered("web", kind=JobKind.CONTINUOUS, port=80)
    rt.create(TOOL, deployment)  # not a Service: not this failure
    with pytest.raises(RuntimeUnavailableError):
        rt.create(TOOL, service)
    rt.create(TOOL, service)
    rt.list_objects(TOOL)
    assert rt.calls == {"create": 3, "list_objects": 1}


def test_counting_runtime_counts_and_delegates(rt: InMemoryRuntime) -> None:
    counting = CountingRuntime(rt)
    [job] = rendered("one")
    counting.create(TOOL, job)
    assert counting.get(TOOL, kind="Job", name="one") is not None
    counting.patch(TOOL, kind="Job", name="one", patch={"metadata": {"labels": {"x": "y"}}})
    counting.replace(TOOL, job)
    assert counting.list_objects(TOOL).jobs
    assert counting.quota(TOOL) == (None, None)
    assert counting.image_catalog() == rt.image_catalog()
    [pod] = rt.driver(TOOL).pods_of("one")
    assert list(counting.pod_logs(TOOL, pod=pod, lines=3, follow=True)) == []
    assert counting.delete_job(TOOL, "one")
    counting.delete_all(TOOL)
    assert set(counting.calls.values()) == {1}
    assert len(counting.calls) == 10


def test_the_catalog_is_the_bundled_sample_unless_given() -> None:
    assert InMemoryRuntime().image_catalog() == bundled_catalog()
    own = ImageCatalog((Image("mine", "registry/mine:1", ImageState.STABLE),))
    assert InMemoryRuntime(catalog=own).image_catalog() == own


def test_fake_clock() -> None:
    clock = FakeClock(START)
    assert clock() == START
    assert clock.advance(1.5) == clock() == datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2024, 1, 1))


def test_concurrent_creates_of_one_name_let_exactly_one_win(rt: InMemoryRuntime) -> None:
    [job] = rendered("race")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        try:
            rt.create(TOOL, job)
            outcomes.append("created")
        except AlreadyExistsError:
            outcomes.append("taken")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["taken"] * 7


DEPLOYMENTS = {name: rendered(name, kind=JobKind.CONTINUOUS)[0] for name in ("a", "b")}
operations = st.lists(st.tuples(st.sampled_from(["replace", "patch", "delete", "create"]),
                                st.sampled_from(["a", "b"])), max_size=12)


@settings(max_examples=200)
@given(ops=operations)
def test_every_write_gets_a_newer_version_and_keeps_the_uid(ops: list[tuple[str, str]]) -> None:
    rt = InMemoryRuntime()
    manifests = DEPLOYMENTS
    uids: dict[str, str] = {}
    newest = 0
    for op, name in ops:
        try:
            if op == "delete":
                assert rt.delete_job(TOOL, name) is (name in uids)
                uids.pop(name, None)
                continue
            if op == "create":
                written = rt.create(TOOL, manifests[name])
            elif op == "replace":
                written = rt.replace(TOOL, manifests[name])
            else:
                written = rt.patch(TOOL, kind="Deployment", name=name,
                                   patch={"metadata": {"annotations": {"n": str(newest)}}})
        except (AlreadyExistsError, NotFoundError):
            assert (op == "create") == (name in uids)
            continue
        version = int(written["metadata"]["resourceVersion"])
        assert version > newest
        newest = version
        assert uids.setdefault(name, written["metadata"]["uid"]) == written["metadata"]["uid"]
