"""A scripted stand-in for :class:`tjf_emailer.kubeapi.KubeApi`: lists, watches and Leases.

Lists and watch streams are answered from queues the test fills; a watch whose events are
used up stays open (as a quiet one does) until it is aborted. Leases are kept in memory with
the apiserver's optimistic concurrency: a write with a stale ``resourceVersion`` is a 409.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, cast

from tjf_emailer.kubeapi import ApiRefusal, KubeApi

Json = dict[str, Any]


def pod(name: str, version: int, *, state: Json | None = None, emails: str = "onfailure",
        namespace: str = "tool-mytool", phase: str = "Running") -> Json:
    """A job's pod as the API shows it, in state ``state`` (running when None)."""
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version),
                     "labels": {"app.kubernetes.io/name": name.rsplit("-", 1)[0],
                                "app.kubernetes.io/component": "jobs",
                                "jobs.toolforge.org/emails": emails}},
        "spec": {"containers": [{"name": "job"}]},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "job", "restartCount": 0,
            "state": state or {"running": {"startedAt": "2024-05-01T10:00:00Z"}}}]},
    }


def failed(name: str, version: int, *, code: int = 3, at: str = "2024-05-01T10:05:00Z",
           emails: str = "onfailure") -> Json:
    state = {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed",
                            "startedAt": "2024-05-01T10:00:00Z", "finishedAt": at}}
    return pod(name, version, state=state, emails=emails, phase="Failed" if code else "Succeeded")


def listing(version: int, *items: Json, more: str | None = None) -> Json:
    metadata: Json = {"resourceVersion": str(version)}
    if more:
        metadata["continue"] = more
    return {"metadata": metadata, "items": list(items)}


def event(kind: str, obj: Json) -> Json:
    return {"type": kind, "object": obj}


def gone() -> Json:
    return event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired",
                           "message": "too old resource version"})


class FakeStream:
    """A scripted watch ends after its events (the server's timeout); an unscripted one is
    quiet: open until aborted (bounded, so that a broken test cannot hang)."""

    def __init__(self, events: list[Json] | None) -> None:
        self._events = events
        self.aborted = threading.Event()

    def events(self) -> Iterator[Json]:
        if self._events is None:
            self.aborted.wait(10)
        else:
            yield from self._events

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        pass


class FakeApi:
    """Answers from ``lists`` and ``watches`` (an exception in either is raised instead)."""

    def __init__(self) -> None:
        self.lists: deque[Json | Exception] = deque()
        self.watches: deque[list[Json] | Exception] = deque()
        self.asked: list[tuple[str, str, dict[str, str]]] = []
        self.streams: list[FakeStream] = []
        #: Set once a watch was opened with nothing scripted (the watch is caught up).
        self.quiet = threading.Event()
        self.leases: dict[str, Json] = {}
        self._version = 0
        self._lock = threading.Lock()
        #: Raise this for every Lease request (an unreachable API).
        self.lease_failure: Exception | None = None

    def as_api(self) -> KubeApi:
        return cast(KubeApi, self)

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Json | None = None, timeout: float | None = None) -> Json:
        with self._lock:
            self.asked.append((method, path, dict(query or {})))
            if "/leases" in path:
                return self._lease(method, path, body)
            if not self.lists:
                raise ApiRefusal(500, f"nothing scripted for {method} {path}")
            answer = self.lists.popleft()
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)

    def stream(self, path: str, *, query: Mapping[str, str], read_timeout: float) -> FakeStream:
        with self._lock:
            self.asked.append(("WATCH", path, dict(query)))
            script = self.watches.popleft() if self.watches else None
        if isinstance(script, Exception):
            raise script
        stream = FakeStream(copy.deepcopy(script))
        if script is None:
            self.quiet.set()
        self.streams.append(stream)
        return stream

    def _lease(self, method: str, path: str, body: Json | None) -> Json:
        if self.lease_failure is not None:
            raise self.lease_failure
        if method == "POST":
            assert body is not None
            name = body["metadata"]["name"]
            if name in self.leases:
                raise ApiRefusal(409, "already exists")
            return self._store(name, body)
        name = path.rsplit("/", 1)[1]
        if method == "GET":
            if name not in self.leases:
                raise ApiRefusal(404, "not found")
            return copy.deepcopy(self.leases[name])
        assert method == "PUT"
        assert body is not None
        stored = self.leases.get(name)
        if stored is None or body["metadata"].get("resourceVersion") != \
                stored["metadata"]["resourceVersion"]:
            raise ApiRefusal(409, "the object has been modified")
        return self._store(name, body)

    def _store(self, name: str, body: Json) -> Json:
        self._version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self._version)
        self.leases[name] = stored
        return copy.deepcopy(stored)
