"""Tests of quota: categories from ResourceQuota/LimitRange, limit checks, refusal messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core.errors import Problem
from tjf_core.quantity import Quantity
from tjf_core.quota import (
    QuotaCategory,
    QuotaItem,
    QuotaRefusal,
    QuotaResource,
    limit_problems,
    parse_quota_refusal,
    quota_categories,
    quota_exceeded_message,
)

RESOURCE_QUOTA: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "tool-foo", "namespace": "tool-foo"},
    "spec": {
        "hard": {
            "configmaps": "10",
            "count/cronjobs.batch": "50",
            "count/deployments.apps": "16",
            "count/jobs.batch": "15",
            "limits.cpu": "8",
            "limits.memory": "8Gi",
            "pods": "16",
            "requests.cpu": "4",
            "requests.memory": "6Gi",
        }
    },
    "status": {
        "hard": {
            "configmaps": "10",
            "count/cronjobs.batch": "50",
            "count/deployments.apps": "16",
            "count/jobs.batch": "15",
            "limits.cpu": "8",
            "limits.memory": "8Gi",
            "pods": "16",
        },
        "used": {
            "configmaps": "2",
            "count/cronjobs.batch": "7",
            "count/deployments.apps": "2",
            "count/jobs.batch": "3",
            "limits.cpu": "2500m",
            "limits.memory": "3Gi",
            "pods": "5",
        },
    },
}

LIMIT_RANGE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "LimitRange",
    "metadata": {"name": "tool-foo", "namespace": "tool-foo"},
    "spec": {
        "limits": [
            {"type": "Pod", "max": {"cpu": "2", "memory": "8Gi"}},
            {
                "type": "Container",
                "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "150m", "memory": "256Mi"},
                "max": {"cpu": "1", "memory": "4Gi"},
                "min": {"cpu": "50m", "memory": "100Mi"},
            },
        ]
    },
}


# --- categories --------------------------------------------------------------------------------


def test_quota_categories_from_real_objects() -> None:
    assert quota_categories(resource_quota=RESOURCE_QUOTA, limit_range=LIMIT_RANGE) == [
        QuotaCategory(
            "Running jobs",
            (
                QuotaItem("pods", "16", "5"),
                QuotaItem("count/jobs.batch", "15", "3"),
                QuotaItem("limits.cpu", "8", "2500m"),
                QuotaItem("limits.memory", "8Gi", "3Gi"),
            ),
        ),
        QuotaCategory(
            "Per-job limits", (QuotaItem("cpu", "1", None), QuotaItem("memory", "4Gi", None))
        ),
        QuotaCategory(
            "Job definitions",
            (
                QuotaItem("count/cronjobs.batch", "50", "7"),
                QuotaItem("count/deployments.apps", "16", "2"),
            ),
        ),
    ]


def test_spec_hard_is_used_before_the_quota_controller_fills_status() -> None:
    fresh = {"spec": {"hard": {"pods": "16", "limits.cpu": 8}}}
    running = quota_categories(resource_quota=fresh, limit_range=None)[0]
    assert running.items[0] == QuotaItem("pods", "16", None)
    assert running.items[2] == QuotaItem("limits.cpu", "8", None)


def test_status_hard_wins_over_spec_hard() -> None:
    quota = {"spec": {"hard": {"pods": "99"}}, "status": {"hard": {"pods": "16"}}}
    assert quota_categories(resource_quota=quota, limit_range=None)[0].items[0].limit == "16"


def test_missing_objects_give_every_item_as_unknown() -> None:
    categories = quota_categories(resource_quota=None, limit_range=None)
    assert [c.name for c in categories] == ["Running jobs", "Per-job limits", "Job definitions"]
    assert all(item.limit is None and item.used is None for c in categories for item in c.items)


def test_malformed_objects_read_as_missing() -> None:
    quota = {"status": {"hard": ["pods"], "used": {"pods": None}}, "spec": "x"}
    limits = {"spec": {"limits": [None, {"type": "Container", "max": "lots"}]}}
    categories = quota_categories(resource_quota=quota, limit_range=limits)
    assert all(item.limit is None and item.used is None for c in categories for item in c.items)


# --- limit checks ------------------------------------------------------------------------------


def check(memory: str, cpu: str, limit_range: Any = LIMIT_RANGE) -> list[Problem]:
    return limit_problems(
        memory=Quantity.parse(memory), cpu=Quantity.parse(cpu), limit_range=limit_range
    )


def test_within_the_limits() -> None:
    assert check("512Mi", "0.5") == []
    assert check("4Gi", "1000m") == []  # the bounds themselves are allowed
    assert check("100Mi", "50m") == []


def test_memory_above_the_maximum() -> None:
    problems = check("8Gi", "0.5")
    assert problems == [
        Problem(
            "memory",
            "8Gi is above the limit of 4Gi per job in this tool's namespace; "
            "ask for less or request a quota increase",
        )
    ]
    assert str(problems[0]).startswith("memory: 8Gi is above the limit of 4Gi per job")


def test_cpu_above_the_maximum_and_memory_below_the_minimum() -> None:
    assert check("10Mi", "1.5") == [
        Problem(
            "memory",
            "10Mi is below the minimum of 100Mi per job in this tool's namespace; "
            "ask for at least 100Mi",
        ),
        Problem(
            "cpu",
            "1500m is above the limit of 1 per job in this tool's namespace; "
            "ask for less or request a quota increase",
        ),
    ]


def test_cpu_below_the_minimum() -> None:
    [problem] = check("512Mi", "10m")
    assert problem.path == "cpu"
    assert problem.message.startswith("10m is below the minimum of 50m per job")


def test_no_limit_range_or_no_container_entry_means_no_limits() -> None:
    assert check("64Gi", "32", limit_range=None) == []
    pod_only = {"spec": {"limits": [{"type": "Pod", "max": {"memory": "1Gi"}}]}}
    assert check("64Gi", "32", limit_range=pod_only) == []


def test_an_unreadable_bound_is_ignored() -> None:
    odd = {"spec": {"limits": [{"type": "Container", "max": {"cpu": "lots", "memory": "1Gi"}}]}}
    assert [p.path for p in check("2Gi", "64", limit_range=odd)] == ["memory"]


@settings(max_examples=200)
@given(st.integers(min_value=1, max_value=64 * 1024), st.integers(min_value=1, max_value=4000))
def test_limit_problems_agree_with_the_bounds(mebibytes: int, millicores: int) -> None:
    memory, cpu = Quantity.parse(f"{mebibytes}Mi"), Quantity.parse(f"{millicores}m")
    paths = [p.path for p in limit_problems(memory=memory, cpu=cpu, limit_range=LIMIT_RANGE)]
    assert ("memory" in paths) == (not 100 <= mebibytes <= 4096)
    assert ("cpu" in paths) == (not 50 <= millicores <= 1000)


# --- refusals ----------------------------------------------------------------------------------

JOBS_REFUSAL = (
    'jobs.batch "x" is forbidden: exceeded quota: tool-foo, requested: count/jobs.batch=1, '
    "used: count/jobs.batch=15, limited: count/jobs.batch=15"
)
PODS_REFUSAL = (
    'pods "x-7d4b9c-xk2lp" is forbidden: exceeded quota: tool-foo, '
    "requested: limits.cpu=1,limits.memory=1Gi, used: limits.cpu=8,limits.memory=8Gi, "
    "limited: limits.cpu=8,limits.memory=8Gi"
)


def test_jobs_refusal() -> None:
    assert quota_exceeded_message(JOBS_REFUSAL) == (
        "out of quota for count/jobs.batch (used 15 of 15, requested 1) in quota tool-foo"
    )


def test_pods_refusal_names_each_resource() -> None:
    assert quota_exceeded_message(PODS_REFUSAL) == (
        "out of quota for limits.cpu (used 8 of 8, requested 1), "
        "limits.memory (used 8Gi of 8Gi, requested 1Gi) in quota tool-foo"
    )
    assert parse_quota_refusal(PODS_REFUSAL) == QuotaRefusal(
        "tool-foo",
        (
            QuotaResource("limits.cpu", "1", "8", "8"),
            QuotaResource("limits.memory", "1Gi", "8Gi", "8Gi"),
        ),
    )


def test_refusal_inside_a_controller_event() -> None:
    event = f"Error creating: {PODS_REFUSAL}"
    refusal = parse_quota_refusal(event)
    assert refusal is not None
    assert [r.name for r in refusal.resources] == ["limits.cpu", "limits.memory"]


def test_refusal_inside_a_json_error_body() -> None:
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": JOBS_REFUSAL,
            "reason": "Forbidden",
            "details": {"name": "x", "group": "batch", "kind": "jobs"},
            "code": 403,
        }
    )
    text = f"(403)\nReason: Forbidden\nHTTP response headers: {{}}\nHTTP response body: {body}"
    assert quota_exceeded_message(text) == (
        "out of quota for count/jobs.batch (used 15 of 15, requested 1) in quota tool-foo"
    )


def test_refusal_with_only_requested_amounts() -> None:
    text = 'pods "x" is forbidden: exceeded quota: compute, requested: pods=1'
    assert quota_exceeded_message(text) == "out of quota for pods (requested 1) in quota compute"


def test_refusal_for_a_missing_resource_setting() -> None:
    text = 'pods "x" is forbidden: failed quota: tool-foo: must specify limits.cpu,limits.memory'
    refusal = parse_quota_refusal(text)
    assert refusal is not None
    assert refusal.must_specify
    assert quota_exceeded_message(text) == (
        "refused by quota tool-foo: the job must set limits.cpu, limits.memory"
    )


@pytest.mark.parametrize(
    "text",
    [
        'jobs.batch "x" already exists',
        'pods "x" is forbidden: error looking up service account tool-foo/default',
        "exceeded quota",
        "",
    ],
)
def test_other_errors_are_not_quota_refusals(text: str) -> None:
    assert parse_quota_refusal(text) is None
    assert quota_exceeded_message(text) is None


RESOURCE_NAMES = st.sampled_from(
    [
        "pods",
        "count/jobs.batch",
        "limits.cpu",
        "limits.memory",
        "requests.cpu",
        "requests.nvidia.com/gpu",
        "hugepages-2Mi",
        "count/cronjobs.batch",
    ]
)
AMOUNTS = st.sampled_from(["0", "1", "15", "500m", "1Gi", "2.5", "8Gi", "100Mi", "1e3"])


@settings(max_examples=200)
@given(
    quota=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    resources=st.dictionaries(RESOURCE_NAMES, st.tuples(AMOUNTS, AMOUNTS, AMOUNTS), min_size=1),
)
def test_parse_reads_back_any_apiserver_refusal(
    quota: str, resources: dict[str, tuple[str, str, str]]
) -> None:
    names = sorted(resources)

    def listed(index: int) -> str:
        return ",".join(f"{name}={resources[name][index]}" for name in names)

    text = (
        f'pods "p" is forbidden: exceeded quota: {quota}, requested: {listed(0)}, '
        f"used: {listed(1)}, limited: {listed(2)}"
    )
    refusal = parse_quota_refusal(text)
    assert refusal == QuotaRefusal(
        quota, tuple(QuotaResource(name, *resources[name]) for name in names)
    )
    message = quota_exceeded_message(text)
    assert message is not None
    assert all(name in message for name in names)
