"""The pure bookkeeping the local runtime and the in-memory fake share (tjf_core.objectstore).

The runtime contract checks both runtimes through the service; these are the laws of the
shared rules themselves: garbage collection reaches a fixed point and removes only orphans,
quota admission refuses exactly when an item would go over and says so in the apiserver's
words, and quota amounts print and read back exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.objectstore import (
    admission_refusal,
    amount,
    new_object,
    orphaned,
    pod_request,
    quantity_text,
    serial_uid,
    sum_requests,
    updated_object,
)
from tjf_core.quota import parse_quota_refusal

KEYS = ("pods", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory",
        "count/jobs.batch")

#: Amounts as quotas hold them: whole bytes and counts, milli-cpus, at most 2^40.
amounts = st.one_of(st.integers(0, 2**40).map(Decimal),
                    st.integers(0, 10**6).map(lambda m: Decimal(m) / 1000))


@st.composite
def forests(draw: st.DrawFn) -> dict[int, dict[str, Any]]:
    """Objects whose owners are earlier objects, or uids that exist nowhere."""
    size = draw(st.integers(0, 12))
    objects: dict[int, dict[str, Any]] = {}
    for index in range(size):
        owners = draw(st.lists(st.integers(-3, index - 1), max_size=3, unique=True))
        refs = [{"uid": serial_uid(owner + 100 if owner < 0 else owner)} for owner in owners]
        objects[index] = {"metadata": {"uid": serial_uid(index), "ownerReferences": refs}}
    return objects


@settings(max_examples=200)
@given(forests())
def test_garbage_collection_removes_exactly_the_orphans(objects: dict[int, Any]) -> None:
    gone = orphaned(objects)
    kept = {key: obj for key, obj in objects.items() if key not in gone}
    uids = {obj["metadata"]["uid"] for obj in kept.values()}
    assert len(set(gone)) == len(gone)
    for obj in kept.values():  # a fixed point: nothing left is an orphan
        owners = {ref["uid"] for ref in obj["metadata"]["ownerReferences"]}
        assert not owners or owners & uids
    for key in gone:  # and nothing gone had a surviving owner
        owners = {ref["uid"] for ref in objects[key]["metadata"]["ownerReferences"]}
        assert owners
        assert not owners & uids


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(KEYS), amounts, min_size=1),
       st.dictionaries(st.sampled_from(KEYS), amounts, min_size=1),
       st.dictionaries(st.sampled_from(KEYS), amounts))
def test_admission_refuses_exactly_what_goes_over_and_says_it(
    hard: dict[str, Decimal], requested: dict[str, Decimal], used: dict[str, Decimal]
) -> None:
    quota = {"metadata": {"name": "tool-a"},
             "spec": {"hard": {key: quantity_text(key, value) for key, value in hard.items()}}}
    refusal = admission_refusal(quota, resource="pods", name="p", namespace="tool-a",
                                requested=requested,
                                used=lambda key: used.get(key, Decimal(0)))
    over = [key for key, value in requested.items()
            if key in hard and used.get(key, Decimal(0)) + value > hard[key]]
    if not over:
        assert refusal is None
        return
    assert refusal is not None
    parsed = parse_quota_refusal(refusal)
    assert parsed is not None
    assert parsed.quota == "tool-a"
    assert [item.name for item in parsed.resources] == over
    for item in parsed.resources:
        assert amount(item.requested) == requested[item.name]
        assert amount(item.used) == used.get(item.name, Decimal(0))
        assert amount(item.limited) == hard[item.name]


@settings(max_examples=200)
@given(st.sampled_from(KEYS), amounts)
def test_quota_amounts_print_and_read_back_exactly(key: str, value: Decimal) -> None:
    assert amount(quantity_text(key, value)) == value


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(["100m", "500m", "1", "1.5"]),
                          st.sampled_from(["256Mi", "512Mi", "1Gi", "100M"])), max_size=6))
def test_pod_requests_add_up(containers: list[tuple[str, str]]) -> None:
    specs = [{"containers": [{"resources": {"limits": {"cpu": cpu, "memory": memory},
                                            "requests": {"cpu": cpu, "memory": memory}}}]}
             for cpu, memory in containers]
    total = sum_requests(pod_request(spec) for spec in specs)
    assert total.get("pods", Decimal(0)) == len(containers)
    assert total.get("limits.memory", Decimal(0)) == sum(
        (amount(memory) or Decimal(0) for _, memory in containers), Decimal(0))
    assert total.get("cpu") == total.get("requests.cpu")


def test_an_update_keeps_identity_and_counts_spec_changes() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    old = new_object({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"a": 1}},
                     namespace="tool-a", serial=1, uid="u", now=now)
    same = updated_object(old, {"kind": "Deployment", "metadata": {"name": "d"},
                                "spec": {"a": 1}}, serial=2)
    assert (same["metadata"]["uid"], same["metadata"]["generation"]) == ("u", 1)
    changed = updated_object(same, {"kind": "Deployment", "metadata": {"name": "d"},
                                    "spec": {"a": 2}}, serial=3)
    assert (changed["metadata"]["generation"], changed["metadata"]["resourceVersion"]) == (2, "3")
    assert changed["metadata"]["creationTimestamp"] == "2024-05-01T00:00:00Z"
