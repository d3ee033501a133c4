"""The local Job and Deployment controllers, and the garbage collector.

They do what kube-controller-manager does for the objects tjf renders, level-triggered: each
round looks at every Job and Deployment and at their pods, and makes what is missing.

* Job: one pod at a time; a failed attempt is retried after a doubling back-off while
  ``status.failed <= backoffLimit``; ``activeDeadlineSeconds`` (from the Job's start) stops
  the running pod and fails the Job (``DeadlineExceeded``); a finished Job is deleted
  ``ttlSecondsAfterFinished`` after it finished.
* Deployment: ``replicas`` pods of the current pod template (its hash is the pod label
  ``pod-template-hash``, as a ReplicaSet's); pods of an older template are stopped, and with
  the ``Recreate`` strategy new pods wait until the old ones are gone. No ReplicaSet object is
  stored: its name (``<deployment>-<hash>``) only appears in its events.
* A pod beyond the ResourceQuota (``pods``, ``limits.*``, ``requests.*``) is not made: a
  ``FailedCreate`` event says why, with the apiserver's text, and the next round tries again.
* Garbage collection: objects whose owners are gone are deleted; a pod whose process still
  runs is stopped first and goes when its process has ended.

All methods expect the store's lock to be held. Times are wall-clock seconds.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from tjf_core.local.events import expire_events, record_event
from tjf_core.local.kubelet import Kubelet
from tjf_core.local.quotas import live_pods, resource_quota
from tjf_core.local.settings import LocalSettings
from tjf_core.local.store import LocalStore, Space
from tjf_core.objectstore import (
    admission_refusal,
    hard_limits,
    json_copy,
    labels_of,
    name_suffix,
    orphaned,
    owner_uids,
    pod_request,
    stamp,
    sum_requests,
)
from tjf_core.pods import time_at
from tjf_core.runtime import Manifest

__all__ = ["Controllers", "finished", "reference"]

_TERMINAL = frozenset({"Succeeded", "Failed"})
_ZERO = Decimal(0)


def finished(job: Manifest) -> str | None:
    """``Complete`` or ``Failed`` when the Job is finished, else None."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def reference(owner: Manifest) -> Manifest:
    """An ownerReference to ``owner``, as controllers write them."""
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _phase(pod: Manifest) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def template_hash(template: Manifest) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class Controllers:
    """The Job and Deployment controllers and the garbage collector of every space."""

    def __init__(self, *, store: LocalStore, kubelet: Kubelet, settings: LocalSettings) -> None:
        self.store = store
        self.kubelet = kubelet
        self.settings = settings
        self._hashes: dict[str, tuple[str, str]] = {}  # uid -> (resourceVersion, hash)

    def quota(self, space: Space) -> Manifest:
        """The space's ResourceQuota, as admission reads it."""
        return resource_quota(space, self.settings)

    def reconcile(self, now: datetime) -> float | None:
        """One round over every space; returns when the next timer is due (or None)."""
        due: list[float] = []
        for space in list(self.store.spaces.values()):
            owned = self._pods_by_owner(space)
            for job in list(space.of_kind("Job")):
                when = self._job(space, job, owned.get(job["metadata"]["uid"], []), now)
                if when is not None:
                    due.append(when)
            for deployment in list(space.of_kind("Deployment")):
                self._deployment(space, deployment,
                                 owned.get(deployment["metadata"]["uid"], []), now)
            expire_events(self.store, space, now=now, ttl=self.settings.event_ttl)
        return min(due, default=None)

    @staticmethod
    def _pods_by_owner(space: Space) -> dict[str, list[Manifest]]:
        owned: dict[str, list[Manifest]] = {}
        for pod in space.of_kind("Pod"):
            for uid in owner_uids(pod):
                owned.setdefault(uid, []).append(pod)
        return owned

    # --- Jobs ----------------------------------------------------------------------------------

    def start_job(self, space: Space, job: Manifest, now: datetime) -> None:
        """Give a Job that was just made its first pod now, not at the next round."""
        self._job(space, job, [], now)

    def _job(self, space: Space, job: Manifest, pods: list[Manifest],
             now: datetime) -> float | None:
        spec, status = job.get("spec") or {}, job.setdefault("status", {})
        before = json_copy(status)
        done = finished(job)
        if done is not None:
            return self._expire(space, job, now)
        active = [pod for pod in pods if _phase(pod) not in _TERMINAL]
        failed = [pod for pod in pods if _phase(pod) == "Failed"]
        succeeded = [pod for pod in pods if _phase(pod) == "Succeeded"]
        status.setdefault("startTime", stamp(now))
        for key, found in (("active", active), ("failed", failed), ("succeeded", succeeded)):
            if found:
                status[key] = len(found)
            else:
                status.pop(key, None)
        due: float | None = None
        start = time_at(job, "status", "startTime")
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded:
            self._finish(job, "Complete", now)
        elif isinstance(deadline, int) and start is not None and (
                now.timestamp() >= start.timestamp() + deadline):
            for pod in active:
                self._stop(space, pod, "DeadlineExceeded")
            self._finish(job, "Failed", now, reason="DeadlineExceeded",
                         message="Job was active longer than specified deadline")
        elif len(failed) > int(spec.get("backoffLimit", 6)):
            self._finish(job, "Failed", now, reason="BackoffLimitExceeded",
                         message="Job has reached the specified backoff limit")
        elif not active:
            retry_at = self._retry_at(space, failed)
            if now.timestamp() >= retry_at:
                self._make_job_pod(space, job, now)
            else:
                due = retry_at
            if isinstance(deadline, int) and start is not None:
                due = min(due or float("inf"), start.timestamp() + deadline)
        elif isinstance(deadline, int) and start is not None:
            due = start.timestamp() + deadline
        if status != before:
            self.store.touch(space, job)
        return due

    def _retry_at(self, space: Space, failed: list[Manifest]) -> float:
        if not failed:
            return 0.0
        last = 0.0
        for pod in failed:
            name = pod["metadata"]["name"]
            ended = self.kubelet.finished_at.get((space.namespace, name))
            if ended is None:
                statuses = (pod.get("status") or {}).get("containerStatuses") or [{}]
                when = time_at(statuses[0], "state", "terminated", "finishedAt")
                ended = when.timestamp() if when is not None else 0.0
            last = max(last, ended)
        backoff: float = self.settings.retry_backoff * 2 ** (len(failed) - 1)
        return last + min(backoff, self.settings.retry_backoff_max)

    @staticmethod
    def _finish(job: Manifest, kind: str, now: datetime, *, reason: str | None = None,
                message: str | None = None) -> None:
        condition: Manifest = {"type": kind, "status": "True", "lastTransitionTime": stamp(now)}
        if reason is not None:
            condition.update(reason=reason, message=message or "")
        status = job["status"]
        status["conditions"] = [condition]
        status.pop("active", None)
        if kind == "Complete":
            status["completionTime"] = stamp(now)

    def _expire(self, space: Space, job: Manifest, now: datetime) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if not isinstance(ttl, int):
            return None
        conditions = (job.get("status") or {}).get("conditions") or [{}]
        ended = time_at(conditions[0], "lastTransitionTime")
        if ended is None:
            return None
        if now.timestamp() < ended.timestamp() + ttl:
            return ended.timestamp() + ttl
        self.delete(space, [("Job", job["metadata"]["name"])])
        return None

    def _make_job_pod(self, space: Space, job: Manifest, now: datetime) -> None:
        name = job["metadata"]["name"]
        uid = job["metadata"]["uid"]
        extra = {"controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
                 "job-name": name, "batch.kubernetes.io/job-name": name}
        self.make_pod(space, job, (job.get("spec") or {}).get("template") or {},
                      prefix=name, extra=extra, involved=("Job", name), now=now)

    # --- Deployments -----------------------------------------------------------------------------

    def _deployment(self, space: Space, deployment: Manifest, pods: list[Manifest],
                    now: datetime) -> None:
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        digest = self._hash(deployment, template)
        live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
        current = [pod for pod in live if labels_of(pod).get("pod-template-hash") == digest]
        for pod in live:
            if pod not in current:
                self._stop(space, pod, "Rollout")
        wanted = spec.get("replicas", 1)
        wanted = wanted if isinstance(wanted, int) else 1
        current.sort(key=lambda pod: pod["metadata"]["creationTimestamp"])
        for pod in current[wanted:]:
            self._stop(space, pod, "ScaledDown")
        current = current[:wanted]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        others = [pod for pod in pods if pod not in current]
        if not (recreate and others):
            name = deployment["metadata"]["name"]
            for _ in range(wanted - len(current)):
                made = self.make_pod(space, deployment, template, prefix=f"{name}-{digest}",
                                     extra={"pod-template-hash": digest},
                                     involved=("ReplicaSet", f"{name}-{digest}"), now=now)
                if made is None:
                    break
                current.append(made)
        ready = sum(1 for pod in current if self._ready(pod))
        status = {"observedGeneration": deployment["metadata"].get("generation", 1),
                  "replicas": len(current), "updatedReplicas": len(current),
                  "readyReplicas": ready, "availableReplicas": ready,
                  "unavailableReplicas": max(wanted - ready, 0)}
        if deployment.get("status") != status:
            deployment["status"] = status
            self.store.touch(space, deployment)

    def _hash(self, deployment: Manifest, template: Manifest) -> str:
        meta = deployment["metadata"]
        cached = self._hashes.get(meta["uid"])
        if cached is not None and cached[0] == meta["resourceVersion"]:
            return cached[1]
        digest = template_hash(template)
        self._hashes[meta["uid"]] = (meta["resourceVersion"], digest)
        return digest

    @staticmethod
    def _ready(pod: Manifest) -> bool:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return _phase(pod) == "Running" and bool(statuses) and all(
            s.get("ready") for s in statuses)

    # --- pods ----------------------------------------------------------------------------------

    def make_pod(self, space: Space, owner: Manifest, template: Manifest, *, prefix: str,
                 extra: dict[str, str], involved: tuple[str, str],
                 now: datetime) -> Manifest | None:
        """Make and start one pod of ``owner``, unless quota refuses it (then an event)."""
        meta = template.get("metadata") or {}
        name = f"{prefix}-{name_suffix(secrets.randbelow(27 ** 5))}"
        while ("Pod", name) in space.objects:
            name = f"{prefix}-{name_suffix(secrets.randbelow(27 ** 5))}"
        pod_spec = json_copy(template.get("spec") or {})
        refusal = self._pod_refusal(space, name, pod_spec)
        if refusal is not None:
            record_event(self.store, space, kind=involved[0], name=involved[1],
                         reason="FailedCreate", message=f"Error creating: {refusal}", now=now)
            return None
        pod = self.store.add(space, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {**meta.get("labels", {}), **extra},
                         "annotations": dict(meta.get("annotations") or {}),
                         "ownerReferences": [reference(owner)]},
            "spec": pod_spec,
            "status": {"phase": "Pending", "qosClass": "Burstable",
                       "conditions": [{"type": "PodScheduled", "status": "True"}]},
        }, keep_status=True)
        self.kubelet.start_pod(space, pod)
        return pod

    def _pod_refusal(self, space: Space, name: str, pod_spec: Manifest) -> str | None:
        quota = self.quota(space)
        if not hard_limits(quota):
            return None
        used = sum_requests(pod_request(pod.get("spec") or {}) for pod in live_pods(space))
        return admission_refusal(quota, resource="pods", name=name,
                                 namespace=space.namespace, requested=pod_request(pod_spec),
                                 used=lambda key: used.get(key, _ZERO))

    def _stop(self, space: Space, pod: Manifest, reason: str) -> None:
        """Stop a pod's process; a pod that is deleted is marked so, and goes when it ends."""
        name = pod["metadata"]["name"]
        removing = reason in ("Deleted", "Rollout", "ScaledDown")
        if removing and not pod["metadata"].get("deletionTimestamp"):
            pod["metadata"]["deletionTimestamp"] = stamp(self.store.clock())
            self.store.touch(space, pod)
        container = self.kubelet.containers.get((space.namespace, name))
        if container is not None:
            self.kubelet.stop(container, reason)
        elif removing:
            self.kubelet.remove_pod(space, name)

    # --- deleting --------------------------------------------------------------------------------

    def delete(self, space: Space, keys: Iterable[tuple[str, str]]) -> bool:
        """Delete objects and, as the garbage collector does, whatever they owned.

        True if one of them was there.
        """
        removed = False
        for kind, name in keys:
            if kind == "Pod":
                pod = space.objects.get((kind, name))
                if pod is not None:
                    self._stop(space, pod, "Deleted")
                    removed = True
            elif self.store.remove(space, kind, name) is not None:
                removed = True
        self.collect(space)
        return removed

    def collect(self, space: Space) -> None:
        """Delete the objects whose owners are gone; stop the pods among them."""
        for kind, name in orphaned(space.objects):
            obj: Any = space.objects.get((kind, name))
            if obj is None:
                continue
            if kind == "Pod":
                if not obj["metadata"].get("deletionTimestamp"):
                    self._stop(space, obj, "Deleted")
            else:
                self.store.remove(space, kind, name)
