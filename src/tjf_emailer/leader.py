"""Leader election with a ``coordination.k8s.io/v1`` Lease, so two replicas never both send.

The emailer runs as two replicas for availability; only the leader watches pods and sends.
The algorithm is client-go's (``tools/leaderelection``), whose timing operators know:

* a candidate reads the Lease; it may take it when nobody holds it, or when the holder's
  record has not changed for ``lease_duration`` *as measured by the candidate's own clock*
  since it first saw that record (clocks of different hosts are never compared);
* every write (create, or replace carrying the ``resourceVersion`` that was read) is
  optimistic: of two candidates writing the same version, the apiserver takes one and
  answers the other 409 Conflict, so two never both believe they lead;
* the leader renews every ``retry_period``; when it could not renew for ``renew_deadline``
  (counted from the start of its last successful try) it stops leading at once, before any
  standby may take over (``renew_deadline`` < ``lease_duration``);
* a leader that stops cleanly releases the Lease (holder empty), so a standby takes over at
  its next try instead of waiting out the lease.

The Lease also carries the hand-over between leaders (:class:`Handoff`, an annotation): what
the leader has spooled, as a time watermark written at each renewal and, at a clean release,
the pod ``resourceVersion`` up to which it saw everything. The next leader treats that as
already mailed, so a change of leader neither loses nor repeats emails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from tjf_core.errors import TjfError
from tjf_emailer.kubeapi import ApiRefusal, Json

__all__ = ["HANDOFF_ANNOTATION", "Handoff", "LeaderElector", "LeaseTiming", "Requester"]

log = logging.getLogger("tjf_emailer.leader")

HANDOFF_ANNOTATION = "jobs.toolforge.org/emailer-handoff"


class Requester(Protocol):
    """What the elector needs of :class:`tjf_emailer.kubeapi.KubeApi` (blocking calls)."""

    def request(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None,
        body: Json | None = None, timeout: float | None = None,
    ) -> Json: ...


@attrs.frozen(kw_only=True)
class LeaseTiming:
    """client-go's defaults; see the module docstring for what each means."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@attrs.frozen(kw_only=True)
class Handoff:
    """What a leader had spooled when it stopped (or at its last renewal)."""

    #: Every pod change up to this version was seen and spooled (a clean stop only).
    resource_version: str | None = None
    #: Every event timed before this was spooled.
    watermark: datetime | None = None

    def encode(self) -> str:
        data: dict[str, str] = {}
        if self.resource_version is not None:
            data["resourceVersion"] = self.resource_version
        if self.watermark is not None:
            data["watermark"] = self.watermark.astimezone(UTC).isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def decode(cls, text: object) -> Handoff | None:
        """The hand-over an annotation holds; None when it holds none (or garbage)."""
        try:
            data = json.loads(text) if isinstance(text, str) else None
            version = data.get("resourceVersion") if isinstance(data, dict) else None
            when = data.get("watermark") if isinstance(data, dict) else None
            watermark = datetime.fromisoformat(when) if isinstance(when, str) else None
        except ValueError:
            return None
        if watermark is not None and watermark.tzinfo is None:
            watermark = watermark.replace(tzinfo=UTC)
        version = version if isinstance(version, str) and version.isdigit() else None
        if version is None and watermark is None:
            return None
        return cls(resource_version=version, watermark=watermark)


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(spec: Mapping[str, Any]) -> tuple[object, ...]:
    """The parts of a Lease spec whose change shows that its holder is alive."""
    return tuple(spec.get(key) for key in (
        "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


#: Runs while leading, given the previous leader's hand-over; returns its own at a clean end.
Lead = Callable[[Handoff | None], Coroutine[Any, Any, Handoff | None]]


class LeaderElector:
    """Campaigns for one Lease; :meth:`run` runs a coroutine only while this replica leads."""

    def __init__(
        self, api: Requester, *, namespace: str, name: str, identity: str,
        timing: LeaseTiming = LeaseTiming(), clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        handoff: Callable[[], Handoff | None] = lambda: None,
    ) -> None:
        self._api = api
        self._collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._path = f"{self._collection}/{name}"
        self.name = name
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self._now = now
        self._sleep = sleep
        self._handoff = handoff
        self.is_leader = False
        #: When the API last answered (monotonic); None before it ever did.
        self.last_contact: float | None = None
        #: What the previous holder handed over, read when this replica took the Lease.
        self.previous: Handoff | None = None
        self._observed: tuple[object, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self._lock = threading.Lock()

    # --- one try (blocking; runs in a thread) ----------------------------------------------

    def try_acquire_or_renew(self, handoff: Handoff | None = None) -> bool:
        """One attempt to take or keep the Lease; True when this replica holds it now.

        ``handoff`` is written along. One attempt at a time: one that timed out may still
        be running in its thread, and must not mix what it saw with a newer one's.
        """
        with self._lock:
            return self._try(handoff)

    def _try(self, handoff: Handoff | None) -> bool:
        started = self._clock()
        wall = self._now()
        try:
            lease: Json | None = self._api.request("GET", self._path)
        except ApiRefusal as refusal:
            if refusal.status != 404:
                raise
            lease = None
        # Seen now, not when asked: for another's record, later is the safe side.
        seen = self.last_contact = self._clock()
        if lease is None:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name}, "spec": self._spec(None, wall, 0)}
            self._annotate(body, handoff)
            return self._write("POST", self._collection, body, started=started, before={})
        spec = lease.get("spec") if isinstance(lease.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        record = _record(spec)
        if record != self._observed:
            self._observed, self._observed_at = record, seen
        holder = spec.get("holderIdentity") or None
        duration = spec.get("leaseDurationSeconds")
        duration = duration if isinstance(duration, int) else self.timing.lease_duration
        if holder not in (None, self.identity) and self._observed_at + duration > seen:
            return False  # someone else holds a lease that is still valid
        count = spec.get("leaseTransitions")
        count = count if isinstance(count, int) else 0
        mine = holder == self.identity
        body = dict(lease, spec=self._spec(spec if mine else None, wall,
                                           count if mine else count + 1))
        self._annotate(body, handoff)
        return self._write("PUT", self._path, body, started=started, before=lease)

    def release(self, handoff: Handoff | None) -> bool:
        """Give the Lease up (holder empty), leaving ``handoff``; False if not held any more."""
        self.is_leader = False
        self._renewed_at = None
        try:
            lease = self._api.request("GET", self._path)
            spec = lease.get("spec") if isinstance(lease.get("spec"), dict) else {}
            assert isinstance(spec, dict)
            if spec.get("holderIdentity") != self.identity:
                return False
            body = dict(lease, spec={**spec, "holderIdentity": "", "leaseDurationSeconds": 1,
                                     "renewTime": _micro_time(self._now())})
            self._annotate(body, handoff)
            self._api.request("PUT", self._path, body=body)
        except ApiRefusal as refusal:
            if refusal.status in (404, 409):
                return False
            raise
        self._observed = None
        return True

    def _spec(self, mine: Mapping[str, Any] | None, wall: datetime, transitions: int) -> Json:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.timing.lease_duration)),
            "acquireTime": (mine or {}).get("acquireTime") or _micro_time(wall),
            "renewTime": _micro_time(wall),
            "leaseTransitions": transitions,
        }

    @staticmethod
    def _annotate(body: Json, handoff: Handoff | None) -> None:
        if handoff is None:
            return
        metadata = dict(body.get("metadata") or {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}),
                                   HANDOFF_ANNOTATION: handoff.encode()}
        body["metadata"] = metadata

    def _write(self, method: str, path: str, body: Json, *, started: float,
               before: Json) -> bool:
        try:
            written = self._api.request(method, path, body=body)
        except ApiRefusal as refusal:
            if refusal.status == 409:
                return False  # another candidate wrote first: it wins this round
            raise
        spec = written.get("spec")
        self._observed = _record(spec) if isinstance(spec, dict) else None
        self._observed_at = self._clock()
        # From the start of the try: for this replica's own belief, earlier is the safe side.
        self._renewed_at = started
        if not self.is_leader:
            # A new term: what the Lease said before is the previous term's hand-over.
            annotations = (before.get("metadata") or {}).get("annotations") or {}
            self.previous = Handoff.decode(annotations.get(HANDOFF_ANNOTATION))
        return True

    # --- the campaign ----------------------------------------------------------------------

    async def attempt(self, *, timeout: float | None = None) -> bool:
        """:meth:`try_acquire_or_renew` in a thread; False on any failure or timeout."""
        if timeout is not None and timeout <= 0:
            return False
        # Asked here, in the loop's thread: the daemon's state is not for other threads.
        handoff = self._handoff() if self.is_leader else None
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.try_acquire_or_renew, handoff), timeout=timeout)
        except TimeoutError:
            log.warning("the Lease %s did not answer in time", self.name)
        except TjfError as error:
            log.warning("cannot use the Lease %s: %s", self.name, error)
        return False

    async def run(self, lead: Lead, *, stop: asyncio.Event) -> None:
        """Campaign until ``stop``; lead while holding the Lease, and campaign again if lost.

        ``lead`` is cancelled the moment leadership is lost; when ``stop`` is set it is left
        to finish by itself (it should watch ``stop`` too) while the Lease is still renewed,
        then the Lease is released with the hand-over ``lead`` returned.
        """
        while not stop.is_set():
            if await self.attempt(timeout=self.timing.renew_deadline):
                handoff, clean = await self._lead(lead)
                if clean:
                    try:
                        await asyncio.to_thread(self.release, handoff)
                        log.info("released the Lease %s", self.name)
                    except TjfError as error:
                        log.warning("could not release the Lease %s: %s", self.name, error)
                continue
            wait = self.timing.retry_period * (1.0 + 0.2 * random.random())
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({stopping}, timeout=wait)
            finally:
                stopping.cancel()

    async def _lead(self, lead: Lead) -> tuple[Handoff | None, bool]:
        log.info("%s leads (Lease %s)", self.identity, self.name)
        self.is_leader = True
        task = asyncio.create_task(lead(self.previous), name="tjf-emailer-lead")
        try:
            while not task.done():
                assert self._renewed_at is not None
                deadline = self._renewed_at + self.timing.renew_deadline
                # Never sleep past the deadline: leading must end when it passes.
                pause = min(self.timing.retry_period, max(0.0, deadline - self._clock()))
                await asyncio.wait({task}, timeout=pause)
                if task.done():
                    break
                if await self.attempt(timeout=deadline - self._clock()):
                    continue
                if self._clock() >= deadline:
                    log.error("%s could not renew the Lease %s for %.1f s: it stops leading",
                              self.identity, self.name, self.timing.renew_deadline)
                    self.is_leader = False
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    return None, False
        except asyncio.CancelledError:
            self.is_leader = False
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        try:
            return task.result(), True
        except Exception:
            log.exception("leading failed")
            return None, True
        finally:
            self.is_leader = False
