"""When today's data will be current: each input's usual arrival learnt from history, the job's
expected finish against its deadline, and the early warning for an input later than usual.

A query over the arrival log (daybreak.runner.arrival), the run history and the freshness
policies, nothing of its own. Policies (tested in tests/test_arrival.py):
- An input's usual arrival is the time of day (in the job's zone) of its first file each day,
  over the last `[arrival] learn_weeks` weeks: the median, and the spread from the lower to the
  upper quartile. Same weekday first (Mondays can differ); with fewer than 3 such days, every
  day; with fewer than 3 days at all, it is not known yet, and said so.
- The job is expected current when its inputs are there (all of them, or the first, by its
  `wait`; at most its `latest`), plus the settle and debounce waits, plus the median of its last
  successful runs.
- An input with no file since the window opened is late once the upper end of its usual time
  plus `[arrival] late_minutes` has passed: alerted once a day, naming the input, the file
  expected (the last file's name with the date moved on) and the deadline at risk.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from daybreak import clock
from daybreak.config import JobConfig, Settings
from daybreak.runner.alerts import Alerter
from daybreak.runner.arrival import Arrival, ArrivalLog, cycle
from daybreak.runner.history import History, iso

MIN_DAYS = 3  # days of history before a usual time is claimed


@dataclass(frozen=True)
class Usual:
    """An input's usual arrival, as minutes after midnight in the job's zone."""

    median: float
    low: float
    high: float
    days: int
    weekday: bool  # learnt from the same weekday only


def _hhmm(minutes: float) -> str:
    whole = round(minutes) % 1440
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _first_per_day(arrivals: list[Arrival], zone: ZoneInfo) -> dict[dt.date, float]:
    firsts: dict[dt.date, float] = {}
    for a in arrivals:
        local = a.landed_at.astimezone(zone)
        minutes = local.hour * 60 + local.minute + local.second / 60
        day = local.date()
        if day not in firsts or minutes < firsts[day]:
            firsts[day] = minutes
    return firsts


def usual(arrivals: list[Arrival], zone: ZoneInfo, day: dt.date) -> Usual | None:
    """From `arrivals` of one input (the learning weeks, before `day`): its usual time on `day`."""
    firsts = {d: m for d, m in _first_per_day(arrivals, zone).items() if d < day}
    same = [m for d, m in firsts.items() if d.weekday() == day.weekday()]
    weekday = len(same) >= MIN_DAYS
    chosen = same if weekday else list(firsts.values())
    if len(chosen) < MIN_DAYS:
        return None
    low, median, high = statistics.quantiles(chosen, n=4, method="inclusive")
    return Usual(median, low, high, len(chosen), weekday)


def expected_file(last: Arrival | None, zone: ZoneInfo, day: dt.date) -> str | None:
    """The file an input should bring on `day`: its last file with the date in the name moved on
    by the days since (a daily file), or a new version of the same file."""
    if last is None:
        return None
    found = list(re.finditer(r"(?<!\d)(\d{8})(?!\d)", last.blob))
    if not found:
        return last.blob
    match = found[-1]
    try:
        named = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return last.blob
    lag = last.landed_at.astimezone(zone).date() - named
    expect = day - lag
    name = last.blob[: match.start()] + f"{expect:%Y%m%d}" + last.blob[match.end() :]
    return name.replace(f"/{named.year}/", f"/{expect.year}/")


@dataclass
class InputEta:
    """One input of an arrival job today."""

    asset: str
    state: str  # landed | settling | missing | late
    landed_at: str | None = None
    files: int = 0
    usual_from: str | None = None  # HH:MM in the job's zone
    usual_to: str | None = None
    usual_days: int = 0
    expected_at: str | None = None
    late_minutes: int | None = None
    expected_file: str | None = None

    def text(self, zone: ZoneInfo) -> str:
        usual = (f"usually lands {self.usual_from}-{self.usual_to}" if self.usual_from
                 else "no usual time yet")  # fmt: skip
        if self.state == "landed" and self.landed_at:
            at = dt.datetime.fromisoformat(self.landed_at).astimezone(zone)
            return f"{self.asset} landed {at:%H:%M}"
        if self.state == "settling":
            return f"{self.asset} is landing (a file is still being written)"
        if self.state == "late":
            return (f"{self.asset} missing, {self.late_minutes} min late (usually by "
                    f"{self.usual_to})")  # fmt: skip
        return f"{self.asset} {usual}" if self.usual_from else f"{self.asset} missing ({usual})"


@dataclass
class JobEta:
    """An arrival job today: its inputs, when it is expected current, and by when it must be."""

    job: str
    timezone: str
    day: str
    window: str
    latest: str
    wait: str
    inputs: list[InputEta] = field(default_factory=list)
    run_seconds: float | None = None
    current_since: str | None = None
    running_since: str | None = None
    expected_current_at: str | None = None
    deadline: str | None = None
    deadline_asset: str | None = None
    at_risk: bool = False
    sentence: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _median_run(history: History, job: str) -> float | None:
    seconds = [r.seconds for r in history.runs(job=job, limit=30)
               if r.status == "success" and r.seconds is not None][:10]  # fmt: skip
    return statistics.median(seconds) if seconds else None


def _deadline(settings: Settings, job: JobConfig, start: dt.datetime,
              assets: dict[str, Any] | None) -> tuple[str | None, dt.datetime | None]:  # fmt: skip
    """The first freshness deadline after the window opened among what the job builds."""
    from daybreak.assets import catalogue

    try:
        if assets is None:
            assets = catalogue.catalogue(catalogue.build_driver(settings))
        chosen = catalogue.with_upstream(assets, catalogue.select(assets, job.select))
    except Exception:  # a broken graph: `check` says why; no deadline to compare with
        return None, None
    found: list[tuple[dt.datetime, str]] = []
    for name in chosen:
        policy = settings.freshness.get(name)
        if policy is None or policy.deadline is None:
            continue
        zone = ZoneInfo(policy.timezone)
        local = start.astimezone(zone)
        hour, minute = (int(x) for x in policy.deadline.split(":"))
        at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at < local:
            at += dt.timedelta(days=1)
        found.append((at, name))
    if not found:
        return None, None
    at, name = min(found)
    return name, at


def job_eta(
    settings: Settings, history: History, name: str, now: dt.datetime | None = None,
    *, with_deadline: bool = True, assets: dict[str, Any] | None = None,
) -> JobEta:  # fmt: skip
    """Where arrival job `name` stands today (see the module docstring); `assets`: the catalogue,
    if the caller has it (for the deadlines of what the job builds)."""
    now = now or clock.now()
    job = settings.jobs[name]
    zone = ZoneInfo(job.timezone)
    span = cycle(job, now)
    log = ArrivalLog(settings.state)
    weeks = dt.timedelta(weeks=settings.arrival.learn_weeks)
    learnt = log.since(span.start - weeks, job.on_arrival)
    settling = log.settling(job.on_arrival)
    late_after = dt.timedelta(minutes=settings.arrival.late_minutes)
    eta = JobEta(name, job.timezone, span.day.isoformat(), job.window, job.latest_time, job.wait)
    ready: list[dt.datetime | None] = []
    for asset in job.on_arrival:
        mine = [a for a in learnt if a.asset == asset]
        today = [a for a in mine if a.landed_at >= span.start or a.arrived_at >= span.start]
        before = [a for a in mine if a not in today]
        known = usual(before, zone, span.day)
        entry = InputEta(asset, "missing")
        if known is not None:
            entry.usual_from, entry.usual_to = _hhmm(known.low), _hhmm(known.high)
            entry.usual_days = known.days
        if today:
            first = min(today, key=lambda a: a.landed_at)
            entry.state, entry.landed_at, entry.files = "landed", iso(first.landed_at), len(today)
            ready.append(first.landed_at)
        elif asset in settling:
            entry.state = "settling"
            ready.append(now)
        else:
            entry.expected_file = expected_file(before[-1] if before else None, zone, span.day)
            if known is None:
                ready.append(None)
            else:
                usual_at = span.start.replace(hour=0, minute=0) + dt.timedelta(
                    minutes=known.median)  # fmt: skip
                top = span.start.replace(hour=0, minute=0) + dt.timedelta(minutes=known.high)
                if usual_at < span.start:  # lands after midnight of a window that crosses it
                    usual_at, top = usual_at + dt.timedelta(days=1), top + dt.timedelta(days=1)
                entry.expected_at = iso(max(usual_at, now))
                if now >= top + late_after:
                    entry.state, entry.late_minutes = "late", int((now - top).total_seconds() // 60)
                ready.append(max(usual_at, now))
        eta.inputs.append(entry)
    eta.run_seconds = _median_run(history, name)
    runs = history.runs(job=name, limit=10)
    running = next((r for r in runs if r.status == "running"), None)
    landed = [dt.datetime.fromisoformat(i.landed_at) for i in eta.inputs if i.landed_at]
    all_in = all(i.state == "landed" for i in eta.inputs)
    since = max(landed) if landed else None
    done = next((r for r in runs if r.status == "success" and since is not None
                 and dt.datetime.fromisoformat(r.started_at) >= since), None)  # fmt: skip
    expected: dt.datetime | None = None
    if done is not None and (all_in or job.wait == "any"):
        eta.current_since = done.ended_at
    elif running is not None:
        eta.running_since = running.started_at
        expected = dt.datetime.fromisoformat(running.started_at) + dt.timedelta(
            seconds=eta.run_seconds or 0)  # fmt: skip
    else:
        known_ready = [r for r in ready if r is not None]
        inputs_at: dt.datetime | None = None
        if job.wait == "any" and known_ready:
            inputs_at = min(known_ready)
        elif known_ready and len(known_ready) == len(ready):
            inputs_at = max(known_ready)
        if inputs_at is None and now < span.latest and None in ready and job.wait == "all":
            inputs_at = span.latest  # an input of unknown habit: at the latest, it runs anyway
        if inputs_at is not None:
            inputs_at = min(inputs_at, max(span.latest, now))
            waits = settings.arrival.settle_seconds + settings.arrival.debounce_seconds
            expected = max(inputs_at, now) + dt.timedelta(
                seconds=waits + (eta.run_seconds or 0))  # fmt: skip
    if expected is not None:
        eta.expected_current_at = iso(expected)
    if with_deadline:
        eta.deadline_asset, deadline = _deadline(settings, job, span.start, assets)
        if deadline is not None:
            eta.deadline = deadline.isoformat()
            eta.at_risk = eta.current_since is None and (
                expected is None or expected > deadline or any(
                    i.state == "late" for i in eta.inputs))  # fmt: skip
    eta.sentence = _sentence(eta, zone)
    return eta


def _sentence(eta: JobEta, zone: ZoneInfo) -> str:
    parts = "; ".join(i.text(zone) for i in eta.inputs)
    if eta.current_since:
        at = dt.datetime.fromisoformat(eta.current_since).astimezone(zone)
        tail = f"current since {at:%H:%M}"
    elif eta.expected_current_at:
        at = dt.datetime.fromisoformat(eta.expected_current_at).astimezone(zone)
        tail = f"expected current at {at:%H:%M}" + (" (running)" if eta.running_since else "")
    else:
        tail = "no estimate yet (no usual arrival time learnt)"
    if eta.deadline:
        due = dt.datetime.fromisoformat(eta.deadline).astimezone(zone)
        tail += f"; deadline {due:%H:%M}" + (" AT RISK" if eta.at_risk else "")
    return f"{eta.job}: {parts}; {tail}"


def waiting_for(eta: JobEta) -> list[str]:
    """The inputs not landed today, as `plan` and `why` say them."""
    found = []
    for entry in eta.inputs:
        if entry.state == "landed":
            continue
        if entry.state == "settling":
            found.append(f"waiting for {entry.asset} (landing now: a file is settling)")
            continue
        usual = f"usually lands by {entry.usual_to}" if entry.usual_to else "no usual time yet"
        late = f"; {entry.late_minutes} min late" if entry.late_minutes else ""
        found.append(f"waiting for {entry.asset} ({usual}{late})")
    return found


def warn_late(
    settings: Settings, history: History, now: dt.datetime, alerter: Alerter,
    assets: dict[str, Any] | None = None,
) -> list[str]:  # fmt: skip
    """Alert (once a day) every input of an arrival job later than usual; return them
    (`assets`: the catalogue, for the deadline at risk, if the caller has it)."""
    late = []
    for name, job in settings.jobs.items():
        if not job.on_arrival:
            continue
        eta = None
        for entry in job_eta(settings, history, name, now, with_deadline=False).inputs:
            if entry.state != "late":
                continue
            if eta is None:  # the deadline only when there is something to say
                eta = job_eta(settings, history, name, now, assets=assets)
            alerter.input_late(name, entry.asset, eta.day, entry.usual_to, entry.late_minutes,
                               entry.expected_file, eta.deadline_asset, eta.deadline,
                               eta.expected_current_at)  # fmt: skip
            late.append(entry.asset)
    return late
