"""Tests of cron schedules: parsing and its messages, macro spreading, and fire times (DST too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tjf_core import schedule as schedule_module
from tjf_core.errors import InvalidInputError, InvalidScheduleError, Problem
from tjf_core.schedule import (
    MACROS,
    CronSchedule,
    expand_schedule,
    kubernetes_schedule,
    next_fire,
    parse_cron,
    previous_fire,
    schedule_problems,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)
ALL_DAYS = frozenset(range(1, 32))
ALL_WEEKDAYS = frozenset(range(7))
FIELDS = "expected 5 fields (minute hour day-of-month month day-of-week)"
NOT_AN_ENTRY = "is not a valid entry, use *, n, a-b, */n or a-b/n"

job_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=40)


def utc(*fields: int) -> datetime:
    """``datetime(*fields)`` in UTC: year, month, day, then optionally hour, minute, second."""
    year, month, day, hour, minute, second = (*fields, 0, 0, 0)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def same_instant(a: datetime | None, b: datetime) -> bool:
    # Aware datetimes sharing a tzinfo compare by wall clock (fold ignored): compare in UTC.
    return a is not None and a.astimezone(UTC) == b.astimezone(UTC)


def test_public_surface() -> None:
    assert sorted(schedule_module.__all__) == sorted(
        [
            "MACROS",
            "CronSchedule",
            "expand_schedule",
            "kubernetes_schedule",
            "next_fire",
            "parse_cron",
            "previous_fire",
            "schedule_problems",
        ]
    )
    assert {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly"} < MACROS
    assert "@annually" in MACROS


@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("*/15 * * * *", "minutes", {0, 15, 30, 45}),
        ("1-10/3 * * * *", "minutes", {1, 4, 7, 10}),
        ("5/20 * * * *", "minutes", {5, 25, 45}),
        ("0,30,59 * * * *", "minutes", {0, 30, 59}),
        ("0 22-23,0-2 * * *", "hours", {22, 23, 0, 1, 2}),
        ("0 */100 * * *", "hours", {0}),
        ("0 0 1,15 * *", "days", {1, 15}),
        ("0 0 ? * *", "days", set(range(1, 32))),
        ("0 0 * JAN,jul,Dec * ", "months", {1, 7, 12}),
        ("0 0 * feb-APR *", "months", {2, 3, 4}),
        ("0 0 * */3 *", "months", {1, 4, 7, 10}),
        ("0 0 * * MON-FRI", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 * * 7", "weekdays", {0}),
        ("0 0 * * 5-7", "weekdays", {5, 6, 0}),
        ("0 0 * * sun,SAT", "weekdays", {0, 6}),
        ("0 0 * * */2", "weekdays", {0, 2, 4, 6}),
        ("0 0 * * 4/1", "weekdays", {4, 5, 6}),
        ("0 0 * * ?", "weekdays", set(range(7))),
    ],
)
def test_valid_fields(text: str, field: str, values: set[int]) -> None:
    assert getattr(parse_cron(text), field) == frozenset(values)
    assert schedule_problems(text) == []


def test_parse_normalises_whitespace_and_keeps_spelling() -> None:
    parsed = parse_cron("  0\t 12  * \n jan  Mon ")
    assert parsed == CronSchedule(
        text="0 12 * jan Mon",
        minutes=frozenset({0}),
        hours=frozenset({12}),
        days=ALL_DAYS,
        months=frozenset({1}),
        weekdays=frozenset({1}),
        day_restricted=False,
        weekday_restricted=True,
    )


@pytest.mark.parametrize(
    ("text", "day_restricted", "weekday_restricted"),
    [
        ("0 0 * * *", False, False),
        ("0 0 ? * ?", False, False),
        ("0 0 */1 * *", False, False),
        ("0 0 *,13 * 5", False, True),  # a star entry anywhere unrestricts the field
        ("0 0 */2 * 1-5", True, True),  # a star with a step restricts it
        ("0 0 1-31 * 0-7", True, True),
    ],
)
def test_restriction_flags(text: str, day_restricted: bool, weekday_restricted: bool) -> None:
    parsed = parse_cron(text)
    assert (parsed.day_restricted, parsed.weekday_restricted) == (
        day_restricted,
        weekday_restricted,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61 * * * *", "minute field: 61 is out of range, use 0 to 59"),
        ("0 24 * * *", "hour field: 24 is out of range, use 0 to 23"),
        ("0 0 0 * *", "day-of-month field: 0 is out of range, use 1 to 31"),
        ("0 0 * 13 *", "month field: 13 is out of range, use 1 to 12 or JAN to DEC"),
        ("0 0 * * 8", "day-of-week field: 8 is out of range, use 0 to 7 or SUN to SAT"),
        ("0 */0 * * *", "hour field: step 0 is not allowed, use a step of 1 or more"),
        ("*/x * * * *", 'minute field: step "x" is not a number, use a step of 1 or more'),
        ("x * * * *", 'minute field: "x" is not a number, use 0 to 59'),
        ("0 0 * FOO *", 'month field: "FOO" is not a month, use 1 to 12 or JAN to DEC'),
        ("0 0 * January *", 'month field: "January" is not a month, use 1 to 12 or JAN to DEC'),
        (
            "0 0 * * FUN",
            'day-of-week field: "FUN" is not a day of the week, use 0 to 7 or SUN to SAT',
        ),
        ("0 0 JAN * *", 'day-of-month field: "JAN" is not a number, use 1 to 31'),
        (
            "0 22-2 * * *",
            "hour field: range 22-2 runs backwards, write the smaller value first"
            " (to wrap around, use 22-23,0-2)",
        ),
        ("1,,2 * * * *", 'minute field: empty entry in "1,,2", use single commas'),
        ("-5 * * * *", f'minute field: "-5" {NOT_AN_ENTRY}'),
        ("1-2-3 * * * *", f'minute field: "1-2-3" {NOT_AN_ENTRY}'),
        ("*/2/3 * * * *", f'minute field: "*/2/3" {NOT_AN_ENTRY}'),
        ("*-5 * * * *", f'minute field: "*-5" {NOT_AN_ENTRY}'),
        ("? * * * *", 'minute field: "?" is only allowed in day-of-month and day-of-week, use "*"'),
        ("0 0 * * ?/2", f'day-of-week field: "?/2" {NOT_AN_ENTRY}'),
        ("* * * * * *", f"{FIELDS}, got 6"),
        ("0 * * *", f"{FIELDS}, got 4"),
        ("", f"{FIELDS}, got 0"),
        (
            "@reboot",
            "@reboot is not supported: jobs cannot run at boot; use a 5-field cron expression"
            " or one of @hourly, @daily, @weekly, @monthly, @yearly",
        ),
        (
            "@every 5m",
            'unknown macro "@every", use a 5-field cron expression or one of @hourly, @daily,'
            " @midnight, @weekly, @monthly, @yearly, @annually",
        ),
        ("@daily 5", '@daily takes no other fields, remove "5"'),
        (
            "TZ=UTC 0 0 * * *",
            '"TZ=UTC": TZ= prefixes are not supported, set the job\'s timezone field instead',
        ),
        (
            "CRON_TZ=Europe/Berlin 0 0 * * *",
            '"CRON_TZ=Europe/Berlin": CRON_TZ= prefixes are not supported,'
            " set the job's timezone field instead",
        ),
        ("0 0 30 2 *", "day-of-month 30 never occurs in February, so the schedule would never run"),
        (
            "0 0 31 4,6,9,11 *",
            "day-of-month 31 never occurs in April, June, September or November,"
            " so the schedule would never run",
        ),
        (  # "*,1" is unrestricted, so both day fields must match: never
            "0 0 30 2 *,1",
            "day-of-month 30 never occurs in February, so the schedule would never run",
        ),
        (
            "0 0 30,31 FEB *",
            "day-of-month 30 or 31 never occurs in February, so the schedule would never run",
        ),
    ],
)
def test_invalid_messages(text: str, message: str) -> None:
    assert schedule_problems(text) == [Problem("", message)]
    with pytest.raises(InvalidScheduleError) as caught:
        parse_cron(text)
    assert caught.value.problems == (Problem("", message),)
    assert caught.value.http_status == 400


def test_every_bad_field_is_reported_at_once() -> None:
    messages = [p.message for p in schedule_problems("61 24 0 13 8")]
    assert messages == [
        "minute field: 61 is out of range, use 0 to 59",
        "hour field: 24 is out of range, use 0 to 23",
        "day-of-month field: 0 is out of range, use 1 to 31",
        "month field: 13 is out of range, use 1 to 12 or JAN to DEC",
        "day-of-week field: 8 is out of range, use 0 to 7 or SUN to SAT",
    ]
    assert len(schedule_problems("60,x,*/0 * * * *")) == 3


@pytest.mark.parametrize("text", ["0 0 29 2 *", "0 0 30 2 1", "0 0 30 2 */2", "0 0 31 1-12 *"])
def test_rare_but_possible_days_are_accepted(text: str) -> None:
    assert schedule_problems(text) == []


@pytest.mark.parametrize("macro", sorted(MACROS))
def test_macros_are_valid_but_must_be_spread_before_parsing(macro: str) -> None:
    assert schedule_problems(macro) == []
    assert schedule_problems(macro.upper()) == []
    with pytest.raises(InvalidScheduleError, match="expand_schedule"):
        parse_cron(macro)


def test_day_rule_is_or_when_both_day_fields_are_restricted() -> None:
    friday_13th = datetime(2026, 2, 13)  # a Friday
    friday, thirteenth, other = datetime(2026, 2, 20), datetime(2026, 4, 13), datetime(2026, 3, 14)
    both = parse_cron("0 0 13 * 5")
    assert [both.matches(d) for d in (friday_13th, friday, thirteenth, other)] == [
        True,
        True,
        True,
        False,
    ]
    only_dow = parse_cron("0 0 *,13 * 5")
    assert [only_dow.matches(d) for d in (friday_13th, friday, thirteenth)] == [True, True, False]
    only_dom = parse_cron("0 0 13 * *")
    assert [only_dom.matches(d) for d in (friday_13th, friday, thirteenth)] == [True, False, True]
    assert parse_cron("0 0 * * 7").matches(datetime(2026, 3, 15))  # a Sunday
    assert not parse_cron("0 0 * * 7").matches(datetime(2026, 3, 16))


def test_matches_reads_the_wall_clock_only() -> None:
    parsed = parse_cron("30 9 * * *")
    assert parsed.matches(datetime(2026, 5, 1, 9, 30, tzinfo=BERLIN))
    assert parsed.matches(datetime(2026, 5, 1, 9, 30, 59))
    assert not parsed.matches(datetime(2026, 5, 1, 9, 31))


def test_next_and_previous_across_the_year_boundary() -> None:
    new_year = parse_cron("0 0 1 1 *")
    assert new_year.next_after(utc(2026, 12, 31, 23, 59, 30), UTC) == utc(2027, 1, 1)
    assert new_year.next_after(utc(2027, 1, 1), UTC) == utc(2028, 1, 1)  # strictly after
    assert new_year.previous_before(utc(2027, 1, 1), UTC) == utc(2027, 1, 1)  # at or before
    assert new_year.previous_before(utc(2026, 12, 31, 23, 59), UTC) == utc(2026, 1, 1)
    quarterly = parse_cron("15 6 1 */3 *")
    assert quarterly.next_after(utc(2026, 10, 1, 6, 15), UTC) == utc(2027, 1, 1, 6, 15)
    assert quarterly.previous_before(utc(2027, 1, 1, 6, 14), UTC) == utc(2026, 10, 1, 6, 15)


def test_seconds_and_other_zones_of_the_reference_instant() -> None:
    every_quarter = parse_cron("*/15 * * * *")
    assert every_quarter.next_after(utc(2026, 5, 1, 10, 0, 0), UTC) == utc(2026, 5, 1, 10, 15)
    assert every_quarter.previous_before(utc(2026, 5, 1, 10, 14, 59), UTC) == utc(2026, 5, 1, 10)
    nine = parse_cron("0 9 * * *")
    fire = nine.next_after(utc(2026, 5, 1, 12), BERLIN)  # 14:00 in Berlin: tomorrow 9:00
    assert fire.tzinfo is BERLIN
    assert fire == datetime(2026, 5, 2, 9, tzinfo=BERLIN)
    assert same_instant(fire, utc(2026, 5, 2, 7))
    assert same_instant(nine.next_after(datetime(2026, 5, 1, 8, tzinfo=BERLIN), NEW_YORK),
                        datetime(2026, 5, 1, 9, tzinfo=NEW_YORK))  # fmt: skip


def test_naive_reference_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_cron("* * * * *").next_after(datetime(2026, 1, 1), UTC)


def test_leap_day_skips_years_and_centuries_quickly() -> None:
    leap = parse_cron("0 0 29 2 *")
    assert leap.next_after(utc(2097, 1, 1), UTC) == utc(2104, 2, 29)  # 2100 is no leap year
    assert leap.previous_before(utc(2103, 12, 31), UTC) == utc(2096, 2, 29)
    assert parse_cron("0 0 13 * 5").next_after(utc(2026, 3, 14), UTC) == utc(2026, 3, 20)


def test_calendar_edges() -> None:
    assert parse_cron("* * * * *").previous_before(utc(1, 1, 1, 0, 0, 30), UTC) == utc(1, 1, 1)
    assert parse_cron("0 1 * * *").previous_before(utc(1, 1, 1, 0, 30), UTC) is None
    with pytest.raises(ValueError, match="no fire time before the year 10000"):
        parse_cron("0 1 * * *").next_after(utc(9999, 12, 31, 2), UTC)
    with pytest.raises(ValueError, match="no fire time before the year 10000"):
        parse_cron("0 0 1 1 *").next_after(utc(9999, 6, 1), UTC)


def test_berlin_spring_forward_gap_fires_once_after_the_gap() -> None:
    # 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC).
    half_past_two = parse_cron("30 2 * * *")
    fire = half_past_two.next_after(datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN), BERLIN)
    assert same_instant(fire, utc(2026, 3, 29, 1))
    assert (fire.hour, fire.minute) == (3, 0)
    nxt = half_past_two.next_after(fire, BERLIN)
    assert same_instant(nxt, datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN))
    assert same_instant(half_past_two.previous_before(nxt - MINUTE, BERLIN), fire)
    quarters = parse_cron("*/15 2 * * *")  # four skipped wall times, one fire
    first = quarters.next_after(utc(2026, 3, 28, 23), BERLIN)
    assert same_instant(first, utc(2026, 3, 29, 1))
    assert same_instant(quarters.next_after(first, BERLIN), utc(2026, 3, 30, 0))
    every_minute = parse_cron("* * * * *")  # 03:00 is both a real match and the gap's end
    after_gap = every_minute.next_after(utc(2026, 3, 29, 0, 59), BERLIN)
    assert same_instant(after_gap, utc(2026, 3, 29, 1))
    assert same_instant(every_minute.next_after(after_gap, BERLIN), utc(2026, 3, 29, 1, 1))


def test_berlin_fall_back_repeat_fires_at_the_first_occurrence_only() -> None:
    # 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET (01:00 UTC); 02:xx happens twice.
    half_past_two = parse_cron("30 2 * * *")
    fire = half_past_two.next_after(datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN), BERLIN)
    assert same_instant(fire, utc(2026, 10, 25, 0, 30))  # 02:30 CEST
    assert same_instant(half_past_two.next_after(fire, BERLIN), utc(2026, 10, 26, 1, 30))
    second_pass = datetime(2026, 10, 25, 2, 45, fold=1, tzinfo=BERLIN)  # 01:45 UTC
    assert same_instant(half_past_two.previous_before(second_pass, BERLIN), fire)
    every_minute = parse_cron("* * * * *")
    assert same_instant(every_minute.next_after(second_pass, BERLIN), utc(2026, 10, 25, 2))
    assert same_instant(every_minute.previous_before(second_pass, BERLIN), utc(2026, 10, 25, 0, 59))


def test_new_york_changes_both_ways() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
    two = parse_cron("0 2 * * *")
    spring = two.next_after(utc(2026, 3, 8), NEW_YORK)
    assert same_instant(spring, utc(2026, 3, 8, 7))
    assert (spring.hour, spring.minute) == (3, 0)
    half_past_one = parse_cron("30 1 * * *")
    autumn = half_past_one.next_after(utc(2026, 11, 1), NEW_YORK)
    assert same_instant(autumn, utc(2026, 11, 1, 5, 30))  # 01:30 EDT, not 01:30 EST
    assert same_instant(half_past_one.next_after(autumn, NEW_YORK), utc(2026, 11, 2, 6, 30))
    assert same_instant(half_past_one.previous_before(utc(2026, 11, 1, 6, 45), NEW_YORK), autumn)


def test_convenience_functions() -> None:
    assert next_fire("0 12 * * *", after=utc(2026, 1, 1)) == utc(2026, 1, 1, 12)
    assert previous_fire("0 12 * * *", before=utc(2026, 1, 1)) == utc(2025, 12, 31, 12)
    fire = next_fire("0 12 * * *", after=utc(2026, 1, 1), tz="Europe/Berlin")
    assert same_instant(fire, utc(2026, 1, 1, 11))
    spread = parse_cron(expand_schedule("@daily", tool="tool", job="job"))
    fire = next_fire("@daily", after=utc(2026, 1, 1), tool="tool", job="job")
    assert spread.matches(fire)
    assert previous_fire("@daily", before=fire, tool="tool", job="job") == fire
    with pytest.raises(InvalidInputError) as caught:
        next_fire("* * * * *", after=utc(2026, 1, 1), tz="Mars/Olympus")
    assert caught.value.problems[0].path == "timezone"
    assert "Mars/Olympus" in caught.value.problems[0].message


def test_expand_keeps_plain_text_and_spreads_macros_by_shape() -> None:
    assert expand_schedule("  5  4 * *   1 ", tool="t", job="j") == "5 4 * * 1"
    assert expand_schedule("not cron", tool="t", job="j") == "not cron"
    shapes = {  # which fields get a fixed value ("n") and which stay "*"
        "@hourly": "n * * * *",
        "@daily": "n n * * *",
        "@midnight": "n n * * *",
        "@weekly": "n n * * n",
        "@monthly": "n n n * *",
        "@yearly": "n n n n *",
        "@annually": "n n n n *",
    }
    for macro, shape in shapes.items():
        fields = expand_schedule(macro, tool="t", job="j").split()
        assert " ".join(f if f == "*" else "n" for f in fields) == shape
        assert all(f == "*" or f.isdigit() for f in fields)
    daily = expand_schedule("@daily", tool="t", job="j")
    assert expand_schedule("@DAILY", tool="t", job="j") == daily
    assert expand_schedule("@midnight", tool="t", job="j") == daily


@settings(max_examples=200)
@given(tool=job_names, job=job_names, macro=st.sampled_from(sorted(MACROS)))
def test_spread_macros_are_valid_stable_and_use_real_days(tool: str, job: str, macro: str) -> None:
    expanded = expand_schedule(macro, tool=tool, job=job)
    assert expanded == expand_schedule(macro, tool=tool, job=job)
    parsed = parse_cron(expanded)
    assert parsed.text == expanded
    assert len(parsed.minutes) == 1
    assert parsed.days == ALL_DAYS or (len(parsed.days) == 1 and min(parsed.days) in range(1, 29))
    assert len(parsed.weekdays) in (1, 7)
    assert kubernetes_schedule(macro, tool=tool, job=job) == expanded


def test_spread_reaches_many_slots() -> None:
    daily = [expand_schedule("@daily", tool="tool", job=f"job-{i}") for i in range(1000)]
    hours = {parse_cron(text).hours for text in daily}
    assert len(hours) >= 20
    assert len(set(daily)) >= 500
    monthly = {expand_schedule("@monthly", tool="t", job=str(i)).split()[2] for i in range(500)}
    assert len(monthly) >= 20
    other_tool = expand_schedule("@daily", tool="other", job="job-0")
    assert other_tool != daily[0]


def test_kubernetes_schedule_writes_sunday_as_zero() -> None:
    assert kubernetes_schedule("0 0 * * 7", tool="t", job="j") == "0 0 * * 0"
    assert kubernetes_schedule("0 0 * * 5-7,*/3", tool="t", job="j") == "0 0 * * 0,5,6,*/3"
    assert kubernetes_schedule(" 0  0 1 * MON ", tool="t", job="j") == "0 0 1 * MON"
    with pytest.raises(InvalidScheduleError):
        kubernetes_schedule("@reboot", tool="t", job="j")


# Fire-time laws, checked against a brute-force minute scan (schedules that fire daily).
minute_fields = st.one_of(
    st.sets(st.integers(0, 59), min_size=1, max_size=4).map(lambda s: ",".join(map(str, s))),
    st.integers(1, 30).map(lambda n: f"*/{n}"),
    st.just("*"),
)
hour_fields = st.one_of(
    st.sets(st.integers(0, 23), min_size=1, max_size=4).map(lambda s: ",".join(map(str, s))),
    st.sets(st.integers(0, 4), min_size=1, max_size=3).map(lambda s: ",".join(map(str, s))),
    st.integers(1, 12).map(lambda n: f"*/{n}"),
    st.just("*"),
)
daily_schedules = st.builds(lambda m, h: parse_cron(f"{m} {h} * * *"), minute_fields, hour_fields)
# Instants within two days of a DST change of each zone (and plain UTC).
TRANSITIONS = [
    (UTC, utc(2026, 12, 31, 12)),
    (BERLIN, utc(2026, 3, 29, 1)),
    (BERLIN, utc(2026, 10, 25, 1)),
    (NEW_YORK, utc(2026, 3, 8, 7)),
    (NEW_YORK, utc(2026, 11, 1, 6)),
]
near_transitions = st.builds(
    lambda pair, seconds: (pair[0], pair[1] + timedelta(seconds=seconds)),
    st.sampled_from(TRANSITIONS),
    st.integers(-2 * 86400, 2 * 86400),
)


def fires_at(cron: CronSchedule, instant: datetime, tz: tzinfo) -> bool:
    """Oracle for a whole-minute UTC instant, written from the documented semantics."""
    local = instant.astimezone(tz)
    if local.fold == 0 and cron.matches(local):
        return True
    before = (instant - MINUTE).astimezone(tz)
    skipped = local.replace(tzinfo=None) - before.replace(tzinfo=None) - MINUTE
    wall = before.replace(tzinfo=None)
    while skipped > timedelta(0):  # wall times the gap ending here never had
        wall += MINUTE
        skipped -= MINUTE
        if cron.matches(wall):
            return True
    return False


@settings(max_examples=200)
@given(cron=daily_schedules, where=near_transitions)
def test_next_after_is_the_first_fire_strictly_after(
    cron: CronSchedule, where: tuple[tzinfo, datetime]
) -> None:
    tz, instant = where
    fire = cron.next_after(instant, tz)
    assert fire.tzinfo is tz
    assert fire.astimezone(UTC) > instant
    assert fires_at(cron, fire.astimezone(UTC), tz)
    probe = instant.replace(second=0, microsecond=0) + MINUTE
    while probe < fire.astimezone(UTC):
        assert not fires_at(cron, probe, tz), probe
        probe += MINUTE


@settings(max_examples=200)
@given(cron=daily_schedules, where=near_transitions)
def test_previous_before_is_the_last_fire_at_or_before(
    cron: CronSchedule, where: tuple[tzinfo, datetime]
) -> None:
    tz, instant = where
    fire = cron.previous_before(instant, tz)
    assert fire is not None
    assert fire.astimezone(UTC) <= instant
    assert fires_at(cron, fire.astimezone(UTC), tz)
    probe = instant.replace(second=0, microsecond=0)
    while probe > fire.astimezone(UTC):
        assert not fires_at(cron, probe, tz), probe
        probe -= MINUTE
    assert same_instant(cron.next_after(fire.astimezone(UTC) - timedelta(seconds=1), tz), fire)
