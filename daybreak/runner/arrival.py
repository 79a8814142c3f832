"""Arrival-driven jobs: run a job when its input files land, not only when the clock says.

A job with `on_arrival = [ingestion assets]` is watched. Every `[arrival] poll_seconds` the
watcher asks each of those assets, in dry-run mode, which files its sync would take now: the same
listing (names, ETags, sizes; nothing downloaded) and the same rules (window, refused names) that
`plan` uses, on the local folder and on Azure alike. Policies (tested in tests/test_arrival.py):
- Settling. A listed file is arrived once it has not changed for `settle_seconds`: its last
  modification is that old, or the same ETag and size were seen that long ago. A file still being
  written (its size or ETag changes between polls) starts settling again.
- One arrival per file version. Arrivals are an append-only log in the state database, unique by
  (asset, file, ETag): a file that stays pending (a bad file in quarantine) or a restart never
  makes a second arrival; a new version of the file does.
- A cursor per job: the last arrival a run of the job has taken. The run and its cursor are
  recorded in one transaction (History.start_run), so a kill between them neither loses nor
  repeats an arrival; a run that was interrupted (the process died) gives its arrivals back, so
  the next runner runs them again.
- When to run (in the job's `timezone`): inside `window` and before `latest`, `wait = "all"`
  waits until every input has an arrival not yet run, `"any"` for one. At `latest` the job runs
  with what has arrived and names the inputs still missing (and alerts them, once). After
  `latest`, and outside the window, every arrival runs the job: a market that lands late still
  reaches the mart the same morning.
- Debounce: a run starts only once no arrival came for `debounce_seconds`, so files landing a
  minute apart make one run. An arrival while the job runs (here, or in another process: a
  `runner.py run`, a backfill) waits for it, and then makes exactly one follow-up run with every
  arrival since.
- A backfill never triggers arrival runs: the files it syncs are no longer pending, so they never
  arrive; and nothing starts while it runs.

The extension point for push notifications (Azure Event Grid `BlobCreated`, a storage queue) is
`ArrivalLog.observe`: a subscriber would call it with the blobs an event names, and everything
after (settling, cursors, decisions) stays as it is. Polling needs no Azure resources, works on
the local folder and is what is built.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from hamilton import driver

from daybreak.config import JobConfig, Settings, minutes_of
from daybreak.ingest.sources import BlobInfo
from daybreak.logs import redact
from daybreak.runner.history import History, iso, move_cursor
from daybreak.state import StateDb, StateLayout

log = logging.getLogger(__name__)

TRIGGER = "arrival"


@dataclass(frozen=True)
class Arrival:
    """One settled file version: when it landed (its last modification, or when the watcher
    first saw it if that is earlier) and when the watcher counted it as arrived."""

    seq: int
    asset: str
    blob: str
    etag: str
    size: int
    landed_at: dt.datetime
    arrived_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "asset": self.asset, "blob": self.blob, "size": self.size,
                "landed_at": iso(self.landed_at), "arrived_at": iso(self.arrived_at)}  # fmt: skip


def _arrival(row: Any) -> Arrival:
    return Arrival(
        row["seq"], row["asset"], row["blob"], row["etag"], row["size"],
        dt.datetime.fromisoformat(row["landed_at"]), dt.datetime.fromisoformat(row["arrived_at"]),
    )  # fmt: skip


class ArrivalLog:
    """The arrival tables of the state database: files settling, arrivals, job cursors."""

    def __init__(self, layout: StateLayout) -> None:
        self.db = StateDb(layout)

    def observe(
        self, asset: str, listed: Iterable[BlobInfo], now: dt.datetime, settle: dt.timedelta
    ) -> list[Arrival]:
        """Take one listing of the files `asset`'s sync would take; return those that arrived
        now. Files no longer listed (synced, or deleted upstream) stop being watched."""
        arrived: list[Arrival] = []
        with self.db.transaction() as con:
            watched = {r["blob"]: r for r in con.execute(
                "SELECT * FROM arrival_watch WHERE asset = ?", (asset,))}  # fmt: skip
            seen: set[str] = set()
            for blob in listed:
                seen.add(blob.name)
                row = watched.get(blob.name)
                modified = blob.last_modified.astimezone(dt.UTC)
                if row is None or row["etag"] != blob.etag or row["size"] != blob.size:
                    first_seen, seen_before = now, False
                    con.execute(
                        "INSERT OR REPLACE INTO arrival_watch (asset, blob, etag, size, "
                        "last_modified, first_seen) VALUES (?, ?, ?, ?, ?, ?)",
                        (asset, blob.name, blob.etag, blob.size, iso(modified), iso(now)),
                    )
                else:
                    first_seen, seen_before = dt.datetime.fromisoformat(row["first_seen"]), True
                quiet = now - modified >= settle or (seen_before and now - first_seen >= settle)
                if not quiet:
                    continue
                landed = min(modified, first_seen)
                cursor = con.execute(
                    "INSERT OR IGNORE INTO arrivals (asset, blob, etag, size, landed_at, "
                    "arrived_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (asset, blob.name, blob.etag, blob.size, iso(landed), iso(now)),
                )
                if cursor.rowcount:
                    arrived.append(Arrival(int(cursor.lastrowid or 0), asset, blob.name,
                                           blob.etag, blob.size, landed, now))  # fmt: skip
            gone = [name for name in watched if name not in seen]
            con.executemany(
                "DELETE FROM arrival_watch WHERE asset = ? AND blob = ?",
                [(asset, name) for name in gone],
            )
        return arrived

    def settling(self, assets: Iterable[str]) -> dict[str, list[str]]:
        """Files seen but not yet arrived, by asset (being written, or not yet settled)."""
        wanted = list(assets)
        found: dict[str, list[str]] = {}
        with self.db.transaction() as con:
            rows = con.execute(
                "SELECT w.asset, w.blob FROM arrival_watch w WHERE NOT EXISTS (SELECT 1 FROM "
                "arrivals a WHERE a.asset = w.asset AND a.blob = w.blob AND a.etag = w.etag) "
                f"AND w.asset IN ({','.join('?' * len(wanted))}) ORDER BY w.blob",
                wanted,
            ).fetchall()
        for row in rows:
            found.setdefault(row["asset"], []).append(row["blob"])
        return found

    def after(self, seq: int, assets: Iterable[str]) -> list[Arrival]:
        """Arrivals of `assets` after `seq` (a job's cursor), oldest first."""
        wanted = list(assets)
        with self.db.transaction() as con:
            rows = con.execute(
                f"SELECT * FROM arrivals WHERE seq > ? AND asset IN ({','.join('?' * len(wanted))})"
                " ORDER BY seq",
                (seq, *wanted),
            ).fetchall()
        return [_arrival(r) for r in rows]

    def since(self, moment: dt.datetime, assets: Iterable[str]) -> list[Arrival]:
        """Arrivals of `assets` that landed at or after `moment`, oldest first."""
        wanted = list(assets)
        with self.db.transaction() as con:
            rows = con.execute(
                f"SELECT * FROM arrivals WHERE asset IN ({','.join('?' * len(wanted))}) "
                "AND landed_at >= ? ORDER BY landed_at, seq",
                (*wanted, iso(moment)),
            ).fetchall()
        return [_arrival(r) for r in rows]

    def cursor(self, job: str) -> tuple[int, str | None]:
        """The last arrival a run of `job` took (0: none yet) and the `latest` it last handled."""
        with self.db.transaction() as con:
            row = con.execute(
                "SELECT seq, latest_done FROM arrival_cursors WHERE job = ?", (job,)
            ).fetchone()
            if row is None:  # a job watched for the first time starts from what is there now
                return 0, None
        return int(row["seq"]), row["latest_done"]

    def set_cursor(self, job: str, seq: int | None = None, latest_done: str | None = None) -> None:
        with self.db.transaction() as con:
            move_cursor(con, job, seq=seq, latest_done=latest_done)


# -- the day of an arrival job -------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """The window occurrence that started last (in the job's zone): when it opened, when the
    job stops waiting (latest), when it closes."""

    start: dt.datetime
    latest: dt.datetime
    end: dt.datetime

    @property
    def day(self) -> dt.date:
        return self.start.date()


def cycle(job: JobConfig, now: dt.datetime) -> Cycle:
    zone = ZoneInfo(job.timezone)
    local = now.astimezone(zone)
    start_text, end_text = job.window.split("-")
    start_min = minutes_of(start_text)

    def wall(day: dt.date, minutes: int) -> dt.datetime:
        # Wall times through the zone: a window over a clock change keeps its wall times.
        naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)
        return naive.replace(tzinfo=zone)

    day = local.date()
    if wall(day, start_min) > local:
        day -= dt.timedelta(days=1)
    span = (minutes_of(end_text) - start_min) % 1440
    until_latest = (minutes_of(job.latest_time) - start_min) % 1440 or span
    return Cycle(wall(day, start_min), wall(day, start_min + until_latest),
                 wall(day, start_min + span))  # fmt: skip


@dataclass
class Trigger:
    """A decision to run an arrival job now: the files that arrived, and what is missing."""

    job: str
    reason: str  # "all arrived" | "arrived" | "latest" | "late arrival"
    files: list[Arrival]
    missing: list[str] = field(default_factory=list)
    latest: dt.datetime | None = None

    def detail(self) -> dict[str, Any]:
        """What the run records of its trigger (and the cursor it moves: History.start_run)."""
        shown = self.files[:50]
        return {
            "reason": self.reason,
            "files": [
                {"asset": a.asset, "blob": a.blob, "landed_at": iso(a.landed_at)} for a in shown
            ],
            "more_files": len(self.files) - len(shown),
            "inputs": sorted({a.asset for a in self.files}),
            "missing": self.missing,
            "latest": iso(self.latest),
            "cursor": {
                "job": self.job,
                "from_seq": min((a.seq for a in self.files), default=0),
                "to_seq": max((a.seq for a in self.files), default=0),
            },
        }

    def sentence(self) -> str:
        inputs = ", ".join(sorted({a.asset for a in self.files})) or "nothing"
        text = f"{len(self.files)} file(s) arrived for {inputs}"
        if self.reason == "latest":
            text += f"; at its latest ({self.latest:%H:%M %Z})" if self.latest else ""
            text += f", still missing: {', '.join(self.missing)}" if self.missing else ""
        return text


def decide(
    name: str,
    job: JobConfig,
    pending: list[Arrival],
    today: list[Arrival],
    latest_done: str | None,
    now: dt.datetime,
    debounce: dt.timedelta,
) -> tuple[Trigger | None, list[str] | None]:
    """Whether `job` runs now, from its arrivals not yet run (`pending`) and those that landed
    since its window opened (`today`). Also returns, once per day at `latest`, the inputs still
    missing then (None otherwise)."""
    span = cycle(job, now)
    quiet = not pending or now - max(a.arrived_at for a in pending) >= debounce
    arrived = {a.asset for a in pending}
    missing_at_latest: list[str] | None = None
    if span.latest <= now and latest_done != iso(span.latest):
        seen = arrived | {a.asset for a in today}
        missing_at_latest = [a for a in job.on_arrival if a not in seen]
        if pending:
            return Trigger(name, "latest", pending, missing_at_latest, span.latest), (
                missing_at_latest)  # fmt: skip
        return None, missing_at_latest
    if not pending or not quiet:
        return None, None
    if now >= span.latest:  # after latest, or outside the window: every arrival runs it
        return Trigger(name, "late arrival", pending), None
    if job.wait == "any":
        return Trigger(name, "arrived", pending), None
    if all(a in arrived for a in job.on_arrival):
        return Trigger(name, "all arrived", pending), None
    return None, None


class ArrivalWatch:
    """The scheduler's eyes on its arrival jobs: poll the sources, decide which jobs run."""

    def __init__(self, settings: Settings, history: History,
                 build_driver: Any = None) -> None:  # fmt: skip
        self.settings = settings
        self.history = history
        self.log = ArrivalLog(settings.state)
        self.jobs = {n: j for n, j in settings.jobs.items() if j.on_arrival}
        self.assets = sorted({a for j in self.jobs.values() for a in j.on_arrival})
        self._build_driver = build_driver
        self._dr: driver.Driver | None = None
        self._failing: set[str] = set()  # assets whose listing failed (warned once)

    def _driver(self) -> driver.Driver:
        if self._dr is None:
            if self._build_driver is None:
                from daybreak.assets.catalogue import build_driver

                self._build_driver = build_driver
            self._dr = self._build_driver(self.settings)
        return self._dr

    def catalogue(self) -> dict[str, Any] | None:
        """The assets of the graph the watch lists with (None if it cannot be built)."""
        from daybreak.assets.catalogue import catalogue

        try:
            return catalogue(self._driver())
        except Exception:  # poll has said why
            return None

    def recover(self) -> list[str]:
        """At start: arrival runs the last runner left interrupted give their files back."""
        given_back = []
        for name in self.jobs:
            last = next((r for r in self.history.runs(job=name, limit=20)
                         if r.trigger == TRIGGER), None)  # fmt: skip
            if last is None or last.status != "interrupted":
                continue
            first = last.detail.get("cursor", {}).get("from_seq")
            seq, _ = self.log.cursor(name)
            if first and seq >= first:
                self.log.set_cursor(name, seq=first - 1)
                given_back.append(name)
                log.warning("%s: arrival run %s was interrupted; its files will run again",
                            name, last.run_id)  # fmt: skip
        return given_back

    def poll(self, now: dt.datetime) -> list[Arrival]:
        """List every watched source once; record and return what arrived."""
        from daybreak.runner.materialize import run_inputs
        from daybreak.runner.plan import sync_preview

        settle = dt.timedelta(seconds=self.settings.arrival.settle_seconds)
        inputs = {"settings": self.settings, **run_inputs()}
        found: list[Arrival] = []
        try:
            dr = self._driver()
        except Exception as exc:  # a broken dbt project, say: `check` names it; keep polling
            log.warning("arrival watch: the asset graph cannot be built: %s",
                        redact(f"{type(exc).__name__}: {exc}"))  # fmt: skip
            return found
        for asset in self.assets:
            try:
                report = sync_preview(dr, asset, inputs)
            except Exception as exc:  # Azure down: say so once, try again next poll
                if asset not in self._failing:
                    log.warning("arrival watch: %s cannot be listed: %s", asset,
                                redact(f"{type(exc).__name__}: {exc}"))  # fmt: skip
                self._failing.add(asset)
                continue
            if asset in self._failing:
                log.info("arrival watch: %s can be listed again", asset)
                self._failing.discard(asset)
            new = self.log.observe(asset, getattr(report, "pending_blobs", []), now, settle)
            for arrival in new:
                log.info("arrived: %s (%s)", arrival.blob, asset)
            found += new
        return found

    def busy(self, name: str) -> bool:
        """Whether a run of the job is going on in any process (a CLI run, a backfill)."""
        return any(r.status == "running" for r in self.history.runs(job=name, limit=5))

    def due(self, now: dt.datetime, running: set[str]) -> list[Trigger]:
        """The jobs to start now; alerts once for the inputs still missing at `latest`."""
        from daybreak.runner.alerts import Alerter, alert_urls

        debounce = dt.timedelta(seconds=self.settings.arrival.debounce_seconds)
        found = []
        for name, job in self.jobs.items():
            if name in running or self.busy(name):
                continue  # the run going on takes nothing new: one follow-up after it
            span = cycle(job, now)
            seq, latest_done = self.log.cursor(name)
            pending = self.log.after(seq, job.on_arrival)
            today = self.log.since(span.start, job.on_arrival)
            trigger, missing = decide(name, job, pending, today, latest_done, now, debounce)
            if missing is not None:
                if missing:
                    Alerter(self.settings.state, alert_urls(self.settings)).inputs_missing(
                        name, missing, span.latest
                    )
                if trigger is None:  # nothing to run at latest: remember it was handled
                    self.log.set_cursor(name, latest_done=iso(span.latest))
            if trigger is not None:
                found.append(trigger)
        return found

    def next_poll(self, last: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        if last is None:
            return now
        return last + dt.timedelta(seconds=self.settings.arrival.poll_seconds)
