"""Leader election on an in-memory Lease with the apiserver's optimistic concurrency.

The state machine is driven one try at a time with a fake clock; :meth:`LeaderElector.run`
runs on real (short) timings, waiting on conditions, never on time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.emailer.fake_kube import FakeApi
from tjf_core.errors import RuntimeUnavailableError
from tjf_emailer.leader import HANDOFF_ANNOTATION, Handoff, LeaderElector, LeaseTiming

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeApi, who: str, clock: Clock, **kwargs: Any) -> LeaderElector:
    return LeaderElector(api, namespace="tjf", name="emailer", identity=who, clock=clock,
                         now=lambda: T0 + timedelta(seconds=clock.now), **kwargs)


def spec(api: FakeApi) -> dict[str, Any]:
    found: dict[str, Any] = api.leases["emailer"]["spec"]
    return found


def test_the_first_candidate_creates_the_lease_and_renews_it() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    assert spec(api)["holderIdentity"] == "a"
    assert spec(api)["leaseDurationSeconds"] == 15
    assert spec(api)["leaseTransitions"] == 0
    acquired = spec(api)["acquireTime"]
    clock.now += 2
    assert a.try_acquire_or_renew()
    assert spec(api)["acquireTime"] == acquired
    assert spec(api)["renewTime"] == "2024-05-01T10:16:42.000000Z"
    assert a.previous is None


def test_a_standby_waits_while_the_leader_renews_and_takes_over_when_it_stops() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew(Handoff(resource_version="42"))
    for _ in range(20):  # 40 s of renewals: b never may take over
        clock.now += 2
        assert a.try_acquire_or_renew(Handoff(resource_version="42"))
        assert not b.try_acquire_or_renew()
    clock.now += 14.9  # a stopped renewing: b counts 15 s from when it saw the last change
    assert not b.try_acquire_or_renew()
    clock.now += 2.1
    assert b.try_acquire_or_renew()
    assert spec(api)["holderIdentity"] == "b"
    assert spec(api)["leaseTransitions"] == 1
    assert b.previous == Handoff(resource_version="42")
    # a comes back: the Lease is b's now, and valid.
    assert not a.try_acquire_or_renew()


def test_the_lease_is_judged_by_the_candidates_own_clock_not_the_recorded_times() -> None:
    api, clock = FakeApi(), Clock()
    assert elector(api, "a", clock).try_acquire_or_renew()
    # A record renewed "long ago" by the leader's clock is still fresh to a new observer.
    api.leases["emailer"]["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z"
    b = elector(api, "b", clock)
    assert not b.try_acquire_or_renew()
    clock.now += 16
    assert b.try_acquire_or_renew()


class Racing(FakeApi):
    """Lets another candidate write between this one's read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: LeaderElector | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = super().request(method, path, **kwargs)
        other, self.meanwhile = self.meanwhile, None
        if method == "GET" and other is not None:
            assert other.try_acquire_or_renew()
        return answer


def test_two_candidates_writing_the_same_version_cannot_both_lead() -> None:
    api, clock = Racing(), Clock()
    assert elector(api, "old", clock).try_acquire_or_renew()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert not a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.now += 20  # the old leader is gone
    api.meanwhile = b  # b reads and writes after a read, before a writes
    assert not a.try_acquire_or_renew()
    assert spec(api)["holderIdentity"] == "b"


def test_a_released_lease_is_taken_at_once_with_the_hand_over() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    handoff = Handoff(resource_version="77", watermark=T0)
    assert a.release(handoff)
    assert spec(api)["holderIdentity"] == ""
    assert spec(api)["leaseDurationSeconds"] == 1
    annotations = api.leases["emailer"]["metadata"]["annotations"]
    assert Handoff.decode(annotations[HANDOFF_ANNOTATION]) == handoff
    assert b.try_acquire_or_renew()
    assert b.previous == handoff
    assert not a.release(None)  # not a's to release any more


@settings(max_examples=200)
@given(version=st.one_of(st.none(), st.integers(0, 10**12).map(str)),
       when=st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))))
def test_a_hand_over_survives_its_annotation(version: str | None, when: datetime | None) -> None:
    handoff = Handoff(resource_version=version, watermark=when)
    expected = None if version is None and when is None else handoff
    assert Handoff.decode(handoff.encode()) == expected


def test_a_garbled_hand_over_is_none() -> None:
    for text in (None, "", "[]", "{", '{"resourceVersion": "abc"}', '{"watermark": "soon"}'):
        assert Handoff.decode(text) is None


def test_leading_runs_the_work_and_stopping_releases_with_its_hand_over() -> None:
    api = FakeApi()
    timing = LeaseTiming(lease_duration=2.0, renew_deadline=1.0, retry_period=0.02)
    a = LeaderElector(api, namespace="tjf", name="emailer", identity="a", timing=timing,
                      handoff=lambda: Handoff(resource_version="5"))
    seen: list[Handoff | None] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def lead(previous: Handoff | None) -> Handoff | None:
            seen.append(previous)
            await stop.wait()
            assert a.is_leader  # still leading while it finishes
            return Handoff(resource_version="9")

        running = asyncio.create_task(a.run(lead, stop=stop))
        while not seen or api.asked.count(("PUT", "/apis/coordination.k8s.io/v1/namespaces/"
                                           "tjf/leases/emailer", {})) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await running

    asyncio.run(asyncio.wait_for(main(), 10))
    assert seen == [None]
    assert not a.is_leader
    assert spec(api)["holderIdentity"] == ""
    annotations = api.leases["emailer"]["metadata"]["annotations"]
    assert Handoff.decode(annotations[HANDOFF_ANNOTATION]) == Handoff(resource_version="9")


def test_a_leader_that_cannot_renew_stops_its_work_before_the_lease_runs_out() -> None:
    api = FakeApi()
    timing = LeaseTiming(lease_duration=2.0, renew_deadline=0.3, retry_period=0.05)
    a = LeaderElector(api, namespace="tjf", name="emailer", identity="a", timing=timing)
    events: list[str] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def lead(previous: Handoff | None) -> Handoff | None:
            events.append("leading")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                events.append(f"cancelled, leader: {a.is_leader}")
                raise
            return None

        running = asyncio.create_task(a.run(lead, stop=stop))
        while not events:
            await asyncio.sleep(0.01)
        api.lease_failure = RuntimeUnavailableError("the API is unreachable")
        while len(events) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await running

    asyncio.run(asyncio.wait_for(main(), 10))
    assert events == ["leading", "cancelled, leader: False"]
    assert spec(api)["holderIdentity"] == "a"  # not released: it could not reach the API
