"""List+watch without a cluster: resuming, 410 Gone, backoff, stopping (a scripted API)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emailer.fake_kube import FakeApi, event, failed, gone, listing, pod
from tjf_core.errors import RuntimeUnavailableError
from tjf_emailer.__main__ import own_namespace
from tjf_emailer.health import WatchStats
from tjf_emailer.kube import (
    JOB_PODS_SELECTOR,
    Backoff,
    ListWatch,
    WatchItem,
    pod_watch,
)
from tjf_emailer.kubeapi import ApiRefusal


@attrs.define
class RecordingBackoff(Backoff):
    delays: list[float] = attrs.Factory(list)

    def next(self) -> float:
        self.delays.append(super().next())
        return self.delays[-1]


def test_the_selector_asks_the_server_for_job_pods_that_want_emails() -> None:
    assert JOB_PODS_SELECTOR == ("app.kubernetes.io/managed-by=toolforge-jobs-framework,"
                                 "jobs.toolforge.org/emails in (all,onfailure,onfinish)")


@settings(max_examples=300)
@given(initial=st.floats(0.001, 10), maximum=st.floats(0.01, 100), jitter=st.floats(0, 0.9),
       draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=80))
def test_backoff_doubles_up_to_its_cap_minus_jitter(
    initial: float, maximum: float, jitter: float, draws: list[float]
) -> None:
    values = iter(draws)
    backoff = Backoff(initial=initial, maximum=maximum, jitter=jitter,
                      random=lambda: next(values))
    for failures in range(1, len(draws) + 1):
        base = min(initial * 2 ** (failures - 1), maximum)
        delay = backoff.next()
        assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9
    backoff.reset()
    assert backoff.failures == 0


def test_backoff_resets_to_its_first_delay() -> None:
    backoff = Backoff(initial=1, maximum=4, jitter=0)
    assert [backoff.next() for _ in range(4)] == [1, 2, 4, 4]
    backoff.reset()
    assert backoff.next() == 1


def test_the_namespace_is_the_configured_one_else_the_pods_own(tmp_path: Path) -> None:
    file = tmp_path / "namespace"
    assert own_namespace("mine", service_account=file) == "mine"
    assert own_namespace("", service_account=file) == "default"
    file.write_text("tjf-emailer\n")
    assert own_namespace("", service_account=file) == "tjf-emailer"


def collect(watch: ListWatch, until: Callable[[list[WatchItem]], bool]) -> list[WatchItem]:
    async def run() -> list[WatchItem]:
        items: list[WatchItem] = []
        async for item in watch:
            items.append(item)
            if until(items):
                break
        return items

    return asyncio.run(asyncio.wait_for(run(), 10))


def names(items: list[WatchItem]) -> list[str]:
    found = []
    for item in items:
        metadata = item.object["metadata"]
        found.append(f"{item.type} {metadata.get('name') or metadata.get('resourceVersion')}")
    return found


def synced(count: int) -> Callable[[list[WatchItem]], bool]:
    return lambda items: sum(i.type == "SYNCED" for i in items) >= count


def test_a_list_is_followed_by_a_watch_from_its_version_with_bookmarks() -> None:
    api = FakeApi()
    api.lists.append(listing(10, pod("a-1", 5), more="next"))
    api.lists.append(listing(10, pod("b-1", 7)))
    api.watches.append([event("MODIFIED", failed("a-1", 11)),
                        event("BOOKMARK", {"metadata": {"resourceVersion": "15"}})])
    api.watches.append([event("ADDED", pod("c-1", 16))])
    watch = pod_watch(api.as_api(), timeout_seconds=1)
    items = collect(watch, lambda items: items[-1].object["metadata"].get("name") == "c-1")
    assert names(items) == ["LISTED a-1", "LISTED b-1", "SYNCED 10", "MODIFIED a-1",
                            "BOOKMARK 15", "ADDED c-1"]
    lists = [q for m, _, q in api.asked if m == "GET"]
    assert lists[0] == {"labelSelector": JOB_PODS_SELECTOR, "limit": "500"}
    assert lists[1]["continue"] == "next"
    watches = [q for m, _, q in api.asked if m == "WATCH"]
    assert watches[0] == {"labelSelector": JOB_PODS_SELECTOR, "watch": "true",
                          "allowWatchBookmarks": "true", "timeoutSeconds": "1",
                          "resourceVersion": "10"}
    # The server ended the first watch: the next resumes from the bookmark, listing nothing.
    assert watches[1]["resourceVersion"] == "15"
    assert watch.stats.lists == 1
    assert watch.stats.watches >= 2
    assert watch.stats.restarts == 0


@pytest.mark.parametrize("expiry", ["event", "status"])
def test_an_expired_watch_lists_again_and_shows_the_current_state(expiry: str) -> None:
    api = FakeApi()
    api.lists.append(listing(10, pod("a-1", 5)))
    api.lists.append(listing(30, failed("a-1", 20), failed("b-1", 25)))
    if expiry == "event":
        api.watches.append([gone()])
    else:
        api.watches.append(ApiRefusal(410, "gone"))
    watch = pod_watch(api.as_api())
    items = collect(watch, synced(2))
    assert names(items) == ["LISTED a-1", "SYNCED 10", "LISTED a-1", "LISTED b-1", "SYNCED 30"]
    assert items[2].object["status"]["phase"] == "Failed"
    assert watch.stats.relists == 1
    assert watch.stats.restarts == 0


def test_an_expired_paging_token_starts_the_list_over() -> None:
    api = FakeApi()
    api.lists.extend([listing(10, pod("a-1", 5), more="t1"), ApiRefusal(410, "expired"),
                      listing(12, pod("a-1", 5), more="t2"), listing(12, pod("b-1", 11))])
    watch = pod_watch(api.as_api())
    items = collect(watch, synced(1))
    assert names(items) == ["LISTED a-1", "LISTED a-1", "LISTED b-1", "SYNCED 12"]
    assert watch.stats.relists == 1


def test_failures_back_off_then_resume_where_the_watch_was() -> None:
    api = FakeApi()
    api.lists.append(listing(10))
    api.watches.extend([RuntimeUnavailableError("no route"), RuntimeUnavailableError("again"),
                        [event("ADDED", pod("a-1", 11))]])
    made: list[RecordingBackoff] = []

    def backoff() -> Backoff:
        made.append(RecordingBackoff(initial=0.01, maximum=0.02, jitter=0))
        return made[-1]

    watch = pod_watch(api.as_api(), backoff=backoff)
    items = collect(watch, lambda items: items[-1].type == "ADDED")
    assert names(items) == ["SYNCED 10", "ADDED a-1"]
    assert made[0].delays == [0.01, 0.02]
    assert watch.stats.restarts == 2
    assert watch.stats.last_error == "again"
    assert [q["resourceVersion"] for m, _, q in api.asked if m == "WATCH"][:3] == ["10"] * 3


def test_other_watch_errors_restart_without_listing_again() -> None:
    api = FakeApi()
    api.lists.append(listing(10))
    api.watches.extend([[event("ERROR", {"code": 500, "message": "etcd is sad"})],
                        [event("ADDED", pod("a-1", 11))]])
    watch = pod_watch(api.as_api(), backoff=lambda: Backoff(initial=0.001, jitter=0))
    items = collect(watch, lambda items: items[-1].type == "ADDED")
    assert names(items) == ["SYNCED 10", "ADDED a-1"]
    assert watch.stats.restarts == 1
    assert watch.stats.relists == 0
    assert "etcd is sad" in str(watch.stats.last_error)


def test_each_namespace_is_watched_on_its_own() -> None:
    api = FakeApi()
    api.lists.extend([listing(10), listing(10)])
    watch = pod_watch(api.as_api(), namespaces=["tool-a", "tool-b"])
    items = collect(watch, synced(2))
    assert sorted(i.path for i in items) == ["/api/v1/namespaces/tool-a/pods",
                                             "/api/v1/namespaces/tool-b/pods"]


def test_stopping_ends_an_open_watch_and_its_thread_at_once() -> None:
    api = FakeApi()
    api.lists.append(listing(10, pod("a-1", 5)))
    watch = pod_watch(api.as_api())

    async def run() -> list[WatchItem]:
        items = []
        async for item in watch:
            items.append(item)
            if item.type == "SYNCED":
                # Wait for the watch to be open and quiet, then stop it.
                while not api.streams:
                    await asyncio.sleep(0.01)
                watch.stop()
        return items

    items = asyncio.run(asyncio.wait_for(run(), 10))
    assert names(items) == ["LISTED a-1", "SYNCED 10"]
    assert api.streams[0].aborted.is_set()
    for thread in watch.threads:
        thread.join(5)
        assert not thread.is_alive()


def test_cancelling_the_iteration_stops_the_threads() -> None:
    api = FakeApi()
    api.lists.append(listing(10))
    watch = pod_watch(api.as_api())

    async def run() -> None:
        task = asyncio.create_task(collect_forever(watch))
        while not api.streams:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(run(), 10))
    for thread in watch.threads:
        thread.join(5)
        assert not thread.is_alive()


async def collect_forever(watch: ListWatch) -> None:
    async for _ in watch:
        pass


def test_watch_stats_lag_and_stuck_follow_the_last_activity() -> None:
    now = [100.0]
    stats = WatchStats(clock=lambda: now[0])
    now[0] = 130.0
    assert stats.lag() == 30.0
    assert stats.stuck(20.0)
    assert not stats.stuck(30.0)
    stats.touch(events=2)
    now[0] = 135.0
    assert stats.lag() == 5.0
    assert stats.events == 2
    stats.begin()
    assert stats.lag() == 0.0
