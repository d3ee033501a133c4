"""Where each kind lives in the API, and what a manifest needs before a cluster takes it.

Pure helpers of the runtime: the REST path of a kind (CronJobs move between ``batch/v1`` and
``batch/v1beta1`` with the cluster's age), names checked before they are put into a URL or a
label selector (so ``../secrets`` or ``a,b!=c`` can never widen a request), and the values a
replace must carry over from the live object because the server set them and refuses to have
them unset (a Service's cluster IP, a Job's generated selector).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import attrs

from tjf_core.errors import ForbiddenError, InvalidJobError, Problem
from tjf_core.render import MANAGED_BY, NAME_LABEL

__all__ = [
    "CRONJOB_VERSIONS",
    "EVENT",
    "KINDS",
    "LIMIT_RANGE",
    "MANAGED_SELECTOR",
    "POD",
    "RESOURCE_QUOTA",
    "Kind",
    "carry_over",
    "cronjob_kind",
    "dropped_time_zone",
    "is_label_value",
    "is_object_name",
    "job_selector",
    "prepared_body",
]

MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
CRONJOB_VERSIONS = ("batch/v1", "batch/v1beta1")

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
#: Labels the Job controller puts on a Job's pod template (the unprefixed ones before 1.27).
_JOB_GENERATED_LABELS = frozenset({"controller-uid", "job-name",
                                   "batch.kubernetes.io/controller-uid",
                                   "batch.kubernetes.io/job-name"})
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")


@attrs.frozen
class Kind:
    """A kind of object and where the API serves it."""

    kind: str
    api_version: str
    plural: str

    @property
    def _base(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else \
            f"/apis/{self.api_version}"

    def collection(self, namespace: str) -> str:
        return f"{self._base}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


KINDS = {
    "Job": Kind("Job", "batch/v1", "jobs"),
    "Deployment": Kind("Deployment", "apps/v1", "deployments"),
    "Service": Kind("Service", "v1", "services"),
    "Pod": Kind("Pod", "v1", "pods"),
}
POD = KINDS["Pod"]
EVENT = Kind("Event", "v1", "events")
RESOURCE_QUOTA = Kind("ResourceQuota", "v1", "resourcequotas")
LIMIT_RANGE = Kind("LimitRange", "v1", "limitranges")


def cronjob_kind(api_version: str) -> Kind:
    return Kind("CronJob", api_version, "cronjobs")


def is_object_name(name: str) -> bool:
    """Whether ``name`` can name an object (a DNS-1123 subdomain), so is safe in a URL."""
    return len(name) <= 253 and _SUBDOMAIN.match(name) is not None


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a non-empty label value, so is safe in a label selector."""
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def job_selector(name: str) -> str:
    """The label selector of every object of job ``name`` (check it with is_label_value)."""
    return f"{NAME_LABEL}={name},{MANAGED_SELECTOR}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def prepared_body(manifest: Mapping[str, Any], *, kind: Kind, namespace: str) -> dict[str, Any]:
    """``manifest`` as this cluster takes it: the served apiVersion, in the tool's namespace.

    A CronJob with a time zone is refused on a cluster whose CronJobs are ``batch/v1beta1``:
    the apiserver would silently drop the field and run the schedule in UTC.
    """
    metadata = _mapping(manifest.get("metadata"))
    given = metadata.get("namespace")
    if given is not None and given != namespace:
        raise ForbiddenError(
            f"{kind.kind} {metadata.get('name')!r} names namespace {given!r}: a tool may only "
            f"create objects in its own namespace {namespace!r}"
        )
    zone = _mapping(manifest.get("spec")).get("timeZone")
    if kind.kind == "CronJob" and kind.api_version == "batch/v1beta1" and zone:
        raise InvalidJobError([Problem(
            "timezone",
            f"{zone!r} cannot be used: this cluster serves CronJobs as batch/v1beta1 and does "
            "not support time zones; remove it and write the schedule in UTC",
        )])
    return {**manifest, "apiVersion": kind.api_version}


def dropped_time_zone(sent: Mapping[str, Any], live: Mapping[str, Any]) -> str | None:
    """The time zone ``sent`` asked for that the live object does not have (None if kept)."""
    zone = _mapping(sent.get("spec")).get("timeZone")
    if zone and _mapping(live.get("spec")).get("timeZone") != zone:
        return str(zone)
    return None


def carry_over(kind: str, *, live: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` with what the server set on ``live`` and will not let a replace unset.

    Always the resourceVersion (a replace of a changed object must fail, not overwrite);
    for a Service its cluster IPs; for a Job its generated selector and the pod template
    labels that selector matches. Anything else that differs in an immutable field still
    fails with 422, and the runtime then re-creates the object.
    """
    body = copy.deepcopy(dict(new))
    live_meta = _mapping(live.get("metadata"))
    metadata = body.setdefault("metadata", {})
    metadata["resourceVersion"] = live_meta.get("resourceVersion")
    live_spec = _mapping(live.get("spec"))
    spec = body.setdefault("spec", {})
    if kind == "Service":
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if field in live_spec and field not in spec:
                spec[field] = copy.deepcopy(live_spec[field])
    elif kind == "Job" and "selector" not in spec and not live_spec.get("manualSelector"):
        selector = _mapping(live_spec.get("selector"))
        if selector:
            spec["selector"] = copy.deepcopy(dict(selector))
            template = spec.setdefault("template", {})
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            live_labels = _mapping(_mapping(_mapping(live_spec.get("template")).get("metadata"))
                                   .get("labels"))
            generated = {key: value for key, value in live_labels.items()
                         if key in _JOB_GENERATED_LABELS}
            for key, value in {**generated, **_mapping(selector.get("matchLabels"))}.items():
                labels.setdefault(key, value)
    return body
