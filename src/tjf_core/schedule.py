"""Cron schedules of scheduled jobs: validate them, spread macros, and compute fire times.

A scheduled job carries cron text that ends up in a Kubernetes CronJob (or drives the local
scheduler), so it is checked here first with messages a person can act on, instead of letting
the cluster refuse it later. Nothing here reads the clock: every instant is a parameter.

Syntax: what the CronJob controller's parser (robfig/cron, standard mode) accepts. Exactly five
whitespace-separated fields, ``minute hour day-of-month month day-of-week``, each a comma list of
``*``, ``?`` (day fields only), ``n``, ``a-b``, ``*/n``, ``a-b/n`` or ``n/s`` (= ``n-max/s``).
Months and weekdays also take names (``JAN``, ``mon``); weekday 7 is another Sunday. Refused:
``@reboot``, unknown macros, a sixth (seconds) field and ``TZ=``/``CRON_TZ=`` prefixes (a job's
timezone is its own field). Day-of-month values that no listed month has (``0 0 30 2 *``) are
refused too, because such a schedule would never run.

Macros (``@daily`` ...) are spread: each fixed field gets a value derived from a stable hash of
(tool, job), so a thousand ``@daily`` jobs do not all start at midnight and one job keeps its
slot forever. Days are picked from 1 to 28, so ``@monthly`` runs every month.

Fire-time semantics:

* Day rule (standard cron): when both day-of-month and day-of-week are restricted (not ``*`` or
  ``?``), a day matches if EITHER matches; otherwise both must (an unrestricted one always does).
  As in robfig/cron, a ``*`` entry anywhere in the field, without a step above 1, makes the
  field unrestricted.
* Fields are matched against the wall clock of the job's time zone, at minute resolution.
* A wall time that does not exist (spring-forward gap) fires at the first real instant after the
  gap, once, however many of the skipped wall times match.
* A wall time that occurs twice (fall back) fires once, at its first occurrence.
* ``next_after`` finds the first fire strictly after an instant; ``previous_before`` the last
  fire at or before one. Both skip whole months, days and hours that cannot match.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from tjf_core.errors import InvalidInputError, InvalidScheduleError, Problem

__all__ = [
    "MACROS",
    "CronSchedule",
    "expand_schedule",
    "kubernetes_schedule",
    "next_fire",
    "parse_cron",
    "previous_fire",
    "schedule_problems",
]

MACROS: frozenset[str] = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
)

_FIELD_NAMES = "minute hour day-of-month month day-of-week"
_MACRO_LIST = "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually"
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")  # fmt: skip
_NUMBER = re.compile(r"[0-9]+")
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
# The longest wait between two fires of a valid schedule is 8 years (29 February across a
# century that is not a leap year); anything longer means the schedule cannot fire at all.
_SEARCH_YEARS = 16


@attrs.frozen
class _Field:
    label: str
    low: int
    high: int
    star_high: int  # end of "*" and "n/s": weekday 7 only aliases Sunday, it adds no day
    allowed: str
    not_a_value: str
    names: dict[str, int] = attrs.field(factory=dict)
    question_ok: bool = False


def _names(words: str, first: int) -> dict[str, int]:
    return {word: i for i, word in enumerate(words.split(), start=first)}


_FIELDS = (
    _Field("minute", 0, 59, 59, "0 to 59", "is not a number"),
    _Field("hour", 0, 23, 23, "0 to 23", "is not a number"),
    _Field("day-of-month", 1, 31, 31, "1 to 31", "is not a number", question_ok=True),
    _Field(
        "month", 1, 12, 12, "1 to 12 or JAN to DEC", "is not a month",
        names=_names("jan feb mar apr may jun jul aug sep oct nov dec", 1),
    ),
    _Field(
        "day-of-week", 0, 7, 6, "0 to 7 or SUN to SAT", "is not a day of the week",
        names=_names("sun mon tue wed thu fri sat", 0), question_ok=True,
    ),
)  # fmt: skip
_DOW = _FIELDS[4]


@attrs.frozen
class CronSchedule:
    """A parsed 5-field cron expression (see the module docstring for its semantics)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    def matches(self, when: datetime) -> bool:
        """Whether the wall-clock fields of ``when`` (its zone ignored) match the schedule."""
        return (
            when.minute in self.minutes
            and when.hour in self.hours
            and when.month in self.months
            and self._day_matches(when)
        )

    def next_after(self, when: datetime, tz: tzinfo) -> datetime:
        """The first fire strictly after ``when`` (aware, any zone), as an aware time in ``tz``.

        ``tz`` is the job's zone: a ``ZoneInfo`` (or any PEP 495 tzinfo, such as ``UTC``).
        """
        limit = _utc(when)
        local = when.astimezone(tz)
        wall = local.replace(tzinfo=None, second=0, microsecond=0, fold=0) + _MINUTE
        try:
            while True:
                candidate = self._first_at_or_after(wall)
                fire = _resolve(candidate, tz)
                # Wall minutes in the second pass of a repeated hour map to their first,
                # earlier occurrence; they are skipped here (at most one hour of them).
                if _utc(fire) > limit:
                    return fire
                wall = candidate + _MINUTE
        except OverflowError:
            raise ValueError(f"{self.text!r} has no fire time before the year 10000") from None

    def previous_before(self, when: datetime, tz: tzinfo) -> datetime | None:
        """The last fire at or before ``when`` in ``tz``; None if none exists since year 1."""
        limit = _utc(when)
        local = when.astimezone(tz)
        wall = local.replace(tzinfo=None, second=0, microsecond=0, fold=0)
        offset = local.utcoffset()
        first_offset = local.replace(fold=0).utcoffset()
        if local.fold and offset is not None and first_offset is not None:
            # In the second pass of a repeated hour, later wall minutes of that hour already
            # fired (at their first occurrence), so the search starts after the repeat.
            wall += first_offset - offset
        try:
            while True:
                candidate = self._last_at_or_before(wall)
                if candidate is None:
                    return None
                fire = _resolve(candidate, tz)
                if _utc(fire) <= limit:
                    return fire
                wall = candidate - _MINUTE
        except OverflowError:
            return None

    def _day_matches(self, when: datetime) -> bool:
        on_day = when.day in self.days
        # Python counts weekdays from Monday = 0, cron from Sunday = 0.
        on_weekday = (when.weekday() + 1) % 7 in self.weekdays
        if self.day_restricted and self.weekday_restricted:
            return on_day or on_weekday
        return on_day and on_weekday

    def _first_at_or_after(self, start: datetime) -> datetime:
        """The first matching wall minute at or after the naive ``start``."""
        t = start
        while t.year <= start.year + _SEARCH_YEARS:
            if t.month not in self.months:
                month = _above(self.months, t.month)
                if month is None:  # next year; adding a day overflows cleanly after 9999
                    t = (datetime(t.year, 12, 31) + _DAY).replace(month=min(self.months))
                else:
                    t = datetime(t.year, month, 1)
            elif not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) + _DAY
            elif t.hour not in self.hours:
                hour = _above(self.hours, t.hour)
                midnight = datetime(t.year, t.month, t.day)
                t = midnight + _DAY if hour is None else t.replace(hour=hour, minute=0)
            elif t.minute not in self.minutes:
                minute = _above(self.minutes, t.minute)
                t = t.replace(minute=0) + _HOUR if minute is None else t.replace(minute=minute)
            else:
                return t
        raise ValueError(f"{self.text!r} never fires")

    def _last_at_or_before(self, start: datetime) -> datetime | None:
        """The last matching wall minute at or before the naive ``start``; None before year 1."""
        t = start
        while t.year >= start.year - _SEARCH_YEARS:
            if t.month not in self.months:
                month = _below(self.months, t.month)
                year = t.year if month is not None else t.year - 1
                month = month if month is not None else max(self.months)
                if year < 1:
                    return None
                t = datetime(year, month, calendar.monthrange(year, month)[1], 23, 59)
            elif not self._day_matches(t):
                t = datetime(t.year, t.month, t.day) - _MINUTE
            elif t.hour not in self.hours:
                hour = _below(self.hours, t.hour)
                midnight = datetime(t.year, t.month, t.day)
                t = midnight - _MINUTE if hour is None else t.replace(hour=hour, minute=59)
            elif t.minute not in self.minutes:
                minute = _below(self.minutes, t.minute)
                t = t.replace(minute=0) - _MINUTE if minute is None else t.replace(minute=minute)
            else:
                return t
        raise ValueError(f"{self.text!r} never fires")


def _above(values: frozenset[int], current: int) -> int | None:
    return min((v for v in values if v > current), default=None)


def _below(values: frozenset[int], current: int) -> int | None:
    return max((v for v in values if v < current), default=None)


def _utc(when: datetime) -> datetime:
    # Aware datetimes sharing a tzinfo compare by wall clock, ignoring fold; compare in UTC.
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, got {when.isoformat()}")
    return when.astimezone(UTC)


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """The instant a matching naive wall minute fires at in ``tz`` (gap and repeat rules)."""
    first = wall.replace(tzinfo=tz, fold=0)
    real = first.astimezone(UTC).astimezone(tz)
    if real.replace(tzinfo=None) == wall:
        return real  # exists; fold=0 is the first occurrence of a repeated time
    # ``wall`` falls in a gap: its two readings straddle the transition; find that instant.
    low, high = sorted(int(v.timestamp()) for v in (first, wall.replace(tzinfo=tz, fold=1)))
    after = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, tz)


def _join(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _parse_entry(field: _Field, entry: str, errors: list[str]) -> tuple[set[int], bool] | None:
    """Values of one comma-separated entry (weekday 7 not yet folded) and whether it is a star."""
    where = f"{field.label} field"
    parts = entry.split("/")
    base = parts[0]
    bounds = base.split("-")
    malformed = len(parts) > 2 or len(bounds) > 2 or "" in bounds
    if malformed or (base != "*" and "*" in base) or ("?" in entry and entry != "?"):
        errors.append(f'{where}: "{entry}" is not a valid entry, use *, n, a-b, */n or a-b/n')
        return None
    if base == "?" and not field.question_ok:
        errors.append(f'{where}: "?" is only allowed in day-of-month and day-of-week, use "*"')
        return None
    step = 1
    if len(parts) == 2:
        if not _NUMBER.fullmatch(parts[1]):
            errors.append(f'{where}: step "{parts[1]}" is not a number, use a step of 1 or more')
            return None
        step = int(parts[1])
        if step == 0:
            errors.append(f"{where}: step 0 is not allowed, use a step of 1 or more")
            return None
    if base in ("*", "?"):
        return set(range(field.low, field.star_high + 1, step)), step == 1
    values: list[int] = []
    for token in bounds:
        if _NUMBER.fullmatch(token):
            value = int(token)
        elif token.lower() in field.names:
            value = field.names[token.lower()]
        else:
            errors.append(f'{where}: "{token}" {field.not_a_value}, use {field.allowed}')
            continue
        if not field.low <= value <= field.high:
            errors.append(f"{where}: {value} is out of range, use {field.allowed}")
            continue
        values.append(value)
    if len(values) != len(bounds):
        return None
    start = values[0]
    end = values[1] if len(values) == 2 else start
    if len(values) == 1 and len(parts) == 2:
        end = max(start, field.star_high)  # "n/s" runs to the end of the field
    if start > end:
        errors.append(
            f"{where}: range {base} runs backwards, write the smaller value first"
            f" (to wrap around, use {start}-{field.star_high},{field.low}-{end})"
        )
        return None
    return set(range(start, end + 1, step)), False


def _parse_field(field: _Field, text: str, errors: list[str]) -> tuple[frozenset[int], bool]:
    """The field's values (weekday 7 folded to 0) and whether the field is restricted."""
    values: set[int] = set()
    star = False
    for entry in text.split(","):
        if not entry:
            errors.append(f'{field.label} field: empty entry in "{text}", use single commas')
            continue
        parsed = _parse_entry(field, entry, errors)
        if parsed is not None:
            values |= {v % 7 for v in parsed[0]} if field is _DOW else parsed[0]
            star = star or parsed[1]
    return frozenset(values), not star


def _never_fires(schedule: CronSchedule) -> str | None:
    if schedule.weekday_restricted or not schedule.day_restricted:
        return None  # some weekday (or every day) of each month matches
    longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in schedule.months}
    if any(day <= longest[m] for day in schedule.days for m in schedule.months):
        return None
    days = _join(str(d) for d in sorted(schedule.days))
    months = _join(_MONTH_NAMES[m - 1] for m in sorted(schedule.months))
    return f"day-of-month {days} never occurs in {months}, so the schedule would never run"


def _macro_problem(fields: list[str]) -> str | None:
    """The problem with an ``@...`` text, or None for a plain known macro."""
    word = fields[0].lower()
    if word == "@reboot":
        return (
            "@reboot is not supported: jobs cannot run at boot; use a 5-field cron expression"
            " or one of @hourly, @daily, @weekly, @monthly, @yearly"
        )
    if word not in MACROS:
        return f'unknown macro "{fields[0]}", use a 5-field cron expression or one of {_MACRO_LIST}'
    if len(fields) > 1:
        return f'{fields[0]} takes no other fields, remove "{" ".join(fields[1:])}"'
    return None


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> tuple[CronSchedule | None, tuple[Problem, ...]]:
    # Memoized: a job's schedule is parsed when it is validated, rendered and read back, and
    # a tool's jobs share few schedule texts. Results are immutable, so sharing them is safe.
    fields = text.split()
    if fields and fields[0].startswith("@"):
        problem = _macro_problem(fields)
        return None, () if problem is None else (Problem("", problem),)
    if fields and fields[0].upper().startswith(("TZ=", "CRON_TZ=")):
        prefix = fields[0].split("=", 1)[0]
        message = f'"{fields[0]}": {prefix}= prefixes are not supported, set the job\'s timezone'
        return None, (Problem("", message + " field instead"),)
    if len(fields) != 5:
        message = f"expected 5 fields ({_FIELD_NAMES}), got {len(fields)}"
        return None, (Problem("", message),)
    errors: list[str] = []
    parsed = [_parse_field(spec, text, errors) for spec, text in zip(_FIELDS, fields, strict=True)]
    if errors:
        return None, tuple(Problem("", error) for error in errors)
    schedule = CronSchedule(
        text=" ".join(fields),
        minutes=parsed[0][0],
        hours=parsed[1][0],
        days=parsed[2][0],
        months=parsed[3][0],
        weekdays=parsed[4][0],
        day_restricted=parsed[2][1],
        weekday_restricted=parsed[4][1],
    )
    never = _never_fires(schedule)
    return (None, (Problem("", never),)) if never else (schedule, ())


def schedule_problems(text: str) -> list[Problem]:
    """Every problem with ``text`` (empty paths, for the caller to prefix); [] when valid."""
    return list(_parse(text)[1])


def parse_cron(text: str) -> CronSchedule:
    """Parse 5-field cron text; macros must go through ``expand_schedule`` first."""
    schedule, problems = _parse(text)
    if problems:
        raise InvalidScheduleError(problems)
    if schedule is None:
        message = f'"{text.strip()}" must be spread for a job first, with expand_schedule()'
        raise InvalidScheduleError([Problem("", message)])
    return schedule


def expand_schedule(text: str, *, tool: str, job: str) -> str:
    """A macro spread for (tool, job); any other text with its whitespace collapsed."""
    normalised = " ".join(text.split())
    macro = normalised.lower()
    if macro not in MACROS:
        return normalised
    # A stable hash (never ``hash()`` or ``random``): the slot must survive restarts and hosts.
    digest = hashlib.sha256(f"{tool}\0{job}".encode()).digest()
    seed = int.from_bytes(digest[:8], "big")
    seed, minute = divmod(seed, 60)
    seed, hour = divmod(seed, 24)
    seed, day = divmod(seed, 28)  # 1..28 exist in every month, February included
    seed, month = divmod(seed, 12)
    weekday = seed % 7
    spread = {
        "@hourly": f"{minute} * * * *",
        "@daily": f"{minute} {hour} * * *",
        "@midnight": f"{minute} {hour} * * *",
        "@weekly": f"{minute} {hour} * * {weekday}",
        "@monthly": f"{minute} {hour} {day + 1} * *",
        "@yearly": f"{minute} {hour} {day + 1} {month + 1} *",
        "@annually": f"{minute} {hour} {day + 1} {month + 1} *",
    }
    return spread[macro]


def kubernetes_schedule(text: str, *, tool: str, job: str) -> str:
    """The text to put in a CronJob: spread and validated, weekday 7 written as 0.

    Kubernetes' parser only knows weekdays 0 to 6, so entries naming 7 are rewritten as the
    explicit days they mean; ``*`` entries are kept, which keeps the day rule unchanged.
    """
    expanded = expand_schedule(text, tool=tool, job=job)
    if expanded != " ".join(text.split()):
        return expanded  # a spread macro: valid by construction, its weekday is 0 to 6
    fields = parse_cron(expanded).text.split()
    entries = []
    for entry in fields[4].split(","):
        parsed = _parse_entry(_DOW, entry, [])
        if parsed is not None and 7 in parsed[0]:
            entry = ",".join(str(day) for day in sorted({v % 7 for v in parsed[0]}))
        entries.append(entry)
    return " ".join([*fields[:4], ",".join(entries)])


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        message = f'unknown time zone "{tz}", use an IANA name such as "Europe/Berlin" or "UTC"'
        raise InvalidInputError([Problem("timezone", message)]) from None


def next_fire(
    schedule: str, *, after: datetime, tz: str | None = None, tool: str = "", job: str = ""
) -> datetime:
    """The first fire of ``schedule`` strictly after ``after``, in ``tz`` (None means UTC)."""
    return parse_cron(expand_schedule(schedule, tool=tool, job=job)).next_after(after, _zone(tz))


def previous_fire(
    schedule: str, *, before: datetime, tz: str | None = None, tool: str = "", job: str = ""
) -> datetime | None:
    """The last fire of ``schedule`` at or before ``before``, in ``tz`` (None means UTC)."""
    cron = parse_cron(expand_schedule(schedule, tool=tool, job=job))
    return cron.previous_before(before, _zone(tz))
