"""The printing pieces by themselves: fitting tables, plans, details, documents, waiting."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_cli.output import (
    detail_lines,
    document,
    fit_table,
    plan_lines,
    style,
)
from tjf_cli.waiting import wait_for_job
from tjf_core.model import JobSpec
from tjf_http.client import RemoteJob

_CELL = st.text(alphabet=st.characters(codec="ascii", categories=("L", "N", "P", "Zs")),
                max_size=60)


@settings(max_examples=200)
@given(rows=st.lists(st.tuples(st.text("abcdef-", min_size=1, max_size=12), _CELL, _CELL),
                     max_size=8),
       width=st.integers(min_value=40, max_value=160))
def test_a_table_never_exceeds_its_width(rows: list[tuple[str, str, str]], width: int) -> None:
    lines = fit_table(["NAME", "TYPE", "STATUS"], rows, width=width, shrink=(2, 1))
    assert len(lines) == len(rows) + 1
    assert all(len(line) <= width for line in lines)
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.startswith(row[0])  # the name is never cut


@settings(max_examples=200)
@given(rows=st.lists(st.tuples(_CELL, _CELL), max_size=6))
def test_a_table_that_fits_is_not_cut(rows: list[tuple[str, str]]) -> None:
    lines = fit_table(["A", "B"], rows, width=1000, shrink=(0, 1))
    for line, row in zip(lines[1:], rows, strict=True):
        assert all(" ".join(cell.split()) in line for cell in row)
    assert not any(line.endswith(" ") for line in lines)


def test_cut_cells_end_in_dots() -> None:
    lines = fit_table(["NAME", "COMMAND"], [["a", "x" * 100]], width=30, shrink=(1,))
    assert lines[1] == "a     " + "x" * 21 + "..."
    assert len(lines[1]) == 30


def test_style_only_with_colour() -> None:
    assert style("x", colour=False, fg="red") == "x"
    assert re.fullmatch(r"\x1b\[31mx\x1b\[0m", style("x", colour=True, fg="red"))


def test_plans_in_words() -> None:
    plan = {"dry_run": False, "changed": True,
            "jobs": [{"name": "a", "action": "update",
                      "changed_fields": ["memory", "filelog_stdout"], "stale": False},
                     {"name": "b", "action": "update", "changed_fields": [], "stale": True},
                     {"name": "c", "action": "unchanged", "changed_fields": [], "stale": False}],
            "counts": {"create": 0, "update": 2, "delete": 0, "unchanged": 1}}
    assert plan_lines(plan, source="jobs.yaml", colour=False) == [
        "  update     a (mem, filelog-stdout)",
        "  update     b (its objects are out of date)",
        "  unchanged  c",
        "Done: 2 updated, 1 unchanged.",
    ]
    empty = {"dry_run": True, "changed": False, "jobs": [], "counts": {}}
    assert plan_lines(empty, source="f", colour=False) == [
        "No changes: the tool's jobs already match f (0 jobs)."]


def test_details_wrap_under_their_label() -> None:
    lines = detail_lines([("Name", "x"), ("Details", "word " * 40)], width=40, colour=False)
    assert lines[0] == "Name:    x"
    assert all(len(line) <= 40 for line in lines)
    assert all(line.startswith(" " * 9) for line in lines[2:])


def test_documents_are_json_or_yaml() -> None:
    assert document({"a": [1]}, form="json") == '{\n  "a": [\n    1\n  ]\n}\n'
    assert document({"a": [1]}, form="yaml") == "a:\n- 1\n"


def _job(short: str) -> RemoteJob:
    return RemoteJob(spec=JobSpec(name="x", command="x", image="bookworm"),
                     status={"short": short}, status_short=short, status_long="",
                     image_state="stable")


@settings(max_examples=200)
@given(ends_after=st.integers(min_value=0, max_value=50),
       timeout=st.integers(min_value=1, max_value=120),
       outcome=st.sampled_from(["succeeded", "failed"]))
def test_waiting_ends_with_the_job_or_at_the_timeout(ends_after: int, timeout: int,
                                                     outcome: str) -> None:
    now = [0.0]
    polls: list[float] = []

    def get() -> RemoteJob:
        polls.append(now[0])
        return _job(outcome if now[0] >= ends_after else "running")

    def sleep(seconds: float) -> None:
        assert seconds > 0
        now[0] += seconds

    result = wait_for_job(get, timeout=timeout, monotonic=lambda: now[0], sleep=sleep)
    assert result.ended == (result.job.status["short"] == outcome)
    if result.ended:
        assert ends_after <= now[0] <= max(ends_after, 0) + 5.0
    else:
        assert now[0] == timeout  # never waits beyond the timeout
    gaps = [later - earlier for earlier, later in itertools.pairwise(polls)]
    assert all(gap <= 5.0 + 1e-9 for gap in gaps)
