"""A tool's quota: what its namespace allows, and what a refusal for quota means.

Three questions are answered here from the plain dicts the Kubernetes API returns:

* ``toolforge-jobs quota``: the namespace's ResourceQuota and LimitRange as the categories of
  REFERENCE §7 (:func:`quota_categories`).
* Will Kubernetes accept this job's cpu and memory? The LimitRange's ``type: Container``
  min/max, checked before anything is sent, with a message that says what to do
  (:func:`limit_problems`).
* Why was a create refused? The apiserver's quota admission answers 403 with text such as
  ``pods "x" is forbidden: exceeded quota: tool-foo, requested: limits.cpu=1, used: ...``;
  :func:`parse_quota_refusal` reads it (also from a controller's FailedCreate event, whose
  message embeds the same text) and :func:`quota_exceeded_message` says it for people. The
  apiserver lists only the resources that are over, each list sorted and comma-joined
  (``limits.cpu=1,limits.memory=1Gi``); the text may arrive JSON-escaped inside an error body.

Malformed objects never raise: what cannot be read is reported as missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from tjf_core.errors import InvalidQuantityError, Problem
from tjf_core.quantity import Quantity

__all__ = [
    "CATEGORIES",
    "Manifest",
    "QuotaCategory",
    "QuotaItem",
    "QuotaRefusal",
    "QuotaResource",
    "limit_problems",
    "parse_quota_refusal",
    "quota_categories",
    "quota_exceeded_message",
]

#: A Kubernetes object as the API returns it in JSON.
Manifest = Mapping[str, Any]

#: The ResourceQuota keys shown per category (REFERENCE §7); "Per-job limits" comes from the
#: LimitRange instead.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Running jobs", ("pods", "count/jobs.batch", "limits.cpu", "limits.memory")),
    ("Per-job limits", ("cpu", "memory")),
    ("Job definitions", ("count/cronjobs.batch", "count/deployments.apps")),
)
_PER_JOB = "Per-job limits"


@attrs.frozen
class QuotaItem:
    """One limited resource: its limit and current use, as the API wrote them (None: unknown)."""

    name: str
    limit: str | None
    used: str | None


@attrs.frozen
class QuotaCategory:
    name: str
    items: tuple[QuotaItem, ...]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    # Quantities are strings in the API's JSON; hand-written objects may use plain numbers.
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _container_limits(limit_range: Manifest | None) -> Mapping[str, Any]:
    """The LimitRange's ``type: Container`` entry ({} when there is none)."""
    spec = _mapping(_mapping(limit_range).get("spec"))
    limits = spec.get("limits")
    if not isinstance(limits, list):
        return {}
    for entry in limits:
        if isinstance(entry, Mapping) and entry.get("type") == "Container":
            return entry
    return {}


def quota_categories(
    *, resource_quota: Manifest | None, limit_range: Manifest | None
) -> list[QuotaCategory]:
    """The quota of a namespace in the categories of REFERENCE §7, every item always present.

    Limits come from ``status.hard`` (what the quota controller enforces), falling back to
    ``spec.hard`` before the controller has caught up; use from ``status.used``.
    """
    quota = _mapping(resource_quota)
    status = _mapping(quota.get("status"))
    status_hard = _mapping(status.get("hard"))
    spec_hard = _mapping(_mapping(quota.get("spec")).get("hard"))
    used = _mapping(status.get("used"))
    per_job_max = _mapping(_container_limits(limit_range).get("max"))
    categories = []
    for category, keys in CATEGORIES:
        if category == _PER_JOB:
            items = tuple(QuotaItem(key, _text(per_job_max.get(key)), None) for key in keys)
        else:
            items = tuple(
                QuotaItem(
                    key,
                    _text(status_hard.get(key)) or _text(spec_hard.get(key)),
                    _text(used.get(key)),
                )
                for key in keys
            )
        categories.append(QuotaCategory(category, items))
    return categories


def _bound(bounds: Mapping[str, Any], key: str) -> Quantity | None:
    text = _text(bounds.get(key))
    if text is None:
        return None
    try:
        return Quantity.parse(text)
    except InvalidQuantityError:
        return None  # a LimitRange Kubernetes accepted is well formed; never block on ours


def limit_problems(
    *, memory: Quantity, cpu: Quantity, limit_range: Manifest | None
) -> list[Problem]:
    """Problems of a job's cpu/memory LIMITS against the LimitRange's per-container min and max.

    Kubernetes would refuse such a pod at creation time, long after the job was accepted; saying
    so up front, with the bound and what to do, is the point.
    """
    entry = _container_limits(limit_range)
    lowest = _mapping(entry.get("min"))
    highest = _mapping(entry.get("max"))
    found: list[Problem] = []
    for field, value in (("memory", memory), ("cpu", cpu)):
        top = _bound(highest, field)
        bottom = _bound(lowest, field)
        if top is not None and value > top:
            found.append(
                Problem(
                    field,
                    f"{value} is above the limit of {top} per job in this tool's namespace; "
                    "ask for less or request a quota increase",
                )
            )
        elif bottom is not None and value < bottom:
            found.append(
                Problem(
                    field,
                    f"{value} is below the minimum of {bottom} per job in this tool's namespace; "
                    f"ask for at least {bottom}",
                )
            )
    return found


@attrs.frozen
class QuotaResource:
    """One resource a quota refused: its quota key and the amounts (None when not given)."""

    name: str
    requested: str | None = None
    used: str | None = None
    limited: str | None = None


@attrs.frozen
class QuotaRefusal:
    """A create refused by a ResourceQuota.

    ``must_specify`` is True for the other refusal, a pod that does not set a resource the
    quota tracks (``failed quota: q: must specify limits.cpu``).
    """

    quota: str
    resources: tuple[QuotaResource, ...]
    must_specify: bool = False


_RESOURCE = r"[A-Za-z0-9][A-Za-z0-9./_-]*"
_AMOUNT = r"[0-9A-Za-z.+-]+"
_PAIR = rf"{_RESOURCE}={_AMOUNT}"
_PAIRS = rf"(?:{_PAIR}(?:,{_PAIR})*)?"
_EXCEEDED = re.compile(
    rf"exceeded quota: (?P<quota>[^,\s\"\\]+), requested: (?P<requested>{_PAIRS}), "
    rf"used: (?P<used>{_PAIRS}), limited: (?P<limited>{_PAIRS})"
)
# Some apiserver versions end the text after `requested:`; keep what is there.
_EXCEEDED_SHORT = re.compile(
    rf"exceeded quota: (?P<quota>[^,\s\"\\]+)(?:, requested: (?P<requested>{_PAIRS}))?"
)
_MUST_SPECIFY = re.compile(
    rf"failed quota: (?P<quota>[^:\s\"\\]+): must specify (?P<names>{_RESOURCE}(?:,{_RESOURCE})*)"
)


def _pairs(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    return dict(pair.split("=", 1) for pair in text.split(","))


def parse_quota_refusal(message: str) -> QuotaRefusal | None:
    """The quota refusal inside an apiserver error or event message; None when it is not one."""
    full = _EXCEEDED.search(message)
    match = full or _EXCEEDED_SHORT.search(message)
    if match is not None:
        requested = _pairs(match["requested"])
        used = _pairs(full["used"]) if full else {}
        limited = _pairs(full["limited"]) if full else {}
        names = list(dict.fromkeys([*requested, *used, *limited]))
        resources = tuple(
            QuotaResource(name, requested.get(name), used.get(name), limited.get(name))
            for name in names
        )
        return QuotaRefusal(match["quota"], resources)
    specify = _MUST_SPECIFY.search(message)
    if specify is not None:
        resources = tuple(QuotaResource(name) for name in specify["names"].split(","))
        return QuotaRefusal(specify["quota"], resources, must_specify=True)
    return None


def _describe(resource: QuotaResource) -> str:
    amounts = []
    if resource.used is not None and resource.limited is not None:
        amounts.append(f"used {resource.used} of {resource.limited}")
    elif resource.limited is not None:
        amounts.append(f"limit {resource.limited}")
    if resource.requested is not None:
        amounts.append(f"requested {resource.requested}")
    return f"{resource.name} ({', '.join(amounts)})" if amounts else resource.name


def quota_exceeded_message(message: str) -> str | None:
    """The apiserver's quota refusal said for people, naming each resource; None if not one.

    ``'... exceeded quota: tool-foo, requested: count/jobs.batch=1, used: count/jobs.batch=15,
    limited: count/jobs.batch=15'`` becomes ``'out of quota for count/jobs.batch (used 15 of
    15, requested 1) in quota tool-foo'``.
    """
    refusal = parse_quota_refusal(message)
    if refusal is None:
        return None
    names = ", ".join(r.name for r in refusal.resources)
    if refusal.must_specify:
        return f"refused by quota {refusal.quota}: the job must set {names}"
    if not refusal.resources:
        return f"refused by quota {refusal.quota}"
    described = ", ".join(_describe(r) for r in refusal.resources)
    return f"out of quota for {described} in quota {refusal.quota}"
