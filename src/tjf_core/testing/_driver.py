"""The in-memory stand-in for a cluster's controllers and kubelet (see :mod:`tjf_core.testing`).

Only what tjf reads is played: the Job controller makes a Job's pod and marks the Job Complete
or Failed (after its backoff limit), the Deployment and ReplicaSet controllers keep one
ReplicaSet per pod template with the wanted number of pods (a changed template rolls them at
once), a pod beyond the ``pods`` quota becomes a FailedCreate event, and the kubelet reports a
container running, ended or crash-looping the way a real one writes ``pods/status``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from tjf_core.errors import NotFoundError
from tjf_core.identity import ToolIdentity
from tjf_core.runtime import Manifest
from tjf_core.testing._store import (
    API_VERSION,
    NAME,
    Namespace,
    Store,
    json_copy,
    labels_of,
    owner_uids,
    stamp,
)


class InMemoryDriver:
    """Plays the controllers and the kubelet of one tool's namespace of an InMemoryRuntime.

    :meth:`pods_of` does what the Job and ReplicaSet controllers would have done by now; the
    ``set_*`` methods report a pod's containers as a kubelet does, and the Job controller's
    reaction follows at once. Get one from :meth:`InMemoryRuntime.driver`.
    """

    def __init__(self, store: Store, tool: ToolIdentity) -> None:
        self._store = store
        self._tool = tool

    @property
    def _space(self) -> Namespace:
        return self._store.space(self._tool)

    def pods_of(self, job: str) -> list[str]:
        """The names of job ``job``'s pods, oldest first, after making the missing ones."""
        with self._store.lock:
            for (kind, _), obj in list(self._space.objects.items()):
                if labels_of(obj).get(NAME) != job:
                    continue
                template = (obj.get("spec") or {}).get("template")
                if kind == "Job" and template and not _finished(obj) and not self._live_pods(obj):
                    name = obj["metadata"]["name"]
                    extra = {"controller-uid": obj["metadata"]["uid"], "job-name": name,
                             "batch.kubernetes.io/job-name": name}
                    self._make_pod(obj, template, extra)
                    obj.setdefault("status", {}).setdefault("startTime", self._store.now())
                elif kind == "Deployment" and template:
                    self._roll_out(obj)
            return [obj["metadata"]["name"] for (kind, _), obj in self._space.objects.items()
                    if kind == "Pod" and labels_of(obj).get(NAME) == job]

    def set_running(self, pod: str) -> None:
        """The pod's containers started and are ready."""
        state = {"running": {"startedAt": self._store.now()}}
        self._report(pod, "Running", state=state, ready=True)

    def set_succeeded(self, pod: str) -> None:
        """The pod's containers exited 0 (a Job's pod: its Job is Complete)."""
        self._report(pod, "Succeeded", state=_terminated(0, self._store.clock()))

    def set_failed(self, pod: str, exit_code: int = 1) -> None:
        """The pod's containers exited with ``exit_code`` (a Job counts a failed attempt)."""
        self._report(pod, "Failed", state=_terminated(exit_code, self._store.clock()))

    def set_crash_loop(self, pod: str, restarts: int = 3) -> None:
        """The pod's containers failed ``restarts`` times and wait in CrashLoopBackOff."""
        waiting = {"reason": "CrashLoopBackOff",
                   "message": "back-off 5m0s restarting failed container"}
        self._report(pod, "Running", state={"waiting": waiting}, restarts=restarts,
                     last_state=_terminated(1, self._store.clock()))

    def write_log(self, pod: str, *lines: str) -> None:
        """Append ``lines`` to what :meth:`InMemoryRuntime.pod_logs` gives for ``pod``."""
        with self._store.lock:
            self._space.logs.setdefault(pod, []).extend(lines)

    # --- the controllers ---------------------------------------------------------------------

    def _live_pods(self, owner: Manifest) -> list[Manifest]:
        uid = owner["metadata"]["uid"]
        return [obj for (kind, _), obj in self._space.objects.items()
                if kind == "Pod" and uid in owner_uids(obj)
                and (obj.get("status") or {}).get("phase") in ("Pending", "Running")]

    @staticmethod
    def _reference(owner: Manifest) -> dict[str, Any]:
        return {"apiVersion": owner.get("apiVersion", API_VERSION[owner["kind"]]),
                "kind": owner["kind"], "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _make_pod(self, owner: Manifest, template: Manifest, extra: dict[str, str]) -> None:
        store, space = self._store, self._space
        name = f"{owner['metadata']['name']}-{store.suffix()}"
        refusal = store.refusal(space, "Pod", name)
        if refusal is not None:  # the controller reports it and tries again later
            event = {"kind": "Event", "metadata": {"name": f"{name}.{store.serial():x}"},
                     "involvedObject": {"kind": owner["kind"], "name": owner["metadata"]["name"]},
                     "reason": "FailedCreate", "type": "Warning",
                     "message": f"Error creating: {refusal}", "lastTimestamp": store.now()}
            store.add(space, event, keep_status=True)
            return
        meta = template.get("metadata") or {}
        pod = {"kind": "Pod",
               "metadata": {"name": name, "labels": {**meta.get("labels", {}), **extra},
                            "annotations": dict(meta.get("annotations") or {}),
                            "ownerReferences": [self._reference(owner)]},
               "spec": json_copy(template["spec"]),
               "status": {"phase": "Pending", "qosClass": "Burstable"}}
        store.add(space, pod, keep_status=True)

    def _roll_out(self, deployment: Manifest) -> None:
        """One ReplicaSet per pod template: the current one gets the replicas, the rest none."""
        store, space = self._store, self._space
        template = deployment["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{deployment['metadata']['name']}-{digest}"
        uid = deployment["metadata"]["uid"]
        for kind, other in list(space.objects):
            stale = kind == "ReplicaSet" and other != name
            if stale and uid in owner_uids(space.objects[kind, other]):
                del space.objects[kind, other]  # scaled to none: its pods go
        store.collect_garbage(space)
        replica_set = space.objects.get(("ReplicaSet", name))
        if replica_set is None:
            labels = {**template["metadata"]["labels"], "pod-template-hash": digest}
            replica_set = store.add(space, {
                "kind": "ReplicaSet",
                "metadata": {"name": name, "labels": labels,
                             "ownerReferences": [self._reference(deployment)]},
                "spec": {"replicas": deployment["spec"].get("replicas", 1),
                         "template": json_copy(template)}})
        wanted = deployment["spec"].get("replicas", 1)
        for _ in range(wanted - len(self._live_pods(replica_set))):
            self._make_pod(replica_set, template, {"pod-template-hash": digest})
        self._sync_deployment(deployment)

    def _sync_deployment(self, deployment: Manifest) -> None:
        name = deployment["metadata"]["name"]
        pods = [obj for (kind, _), obj in self._space.objects.items()
                if kind == "Pod" and labels_of(obj).get(NAME) == name]
        statuses = [pod.get("status") or {} for pod in pods]
        ready = sum(1 for status in statuses if status.get("phase") == "Running" and all(
            c.get("ready") for c in status.get("containerStatuses", [])))
        deployment["status"] = {"replicas": len(pods), "readyReplicas": ready,
                                "availableReplicas": ready,
                                "observedGeneration": deployment["metadata"].get("generation")}
        self._store.touch(deployment)

    def _job_controller(self, job: Manifest, phase: str) -> None:
        status, now = job.setdefault("status", {}), self._store.now()
        status.setdefault("startTime", now)
        if phase == "Succeeded":
            status["succeeded"] = status.get("succeeded", 0) + 1
            status["completionTime"] = now
            status["conditions"] = [{"type": "Complete", "status": "True",
                                     "lastTransitionTime": now}]
        elif phase == "Failed":
            status["failed"] = status.get("failed", 0) + 1
            if status["failed"] > job["spec"].get("backoffLimit", 6):
                status["conditions"] = [{
                    "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": now}]
        self._store.touch(job)

    # --- the kubelet -------------------------------------------------------------------------

    def _report(self, pod: str, phase: str, *, state: Manifest, ready: bool = False,
                restarts: int = 0, last_state: Manifest | None = None) -> None:
        with self._store.lock:
            space = self._space
            obj = space.objects.get(("Pod", pod))
            if obj is None:
                raise NotFoundError(f"pod {pod!r} does not exist")
            obj["status"] = {
                "phase": phase,
                "startTime": (obj.get("status") or {}).get("startTime", self._store.now()),
                "conditions": [{"type": "PodScheduled", "status": "True"},
                               {"type": "Ready", "status": str(ready)}],
                "containerStatuses": [
                    {"name": c["name"], "image": c.get("image", ""), "ready": ready,
                     "restartCount": restarts, "state": state, "lastState": last_state or {}}
                    for c in obj["spec"].get("containers", [])]}
            self._store.touch(obj)
            for ref in obj["metadata"].get("ownerReferences", []):
                owner = space.objects.get((ref["kind"], ref["name"]))
                if owner is not None and ref["kind"] == "Job":
                    self._job_controller(owner, phase)
                elif owner is not None and ref["kind"] == "ReplicaSet":
                    for parent in owner["metadata"].get("ownerReferences", []):
                        deployment = space.objects.get(("Deployment", parent["name"]))
                        if deployment is not None:
                            self._sync_deployment(deployment)


def _finished(job: Manifest) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions", []))


def _terminated(exit_code: int, when: datetime) -> Manifest:
    return {"terminated": {"exitCode": exit_code,
                           "reason": "Completed" if exit_code == 0 else "Error",
                           "startedAt": stamp(when), "finishedAt": stamp(when)}}
