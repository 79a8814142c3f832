"""Cron schedules in a time zone, with the daylight-saving rules written down and tested.

Five fields (minute hour day-of-month month day-of-week), as in cron and Dagster's
ScheduleDefinition(cron_schedule=..., execution_timezone=...): `*`, `a-b`, `*/n`, `a-b/n`,
lists, month and weekday names, weekday 0 or 7 for Sunday. When both day fields are restricted a
day matches either (cron's rule). Times are wall-clock times in the schedule's zone:
- a wall time that does not exist that day (clocks go forward) runs once, at the first valid
  instant after the gap (01:30 on the spring change in London runs at 02:00 BST);
- a wall time that occurs twice (clocks go back) runs once, at its first occurrence.

The `schedule` package has neither cron syntax, day-of-month fields nor time zones, hence this
module.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_NAMES = {
    3: {m: i for i, m in enumerate(_MONTHS, start=1)},
    4: {d: i for i, d in enumerate(_WEEKDAYS)},
}
_SEARCH_DAYS = 366 * 8  # covers 29 February schedules


class CronError(ValueError):
    """A cron expression that does not parse; says which field and why."""


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise CronError(f"{_FIELDS[index][0]}: {text!r} is not a number")
    return int(text)


def _parse_field(text: str, index: int) -> frozenset[int]:
    name, low, high = _FIELDS[index]
    values: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"(\*|[\w]+(?:-[\w]+)?)(?:/(\d+))?", part)
        if not m:
            raise CronError(f"{name}: cannot read {part!r}")
        span, step = m[1], int(m[2]) if m[2] else 1
        if step < 1:
            raise CronError(f"{name}: step must be at least 1")
        if span == "*":
            start, end = low, high
        elif "-" in span:
            start, end = (_value(v, index) for v in span.split("-"))
        else:
            start = end = _value(span, index)
            if m[2]:
                end = high
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:  # Sunday is 0 and 7
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in an IANA time zone."""

    expression: str
    timezone: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str, timezone: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        minutes, hours, days, months, weekdays = (_parse_field(t, i) for i, t in enumerate(fields))
        ZoneInfo(timezone)  # raises for an unknown zone
        return cls(
            expression, timezone, minutes, hours, days, months, weekdays,
            days_restricted=fields[2] != "*", weekdays_restricted=fields[4] != "*",
        )  # fmt: skip

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def _instant(self, day: dt.date, hour: int, minute: int) -> dt.datetime:
        """The UTC instant of a wall time in the zone, by the rules in the module docstring."""
        wall = dt.datetime(day.year, day.month, day.day, hour, minute)
        zone = self.zone
        first = wall.replace(tzinfo=zone, fold=0)
        if first.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return first.astimezone(dt.UTC)  # exists (if twice, this is the first occurrence)
        # In a gap: the valid instants around it are wall-with-the-later-offset (before the gap)
        # and wall-with-the-earlier-offset (after it); the transition lies between, find it.
        before = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
        after = first.astimezone(dt.UTC)
        offset_after = after.astimezone(zone).utcoffset()
        while (after - before) > dt.timedelta(seconds=1):
            middle = before + (after - before) / 2
            if middle.astimezone(zone).utcoffset() == offset_after:
                after = middle
            else:
                before = middle
        return after.replace(microsecond=0)  # transitions fall on whole seconds

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first scheduled instant strictly after `moment` (aware), in UTC."""
        day = moment.astimezone(self.zone).date() - dt.timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        instant = self._instant(day, hour, minute)
                        if instant > moment:
                            return instant
            day += dt.timedelta(days=1)
        raise CronError(f"{self.expression!r} never matches a real day")

    def previous_before(self, moment: dt.datetime, within: dt.timedelta) -> list[dt.datetime]:
        """Every scheduled instant in (moment - within, moment], oldest first."""
        found, cursor = [], moment - within
        while (instant := self.next_after(cursor)) <= moment:
            found.append(instant)
            cursor = instant
        return found

    def describe(self) -> str:
        """The schedule in words, for `runner.py jobs`."""
        if len(self.hours) == 1 and len(self.minutes) == 1:
            when = f"at {min(self.hours):02d}:{min(self.minutes):02d}"
        else:
            when = f"cron {self.expression!r}"
            return f"{when} ({self.timezone})"
        parts = self.expression.split()
        if parts[2] == "*" and parts[4] == "*" and parts[3] == "*":
            days = "every day"
        elif parts[4] == "*" and parts[3] == "*":
            days = f"on day {parts[2]} of every month"
        elif parts[2] == "*" and parts[3] == "*":
            days = f"on weekdays {parts[4]}"
        else:
            days = f"on days matching {' '.join(parts[2:])}"
        return f"{when} {days} ({self.timezone})"
