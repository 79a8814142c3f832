"""Cron schedules in a time zone, evaluated by cronsim with Debian cron's daylight-saving rules.

Five fields (minute hour day-of-month month day-of-week), as in cron and Dagster's
ScheduleDefinition(cron_schedule=..., execution_timezone=...): `*`, `a-b`, `*/n`, `a-b/n`, lists,
month and weekday names, weekday 0 or 7 for Sunday, `L` for the last day; when both day fields
are restricted a day matches either (cron's rule). Times are wall-clock times in the schedule's
zone, and the clock changes follow Debian cron (cronsim, by healthchecks.io, reproduces it):
- a job at a fixed time (both minute and hour fields fixed) that falls in the spring gap runs
  once, at the first valid instant after it (01:30 on the spring change in London runs at 02:00
  BST); one that falls in the repeated autumn hour runs once, at its first occurrence;
- a job whose minute or hour field is a wildcard or a step (`0 * * * *`, `*/30 * * * *`) runs at
  every instant that matches, so in the repeated autumn hour it runs in both occurrences, and
  nothing is run for the hour that does not exist in spring.

Why not the `schedule` package: it has `.at("HH:MM", tz)`, but no day-of-month, no persistence
and no catch-up of ticks missed while the process was down, which the scheduler needs. croniter
runs a fixed-time job twice in the repeated autumn hour, so it is not used either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRONSIM_NAMES = {
    "minute": "minute", "hour": "hour", "day-of-month": "day of month", "month": "month",
    "day-of-week": "day of week",
}  # fmt: skip


class CronError(ValueError):
    """A cron expression or zone that cannot be used; says which field and why."""


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression in an IANA time zone."""

    expression: str
    timezone: str
    _probe: CronSim = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(
                f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"unknown time zone {timezone!r}") from None
        try:
            probe = CronSim(expression, dt.datetime(2026, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            name = _CRONSIM_NAMES.get(str(exc).removeprefix("Bad "), "")
            if name:
                value = fields[_FIELDS.index(name)]
                raise CronError(f"{name}: {value!r} is not valid in {expression!r}") from None
            raise CronError(f"{expression!r}: {exc}") from None
        return cls(expression, timezone, probe)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first scheduled instant strictly after `moment` (aware), in UTC."""
        # cronsim walks wall-clock time for fixed-time jobs: a moment in the repeated autumn
        # hour can yield the first occurrence of a wall time that has passed; skip such.
        for found in CronSim(self.expression, moment.astimezone(self.zone)):
            instant = found.astimezone(dt.UTC)
            if instant > moment:
                return instant
        raise CronError(f"{self.expression!r} never matches a real day")  # pragma: no cover

    def previous_before(self, moment: dt.datetime, within: dt.timedelta) -> list[dt.datetime]:
        """Every scheduled instant in (moment - within, moment], oldest first."""
        found, cursor = [], moment - within
        while (instant := self.next_after(cursor)) <= moment:
            found.append(instant)
            cursor = instant
        return found

    def describe(self) -> str:
        """The schedule in words, for `runner.py jobs`."""
        minutes, hours = self._probe.minutes, self._probe.hours
        if len(hours) != 1 or len(minutes) != 1:
            return f"cron {self.expression!r} ({self.timezone})"
        when = f"at {min(hours):02d}:{min(minutes):02d}"
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
