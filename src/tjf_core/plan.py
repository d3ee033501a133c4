"""Declarative apply, decided purely: desired jobs (a jobs.yaml) against the jobs that exist.

``make_plan`` says, per job, whether to create, update, delete or leave it alone, and which
fields changed. It changes nothing and does no I/O; the service carries a plan out only after
every desired job validated, so a typo in a jobs file can never wipe a tool's jobs (the
predecessor deleted first and validated later). Specs are compared after normalisation, so a
default spelled differently is not a change.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable

import attrs

from tjf_core.errors import InvalidInputError, Problem
from tjf_core.model import JobSpec

__all__ = ["Action", "Plan", "PlannedChange", "changed_fields", "make_plan"]


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    UNCHANGED = "unchanged"


@attrs.frozen(kw_only=True)
class PlannedChange:
    """What happens to one job. ``changed_fields`` is set for updates of the definition."""

    name: str
    action: Action
    desired: JobSpec | None = None
    current: JobSpec | None = None
    changed_fields: tuple[str, ...] = ()
    #: True when the definition is unchanged but the live objects no longer match it.
    stale: bool = False


@attrs.frozen
class Plan:
    changes: tuple[PlannedChange, ...]

    def with_action(self, action: Action) -> tuple[PlannedChange, ...]:
        return tuple(c for c in self.changes if c.action is action)

    @property
    def has_changes(self) -> bool:
        return any(c.action is not Action.UNCHANGED for c in self.changes)


def changed_fields(old: JobSpec, new: JobSpec) -> tuple[str, ...]:
    """The names of the fields whose values differ, in declaration order."""
    return tuple(
        field.name
        for field in attrs.fields(JobSpec)
        if getattr(old, field.name) != getattr(new, field.name)
    )


def make_plan(
    desired: Iterable[JobSpec],
    current: Iterable[JobSpec],
    *,
    only: str | None = None,
    stale: Collection[str] = (),
) -> Plan:
    """Plan making ``current`` equal to ``desired``.

    ``only`` restricts the plan to one job (it must be in ``desired``); ``stale`` names current
    jobs whose live objects differ from their definition (they are updated even if unchanged).
    """
    wanted = {spec.name: spec for spec in desired}
    existing = {spec.name: spec for spec in current}
    if only is not None:
        if only not in wanted:
            raise InvalidInputError(
                [Problem("job", f"{only!r} is not defined in the jobs file")]
            )
        wanted = {only: wanted[only]}
        existing = {k: v for k, v in existing.items() if k == only}

    changes: list[PlannedChange] = []
    for name in sorted(existing.keys() - wanted.keys()):
        changes.append(PlannedChange(name=name, action=Action.DELETE, current=existing[name]))
    for name in sorted(wanted):
        new = wanted[name]
        old = existing.get(name)
        if old is None:
            changes.append(PlannedChange(name=name, action=Action.CREATE, desired=new))
            continue
        diff = changed_fields(old, new)
        if diff or name in stale:
            changes.append(
                PlannedChange(
                    name=name,
                    action=Action.UPDATE,
                    desired=new,
                    current=old,
                    changed_fields=diff,
                    stale=not diff,
                )
            )
        else:
            changes.append(
                PlannedChange(name=name, action=Action.UNCHANGED, desired=new, current=old)
            )
    return Plan(tuple(changes))
