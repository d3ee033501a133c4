from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import job_specs
from tjf_core.convert import load_jobs_file
from tjf_core.errors import InvalidInputError
from tjf_core.model import JobSpec
from tjf_core.plan import Action, make_plan


def _spec(name: str, **fields: object) -> JobSpec:
    return JobSpec(name=name, command=str(fields.pop("command", "./run")), image="python3.11",
                   **fields)  # type: ignore[arg-type]


def test_create_update_delete_unchanged() -> None:
    current = [_spec("keep"), _spec("change"), _spec("gone")]
    desired = [_spec("keep"), _spec("change", command="./new", retry=2), _spec("new")]
    plan = make_plan(desired, current)
    actions = {c.name: c.action for c in plan.changes}
    assert actions == {"keep": Action.UNCHANGED, "change": Action.UPDATE,
                       "gone": Action.DELETE, "new": Action.CREATE}
    (update,) = plan.with_action(Action.UPDATE)
    assert update.changed_fields == ("command", "retry")
    assert plan.has_changes


def test_defaults_spelled_differently_are_not_a_change() -> None:
    current = [entry.spec for entry in load_jobs_file(
        "- {name: a, command: x, image: i, cpu: 500m, mem: 512Mi, emails: none}")]
    desired = [entry.spec for entry in load_jobs_file(
        "- {name: a, command: x, image: i, cpu: 0.5, filelog-stdout: a.out}")]
    plan = make_plan(desired, current)
    assert [c.action for c in plan.changes] == [Action.UNCHANGED]
    assert not plan.has_changes


def test_stale_live_objects_are_updated() -> None:
    plan = make_plan([_spec("a")], [_spec("a")], stale={"a"})
    (change,) = plan.changes
    assert change.action is Action.UPDATE
    assert change.stale
    assert change.changed_fields == ()


def test_only_one_job() -> None:
    current = [_spec("a"), _spec("b"), _spec("c")]
    desired = [_spec("a", command="./other"), _spec("b")]
    plan = make_plan(desired, current, only="a")
    assert [(c.name, c.action) for c in plan.changes] == [("a", Action.UPDATE)]
    with pytest.raises(InvalidInputError, match="job: 'zzz' is not defined in the jobs file"):
        make_plan(desired, current, only="zzz")


@settings(max_examples=200)
@given(st.lists(job_specs(), max_size=6, unique_by=lambda s: s.name))
def test_planning_a_state_against_itself_changes_nothing(specs: list[JobSpec]) -> None:
    plan = make_plan(specs, specs)
    assert not plan.has_changes
    assert len(plan.changes) == len(specs)


@settings(max_examples=200)
@given(
    st.lists(job_specs(), max_size=5, unique_by=lambda s: s.name),
    st.lists(job_specs(), max_size=5, unique_by=lambda s: s.name),
)
def test_every_name_gets_exactly_one_change(desired: list[JobSpec],
                                            current: list[JobSpec]) -> None:
    plan = make_plan(desired, current)
    names = [c.name for c in plan.changes]
    assert sorted(names) == sorted({s.name for s in desired} | {s.name for s in current})
    for change in plan.changes:
        if change.action is Action.DELETE:
            assert change.name not in {s.name for s in desired}
        if change.action is Action.CREATE:
            assert change.name not in {s.name for s in current}
