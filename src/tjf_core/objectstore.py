"""The API server's bookkeeping of stored objects, for the runtimes that keep objects themselves.

Two runtimes store Kubernetes-shaped dicts on their own instead of asking an apiserver: the
in-memory fake (:mod:`tjf_core.testing`) and the local runtime (:mod:`tjf_core.local`). Both
must write objects exactly as the apiserver would, or the service could tell them apart, so
the rules live here once, as pure functions over plain dicts:

* a new object gets a namespace, a uid, a resourceVersion (from one counter, like etcd's
  revision), a creation time, a ``generation`` for the kinds that have one, and an empty status
  (the status belongs to the controllers); an update keeps the uid and creation time, takes a
  new resourceVersion and bumps ``generation`` only when the spec changed;
* quota admission: what one more object or pod would add to the ResourceQuota's ``hard``
  items, refused with the apiserver's own text (which :mod:`tjf_core.quota` parses back);
* garbage collection: the objects all of whose owners are gone, transitively;
* label selection of a job's objects, and the merge of a patch.

Time, counters and uids are parameters; nothing here reads a clock or holds state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from tjf_core.errors import InvalidInputError, InvalidQuantityError, QuotaExceededError
from tjf_core.quantity import Quantity, QuantityFormat
from tjf_core.quota import quota_exceeded_message
from tjf_core.runtime import Manifest

__all__ = [
    "API_VERSION",
    "MANAGED_BY",
    "MANAGER",
    "NAME",
    "QUOTA_KEYS",
    "admission_refusal",
    "amount",
    "count_request",
    "hard_limits",
    "is_job_object",
    "json_copy",
    "key_of",
    "labels_of",
    "managed",
    "merge_patch",
    "name_suffix",
    "new_object",
    "orphaned",
    "owner_uids",
    "pod_request",
    "quantity_text",
    "quota_error",
    "serial_uid",
    "stamp",
    "sum_requests",
    "updated_object",
]

_T = TypeVar("_T")
_K = TypeVar("_K")

NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "toolforge-jobs-framework"
API_VERSION = {"Job": "batch/v1", "CronJob": "batch/v1", "Deployment": "apps/v1",
               "ReplicaSet": "apps/v1", "Service": "v1", "Pod": "v1", "Event": "v1"}
#: Kind -> (the resource as the apiserver names it in errors, the quota keys that count it).
QUOTA_KEYS = {"Job": ("jobs.batch", ("count/jobs.batch",)),
              "CronJob": ("cronjobs.batch", ("count/cronjobs.batch",)),
              "Deployment": ("deployments.apps", ("count/deployments.apps",)),
              "Service": ("services", ("services", "count/services")),
              "Pod": ("pods", ("pods", "count/pods"))}
#: The kinds a job is made of (what deleting a job is about; pods and events are not).
_JOB_OBJECTS = frozenset({"Job", "CronJob", "Deployment", "Service"})
_WITH_GENERATION = frozenset({"Job", "CronJob", "Deployment", "ReplicaSet"})
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses in generated names
#: What a pod's containers add to a ResourceQuota, beyond counting as a pod.
_POD_RESOURCES = (("limits", "cpu"), ("limits", "memory"), ("requests", "cpu"),
                  ("requests", "memory"))
_ZERO = Decimal(0)
_ONE = Decimal(1)


def json_copy(value: _T) -> _T:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy``: stores hand out copies on every read, as the API serialises."""
    if isinstance(value, dict):
        return cast(_T, {key: json_copy(item) for key, item in value.items()})
    if isinstance(value, list):
        return cast(_T, [json_copy(item) for item in value])
    return value


def stamp(when: datetime) -> str:
    """A time as the API writes it (RFC 3339, seconds, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def labels_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if isinstance(ref, dict) and isinstance(ref.get("uid"), str)]


def key_of(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of an object; InvalidInputError when either is missing."""
    kind, name = manifest.get("kind"), (manifest.get("metadata") or {}).get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        raise InvalidInputError("an object needs a kind and a metadata.name")
    return kind, name


def managed(obj: Mapping[str, Any], *, job: str | None = None) -> bool:
    """Made by the framework (and, with ``job``, labelled as that job's)."""
    labels = labels_of(obj)
    return labels.get(MANAGED_BY) == MANAGER and (job is None or labels.get(NAME) == job)


def is_job_object(kind: str) -> bool:
    """Whether objects of ``kind`` make up a job (Job, CronJob, Deployment, Service)."""
    return kind in _JOB_OBJECTS


# --- bookkeeping -------------------------------------------------------------------------------


def serial_uid(serial: int) -> str:
    """A uid in the shape of a UUID, unique per serial number."""
    return f"{serial:08x}-0000-4000-8000-{serial:012x}"


def name_suffix(number: int) -> str:
    """Five characters of a generated name (``job-x7k2p``), spelled from ``number``."""
    number, text = number % len(_SUFFIX_ALPHABET) ** 5, ""
    for _ in range(5):
        number, digit = divmod(number, len(_SUFFIX_ALPHABET))
        text += _SUFFIX_ALPHABET[digit]
    return text


def new_object(
    manifest: Manifest, *, namespace: str, serial: int, uid: str, now: datetime,
    keep_status: bool = False,
) -> Manifest:
    """A copy of ``manifest`` as the API server stores it on create."""
    obj = json_copy(manifest)
    kind, _ = key_of(obj)
    meta = obj.setdefault("metadata", {})
    meta.update(namespace=namespace, uid=uid, resourceVersion=str(serial),
                creationTimestamp=stamp(now))
    if kind in _WITH_GENERATION:
        meta["generation"] = 1
    obj.setdefault("apiVersion", API_VERSION.get(kind, "v1"))
    if not keep_status:
        obj["status"] = {}  # the status is the controllers' to write
    return obj


def updated_object(old: Manifest, new: Manifest, *, serial: int) -> Manifest:
    """``new`` made the successor of ``old``: same uid, new resourceVersion, status kept.

    ``new`` is changed in place and returned.
    """
    kind, _ = key_of(old)
    meta = new.setdefault("metadata", {})
    for key in ("uid", "creationTimestamp", "namespace"):
        meta[key] = old["metadata"][key]
    meta["resourceVersion"] = str(serial)
    if kind in _WITH_GENERATION:
        changed = new.get("spec") != old.get("spec")
        meta["generation"] = old["metadata"].get("generation", 1) + int(changed)
    new["status"] = json_copy(old.get("status", {}))
    return new


def orphaned(objects: Mapping[_K, Manifest]) -> list[_K]:
    """The keys of every object all of whose owners are gone, owners' owners first.

    What the garbage collector deletes, transitively: an object owned only by orphans is one.
    """
    alive = dict(objects)
    gone: list[_K] = []
    while True:
        uids = {obj["metadata"]["uid"] for obj in alive.values()}
        found = [key for key, obj in alive.items()
                 if (owners := owner_uids(obj)) and not set(owners) & uids]
        if not found:
            return gone
        for key in found:
            del alive[key]
        gone.extend(found)


def merge_patch(base: Any, patch: Any) -> Any:
    """Merge ``patch`` into ``base``: maps merge deeply, ``None`` removes a key, rest replaces.

    Enough of a strategic-merge patch for what tjf patches (annotations of a pod template).
    """
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return json_copy(patch)
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(base.get(key), value)
    return merged


# --- quota admission ---------------------------------------------------------------------------


def hard_limits(quota: Manifest) -> Mapping[str, Any]:
    """What a ResourceQuota enforces: ``status.hard``, else ``spec.hard`` (not yet synced)."""
    hard = (quota.get("status") or {}).get("hard") or (quota.get("spec") or {}).get("hard")
    return hard if isinstance(hard, Mapping) else {}


def count_request(kind: str) -> dict[str, Decimal]:
    """What one more object of ``kind`` adds to a ResourceQuota: one of each of its counts."""
    return dict.fromkeys(QUOTA_KEYS.get(kind, ("", ()))[1], _ONE)


@functools.lru_cache(maxsize=1024)
def _amount(text: str) -> Decimal | None:
    # Exact, and parsed once per text: admission sums the requests of every live pod.
    try:
        return Quantity.parse(text).value
    except InvalidQuantityError:
        return None


def amount(value: object) -> Decimal | None:
    """The exact value of a quantity as the API writes it (text or number); None if not one."""
    return _amount(str(value))


def quantity_text(key: str, value: Decimal) -> str:
    """An amount of quota item ``key`` as the apiserver prints it (``8Gi``, ``1500m``, ``3``)."""
    binary = key.endswith(("memory", "storage"))
    return str(Quantity(value, QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI))


def pod_request(pod_spec: Mapping[str, Any]) -> dict[str, Decimal]:
    """What one more pod with ``pod_spec`` adds to a ResourceQuota: its count and resources.

    ``cpu`` and ``memory`` are the old names of ``requests.cpu`` and ``requests.memory``.
    """
    found = count_request("Pod")
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {} if isinstance(container, dict) else {}
        for group, resource in _POD_RESOURCES:
            value = amount((resources.get(group) or {}).get(resource, 0))
            if value is None:
                continue
            keys = [f"{group}.{resource}"] + ([resource] if group == "requests" else [])
            for key in keys:
                found[key] = found.get(key, _ZERO) + value
    return found


def sum_requests(requests: Iterable[Mapping[str, Decimal]]) -> dict[str, Decimal]:
    """The sum of several requests, key by key."""
    total: dict[str, Decimal] = {}
    for request in requests:
        for key, value in request.items():
            total[key] = total.get(key, _ZERO) + value
    return total


def admission_refusal(
    quota: Manifest | None, *, resource: str, name: str, namespace: str,
    requested: Mapping[str, Decimal], used: Callable[[str], Decimal],
) -> str | None:
    """The apiserver's text refusing ``requested`` for object ``name``, or None if it fits.

    ``resource`` is how the apiserver names the kind (``jobs.batch``, ``pods``); ``used(key)``
    what the namespace already uses of one quota key. Only the keys the quota sets count.
    """
    if quota is None:
        return None
    hard = hard_limits(quota)
    over: list[tuple[str, str, str, Any]] = []
    for key, value in requested.items():
        limit = amount(hard[key]) if key in hard else None
        if limit is None:
            continue
        already = used(key)
        if already + value > limit:
            over.append((key, quantity_text(key, value), quantity_text(key, already), hard[key]))
    if not over:
        return None
    quota_name = (quota.get("metadata") or {}).get("name", namespace)

    def pairs(index: int) -> str:
        return ",".join(f"{item[0]}={item[index]}" for item in over)

    return (f'{resource} "{name}" is forbidden: exceeded quota: {quota_name}, '
            f"requested: {pairs(1)}, used: {pairs(2)}, limited: {pairs(3)}")


def quota_error(refusal: str) -> QuotaExceededError:
    """The error a create refused by quota raises, worded as :mod:`tjf_core.kube` words it."""
    return QuotaExceededError(f"{quota_exceeded_message(refusal)}: delete jobs that are "
                              "no longer needed or request a quota increase")
