"""Digests: a tool's job events gathered into few emails, each piece of news told once.

A watch sees the same pod many times (every status update, every re-list after a watch
restart), and a crash-looping container terminates every few minutes for days. Mailing every
sighting would bury the news, so a :class:`DigestBook` keeps, per tool, the events not yet
mailed, and hands out a :class:`Digest` when one is due. The timing follows Alertmanager's
grouping, which operators know:

* the first email of a tool waits ``group_wait`` after the first event, so related events
  (a job's pods failing one after the other) arrive together;
* after that, a tool gets at most one email per ``group_interval``.

An event is news once: its :attr:`~tjf_core.notifications.JobEvent.fingerprint` (tool, job,
pod, state, exit code) is remembered, and a second sighting is dropped. A container that
terminates the same way again after a restart is a crash loop: instead of a line per crash, the
next digest has one line saying how many times it restarted (since its pod started). A digest
holds at most ``max_entries`` lines and counts the rest (the email says "and N more"), which
also bounds the memory one noisy tool can take. What a pod did is forgotten ``forget_after``
its last sighting.

Events timed before ``history_before`` (what a restarted emailer finds already mailed by its
previous run) are remembered without being mailed; :meth:`DigestBook.watermark` gives the
time a restarted emailer may pass there. The book is pure: time is always a parameter, and
its settings may be swapped while it runs (due times are re-computed).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from datetime import datetime, timedelta

import attrs

from tjf_core.notifications import ContainerState, JobEvent

__all__ = ["Digest", "DigestBook", "DigestEntry", "DigestSettings"]


def _not_negative(_: object, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
    if value < timedelta(0):
        raise ValueError(f"{attribute.name}: {value} is negative, use 0 or more")


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name}: {value} is too small, use 1 or more")


@attrs.frozen(kw_only=True)
class DigestSettings:
    """When a tool's digest is sent, and how much one holds."""

    group_wait: timedelta = attrs.field(default=timedelta(seconds=60), validator=_not_negative)
    group_interval: timedelta = attrs.field(
        default=timedelta(seconds=400), validator=_not_negative
    )
    max_entries: int = attrs.field(default=30, validator=_at_least_one)
    forget_after: timedelta = attrs.field(default=timedelta(days=1), validator=_not_negative)


@attrs.frozen(kw_only=True)
class DigestEntry:
    """One line of a digest: an event, and whether it is a crash loop going on."""

    event: JobEvent
    #: When the digest first got it.
    seen_at: datetime
    #: The termination repeats one already seen: the container keeps crashing the same way.
    repeated: bool = False


@attrs.frozen(kw_only=True)
class Digest:
    """What one email tells one tool."""

    tool: str
    entries: tuple[DigestEntry, ...]
    #: Lines left out to keep the email short.
    omitted: int = 0

    @property
    def jobs(self) -> tuple[str, ...]:
        """The jobs the entries are about, in the order of their first entry."""
        return tuple(dict.fromkeys(entry.event.job for entry in self.entries))


# The hot path (add) reads the member from here (EnumType.__getattr__ is slow) and builds its
# entries by calling DigestEntry's __init__ (a class called with keywords packs them in a
# dict first, in CPython 3.11): the same objects, a quarter cheaper.
_TERMINATED = ContainerState.TERMINATED
_new = object.__new__
_init_entry = DigestEntry.__init__

#: (job, pod, state, exit code): the line an event becomes in its tool's digest.
_EntryKey = tuple[str, str, ContainerState, int | None]


@attrs.define
class _PodMemory:
    last_seen: datetime
    seen: set[tuple[ContainerState, int | None]] = attrs.Factory(set)
    #: The highest restart count seen with a crash (mailed, or found already mailed).
    reported_restarts: int = 0


@attrs.define
class _Group:
    entries: dict[_EntryKey, DigestEntry] = attrs.Factory(dict)
    overflow: set[_EntryKey] = attrs.Factory(set)
    first_at: datetime | None = None
    oldest: datetime | None = None
    last_sent: datetime | None = None

    @property
    def pending(self) -> bool:
        return bool(self.entries or self.overflow)

    def due_at(self, settings: DigestSettings) -> datetime:
        assert self.first_at is not None
        due = self.first_at + settings.group_wait
        if self.last_sent is not None:
            due = max(due, self.last_sent + settings.group_interval)
        return due


class DigestBook:
    """The events each tool has not been mailed about yet, and when its next digest is due."""

    def __init__(
        self, settings: DigestSettings | None = None, *, history_before: datetime | None = None
    ) -> None:
        self._settings = settings or DigestSettings()
        self.history_before = history_before
        self._groups: dict[str, _Group] = {}
        # Ordered by last sighting, so forgetting pops from the front instead of scanning.
        self._pods: OrderedDict[tuple[str, str, str], _PodMemory] = OrderedDict()
        self._heap: list[tuple[datetime, str]] = []
        self._pruned_at: datetime | None = None

    @property
    def settings(self) -> DigestSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: DigestSettings) -> None:
        self._settings = settings
        self._heap = [(g.due_at(settings), t) for t, g in self._groups.items() if g.pending]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        """How many lines wait to be mailed, over all tools."""
        return sum(len(g.entries) + len(g.overflow) for g in self._groups.values())

    def add(self, event: JobEvent, *, now: datetime) -> bool:
        """Take in one sighting of an event; True when it is news for the next digest."""
        # The emailer's hot path: event.source's fields are read directly, not through the
        # event's properties, and the event's `at` is spelt out.
        source = event.source
        key = (source.tool, source.job, source.name)
        memory = self._pods.get(key)
        if memory is None:
            memory = self._pods[key] = _PodMemory(now)
        else:
            self._pods.move_to_end(key)
            memory.last_seen = now
        seen = (event.state, event.exit_code)
        first = seen not in memory.seen
        if first:
            memory.seen.add(seen)
        restarted = (event.previous and event.state is _TERMINATED
                     and source.restart_count > memory.reported_restarts)
        if restarted:
            memory.reported_restarts = source.restart_count
        when = event.finished_at or event.started_at
        if self.history_before is not None and when is not None and when < self.history_before:
            return False
        if not (first or restarted):
            return False
        entry = _new(DigestEntry)
        _init_entry(entry, event=event, seen_at=now, repeated=not first)
        self._pend(entry, when=when, now=now)
        return True

    def _pend(self, entry: DigestEntry, *, when: datetime | None, now: datetime) -> None:
        event = entry.event
        source = event.source
        group = self._groups.get(source.tool)
        if group is None:
            group = self._groups[source.tool] = _Group()
        if not (group.entries or group.overflow):
            group.first_at = now
            heapq.heappush(self._heap, (group.due_at(self._settings), source.tool))
        key = (source.job, source.name, event.state, event.exit_code)
        when = when or now
        if group.oldest is None or when < group.oldest:
            group.oldest = when
        old = group.entries.get(key)
        if old is not None:
            # The same line, now with a later restart count: keep its place and first sighting.
            repeated = old.repeated or entry.repeated
            group.entries[key] = attrs.evolve(entry, seen_at=old.seen_at, repeated=repeated)
        elif len(group.entries) < self._settings.max_entries:
            group.entries[key] = entry
        else:
            group.overflow.add(key)

    def due(self, *, now: datetime) -> list[Digest]:
        """Take the digests due at ``now`` (each tool's pending lines, then empty)."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            _, tool = heapq.heappop(self._heap)
            group = self._groups.get(tool)
            if group is None or not group.pending:
                continue  # a stale entry: already taken
            when = group.due_at(self._settings)
            if when > now:
                heapq.heappush(self._heap, (when, tool))
                continue
            found.append(self._take(tool, group, now=now))
        self._forget(now)
        return found

    def flush_all(self, *, now: datetime) -> list[Digest]:
        """Take every pending digest now, due or not (before a shutdown)."""
        found = [self._take(t, g, now=now) for t, g in self._groups.items() if g.pending]
        self._heap.clear()
        return found

    def next_due(self) -> datetime | None:
        """When the next digest is due; None when nothing is pending."""
        while self._heap:
            when, tool = self._heap[0]
            group = self._groups.get(tool)
            if group is not None and group.pending:
                return when
            heapq.heappop(self._heap)
        return None

    def watermark(self, *, now: datetime) -> datetime:
        """A time before which every event is mailed already (or was never news).

        Given to a restarted emailer as ``history_before``, it skips what was mailed; events
        still pending here were not, so the watermark stays before the oldest of them.
        """
        oldest = [g.oldest for g in self._groups.values() if g.pending and g.oldest is not None]
        return min([now, *oldest])

    def _take(self, tool: str, group: _Group, *, now: datetime) -> Digest:
        digest = Digest(tool=tool, entries=tuple(group.entries.values()),
                        omitted=len(group.overflow))
        group.entries = {}
        group.overflow = set()
        group.first_at = group.oldest = None
        group.last_sent = now
        return digest

    def _forget(self, now: datetime) -> None:
        limit = now - self._settings.forget_after
        while self._pods:
            key, memory = next(iter(self._pods.items()))
            if memory.last_seen >= limit:
                break
            del self._pods[key]
        if self._pruned_at is None or now - self._pruned_at >= self._settings.group_interval:
            # A tool that got its last digest over an interval ago is free to get the next at once.
            self._pruned_at = now
            for tool in [
                t for t, g in self._groups.items()
                if not g.pending and (g.last_sent is None
                                      or g.last_sent + self._settings.group_interval <= now)
            ]:
                del self._groups[tool]
