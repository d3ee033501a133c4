"""Each local tool's ResourceQuota and LimitRange, and what it uses of them now.

A Toolforge tool's namespace has both objects; locally they are the settings' defaults unless
a tool was given its own (:meth:`~tjf_core.local.LocalRuntime.set_quota`). What is used is
counted as the quota controller counts it: objects by kind, and the count and resources of
the pods that are not finished. Admission itself is :mod:`tjf_core.objectstore`'s.
"""

from __future__ import annotations

from decimal import Decimal

from tjf_core.local.settings import LocalSettings
from tjf_core.local.store import Space
from tjf_core.objectstore import (
    QUOTA_KEYS,
    admission_refusal,
    count_request,
    json_copy,
    pod_request,
    quantity_text,
    quota_error,
    sum_requests,
)
from tjf_core.runtime import Manifest

__all__ = ["admit", "limit_range", "live_pods", "resource_quota", "used_quota"]

_TERMINAL = frozenset({"Succeeded", "Failed"})


def resource_quota(space: Space, settings: LocalSettings) -> Manifest:
    """The tool's ResourceQuota (its own, else the default), without a status."""
    if space.resource_quota is not None:
        quota = json_copy(space.resource_quota)
        quota.pop("status", None)  # the quota controller's part: counted afresh
    else:
        quota = {"spec": {"hard": dict(settings.resource_quota)}}
    quota.update(apiVersion="v1", kind="ResourceQuota")
    quota["metadata"] = {"name": space.namespace, **(quota.get("metadata") or {}),
                         "namespace": space.namespace}
    return quota


def limit_range(space: Space, settings: LocalSettings) -> Manifest:
    """The tool's LimitRange (its own, else one with the default ``Container`` entry)."""
    if space.limit_range is not None:
        return json_copy(space.limit_range)
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": space.namespace, "namespace": space.namespace},
            "spec": {"limits": [json_copy(dict(settings.limit_range))]}}


def live_pods(space: Space) -> list[Manifest]:
    """The pods a quota counts: those not finished."""
    return [pod for pod in space.of_kind("Pod")
            if (pod.get("status") or {}).get("phase") not in _TERMINAL]


def used_quota(space: Space, quota: Manifest) -> Manifest:
    """``quota`` with the ``status`` the quota controller would write: hard, and used now."""
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    used: dict[str, str] = {}
    for kind, (_, keys) in QUOTA_KEYS.items():
        if kind != "Pod":
            count = sum(1 for _ in space.of_kind(kind))
            used.update({key: str(count) for key in keys if key in hard})
    pods = sum_requests(pod_request(pod.get("spec") or {}) for pod in live_pods(space))
    for key in hard:
        if key not in used:
            used[key] = quantity_text(key, pods.get(key, Decimal(0)))
    return {**quota, "status": {"hard": hard, "used": used}}


def admit(space: Space, settings: LocalSettings, *, kind: str, name: str) -> None:
    """Raise QuotaExceededError, as the apiserver would, if one more ``kind`` does not fit."""
    used = Decimal(sum(1 for _ in space.of_kind(kind)))
    refusal = admission_refusal(resource_quota(space, settings), resource=QUOTA_KEYS[kind][0],
                                name=name, namespace=space.namespace,
                                requested=count_request(kind), used=lambda key: used)
    if refusal is not None:
        raise quota_error(refusal)
