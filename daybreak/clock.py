"""The one clock: everything in daybreak that asks what time or day it is asks here.

Production reads the system clock. Tests install a `FixedClock` (tests/conftest.py does so for
every test) and move it, so no assertion depends on the day the suite runs. Durations are
measured with time.monotonic(), which is not a date and is not routed through here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that starts at a given instant and, with `tick`, moves on with real time.

    A ticking clock keeps the order of events (run ids, "latest run") that a frozen one would
    make ambiguous; `set` and `advance` jump it.
    """

    def __init__(self, at: dt.datetime, *, tick: bool = True) -> None:
        self.tick = tick
        self.set(at)

    def set(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(dt.UTC)
        self._since = time.monotonic()

    def advance(self, delta: dt.timedelta) -> None:
        self.set(self.now() + delta)

    def now(self) -> dt.datetime:
        if not self.tick:
            return self._at
        return self._at + dt.timedelta(seconds=time.monotonic() - self._since)


_current: Clock = SystemClock()


def now() -> dt.datetime:
    """The current instant (aware, UTC) by the installed clock."""
    return _current.now()


def today(zone: str | None = None) -> dt.date:
    """Today's date in `zone` (default: this machine's zone) by the installed clock."""
    moment = now()
    return (moment.astimezone(ZoneInfo(zone)) if zone else moment.astimezone()).date()


def stamp(fine: bool = False) -> str:
    """A sortable UTC timestamp for file names: 20261125T061500Z (fine: with microseconds)."""
    return now().strftime("%Y%m%dT%H%M%S%fZ" if fine else "%Y%m%dT%H%M%SZ")


def install(clock: Clock) -> Clock:
    """Make `clock` the one every caller reads; returns the one it replaced."""
    global _current
    previous, _current = _current, clock
    return previous


@contextlib.contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """`clock` for the duration of the block."""
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)
