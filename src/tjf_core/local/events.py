"""Events of the local runtime, shaped as the cluster's ``v1`` Events.

Status reads events for what pods cannot say (a pod refused by quota never exists: its
FailedCreate event is all there is), so the local controllers record the same events, with
the same reasons and involved objects, that Kubernetes' controllers and kubelet would. Like
the apiserver, a repeat of the same event raises its ``count`` instead of adding another, and
events are forgotten after a while.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tjf_core.local.store import LocalStore, Space
from tjf_core.objectstore import stamp
from tjf_core.pods import time_at
from tjf_core.runtime import Manifest

__all__ = ["expire_events", "record_event"]

#: A repeat within this long of the last one only counts when its message changed.
_REPEAT = timedelta(seconds=10)


def record_event(
    store: LocalStore, space: Space, *, kind: str, name: str, reason: str, message: str,
    now: datetime, warning: bool = True,
) -> None:
    """Record that ``reason`` happened to object ``kind``/``name``."""
    for event in space.of_kind("Event"):
        involved = event.get("involvedObject") or {}
        if (involved.get("kind"), involved.get("name"), event.get("reason")) != (
                kind, name, reason):
            continue
        last = time_at(event, "lastTimestamp")
        if event.get("message") == message and last is not None and now - last < _REPEAT:
            return
        event.update(message=message, count=int(event.get("count") or 1) + 1,
                     lastTimestamp=stamp(now))
        store.touch(space, event)
        return
    store.add(space, {
        "kind": "Event",
        "metadata": {"name": f"{name}.{store.serial():x}"},
        "involvedObject": {"kind": kind, "name": name, "namespace": space.namespace},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "count": 1,
        "firstTimestamp": stamp(now),
        "lastTimestamp": stamp(now),
        "source": {"component": "tjf-local-runtime"},
    }, keep_status=True)


def expire_events(store: LocalStore, space: Space, *, now: datetime, ttl: float) -> None:
    """Forget the events last seen more than ``ttl`` seconds ago."""
    oldest = now - timedelta(seconds=ttl)
    old: list[Manifest] = []
    for event in space.of_kind("Event"):
        last = time_at(event, "lastTimestamp")
        if last is not None and last < oldest:
            old.append(event)
    for event in old:
        store.remove(space, "Event", event["metadata"]["name"])
