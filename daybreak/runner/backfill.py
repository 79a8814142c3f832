"""Backfill a job over a range of days: re-sync those days' files and rebuild what they reach.

`runner.py backfill JOB --start D --end D` is one run in the history (trigger `backfill`, job
JOB). Its work is done in chunks of `chunk_days` days, oldest first; each chunk is a run of its
own, `part_of` the backfill, that re-syncs every dated file of its days (whatever their ETags)
and builds the job's dbt models, whose incremental models recompute only the market-days those
files touch. What publishes (exports, the warehouse backup: kinds in ONCE) runs once, after the
last chunk, through the job's ordinary plan.

Policies:
- Chunks are recorded before the first one runs; each records its status, run, rows and
  seconds when it ends. A backfill killed at any point (or one whose chunk failed) is taken up
  again by the same command, in the same history entry, from its first chunk not done; a chunk
  cut off half way is redone whole (its files are re-synced again: correct, a little work twice).
- A backfill of the same job and days that is still running in a live process is refused.
- It never writes the warehouse beside a scheduled run: every dbt build takes the warehouse
  writer lock (daybreak.warehouse.lock), which is one lock across processes. The lock is taken
  per chunk, not for the whole backfill, so a scheduled run waits at most one chunk's build.
- Progress (days done of total, rows, elapsed, an estimate of what is left) is computed from the
  chunk records alone, so the terminal, `status` and the page show the same numbers.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from filelock import FileLock

from daybreak import clock
from daybreak import progress as live
from daybreak.assets import catalogue
from daybreak.config import Settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.logs import redact
from daybreak.runner.alerts import Alerter, alert_urls
from daybreak.runner.cancel import CancelWatch, cancelled_error
from daybreak.runner.execute import ObserverFactory, RunOutcome, execute_run
from daybreak.runner.history import History, RunRecord, process_alive

log = logging.getLogger(__name__)

ONCE = frozenset({"export", "backup"})  # asset kinds that publish: once per backfill, at the end
MAX_DAYS = 3660  # ten years a command; a longer range is more likely a typo than a plan


@dataclass(frozen=True)
class Progress:
    """Where a backfill stands, from its chunk records."""

    backfill_id: str
    job: str | None
    start: str
    end: str
    status: str
    days_total: int
    days_done: int
    chunks_total: int
    chunks_done: int
    rows: int
    elapsed_seconds: float
    estimate_seconds: float | None  # what is left, at the pace so far
    current: str | None  # the days of the chunk running now
    failed_chunk: str | None

    @property
    def percent(self) -> int:
        return int(100 * self.days_done / self.days_total) if self.days_total else 100

    def line(self) -> str:
        left = ""
        if self.estimate_seconds is not None and self.days_done < self.days_total:
            left = f", about {duration(self.estimate_seconds)} left"
        now = f", now {self.current}" if self.current else ""
        return (f"backfill {self.job} {self.start}..{self.end}: {self.days_done}/{self.days_total} "
                f"days ({self.chunks_done}/{self.chunks_total} chunks), {self.rows:,} rows, "
                f"{duration(self.elapsed_seconds)} elapsed{left}{now}")  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 42 s, 12 min 05 s, 3 h 20 min."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 90:
        return f"{whole} s"
    if whole < 5400:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def chunk_days(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """[start, end] cut into consecutive chunks of `days` days (the last may be shorter)."""
    chunks = []
    first = start
    while first <= end:
        last = min(first + dt.timedelta(days=days - 1), end)
        chunks.append((first, last))
        first = last + dt.timedelta(days=1)
    return chunks


def progress(history: History, run: RunRecord) -> Progress:
    """A backfill's progress, from its record and its chunks."""
    chunks = history.chunks(run.run_id)
    span = [(dt.date.fromisoformat(c["start_day"]), dt.date.fromisoformat(c["end_day"]))
            for c in chunks]  # fmt: skip
    days = [(b - a).days + 1 for a, b in span]
    done = [c for c in chunks if c["status"] == "success"]
    days_done = sum(d for d, c in zip(days, chunks, strict=True) if c["status"] == "success")
    spent = sum(c["seconds"] or 0 for c in chunks if c["status"] != "running")
    running = next((c for c in chunks if c["status"] == "running"), None)
    now_running = running is not None and run.status == "running"
    if running is not None and now_running and running.get("started_at"):
        started = dt.datetime.fromisoformat(running["started_at"])
        spent += max(0.0, (clock.now() - started).total_seconds())
    pace = sum(c["seconds"] or 0 for c in done) / days_done if days_done else None
    stopped = (
        ("failed", "interrupted", "cancelled")
        if run.status == "running"
        else ("failed", "interrupted", "cancelled", "running")
    )  # a chunk 'running' in a stopped backfill was cut off
    failed = next((c for c in chunks if c["status"] in stopped), None)
    return Progress(
        backfill_id=run.run_id,
        job=run.job,
        start=chunks[0]["start_day"] if chunks else "",
        end=chunks[-1]["end_day"] if chunks else "",
        status=run.status,
        days_total=sum(days),
        days_done=days_done,
        chunks_total=len(chunks),
        chunks_done=len(done),
        rows=sum(c["rows"] or 0 for c in chunks),
        elapsed_seconds=round(spent, 1),
        estimate_seconds=round(pace * (sum(days) - days_done), 1) if pace is not None else None,
        current=f"{running['start_day']}..{running['end_day']}"
        if running and now_running
        else None,
        failed_chunk=f"{failed['start_day']}..{failed['end_day']}" if failed else None,
    )


def recent(history: History, *, limit: int = 5) -> list[Progress]:
    """The latest backfills' progress, newest first (for `status` and the page)."""
    return [progress(history, run) for run in history.backfills(limit=limit)]


@dataclass
class BackfillOutcome:
    run_id: str
    status: str  # success | failed | interrupted
    progress: Progress
    resumed: bool
    error: str | None = None
    exception: BaseException | None = None


def _emit(now: Progress) -> None:
    live.emit(live.Event("backfill", now.backfill_id, now.status, now.days_done, now.days_total,
                         detail=now.line()))  # fmt: skip


def _rows(outcome: RunOutcome) -> int:
    return sum(getattr(r.value, "rows_loaded", 0) or 0 for r in outcome.results
               if r.status == "success")  # fmt: skip


def _find(history: History, job: str, start: dt.date, end: dt.date) -> RunRecord | None:
    """The unfinished backfill of this job over exactly these days, if any."""
    for run in history.backfills(limit=200):
        chunks = history.chunks(run.run_id)
        if (run.job == job and run.status != "success" and chunks
                and chunks[0]["start_day"] == start.isoformat()
                and chunks[-1]["end_day"] == end.isoformat()):  # fmt: skip
            return run
    return None


def backfill(
    settings: Settings,
    job: str,
    start: dt.date,
    end: dt.date,
    *,
    chunk_size: int = 7,
    history: History | None = None,
    stop: threading.Event | None = None,
    observers: Sequence[ObserverFactory] = (),
    origin: str | None = None,
    on_start: Callable[[str], None] | None = None,
) -> BackfillOutcome:
    """Backfill `job` over [start, end] in chunks; see the module docstring.

    Bad arguments (an unknown job, an empty or huge range) raise before anything is recorded;
    everything after is a recorded run, alerted like the job's own failures.
    """
    if job not in settings.jobs:
        raise UnknownNameError(
            f"unknown job {job!r} (jobs: {', '.join(settings.jobs) or 'none configured'})"
        )
    if start > end:
        raise UsageError(f"--start {start} is after --end {end}")
    if (end - start).days + 1 > MAX_DAYS:
        raise UsageError(f"{start}..{end} is {(end - start).days + 1} days; at most {MAX_DAYS} "
                         "days a backfill (run several)")  # fmt: skip
    if not 1 <= chunk_size <= 366:
        raise UsageError(f"--chunk-days {chunk_size}: give 1 to 366")
    history = history or History(settings.state)
    lock = settings.state.lock("backfills")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock):  # two commands given at once: one starts it, the other is refused
        history.mark_interrupted()  # what a killed process left 'running'
        found = _find(history, job, start, end)
        if (
            found is not None
            and found.status == "running"
            and process_alive(found.pid, found.process_key)
        ):
            raise UsageError(f"backfill {found.run_id} of {job} over {start}..{end} is already "
                             f"running (pid {found.pid} on {found.host})")  # fmt: skip
        selection = settings.jobs[job].select
        if found is None:
            run_id = history.start_run(
                selection, job=job, trigger="backfill", origin=origin,
                chunks=chunk_days(start, end, chunk_size),
            )  # fmt: skip
            resumed = False
        else:
            run_id, resumed = found.run_id, True
            history.resume_run(run_id)
    if on_start is not None:  # e.g. the page, which shows the backfill it started
        on_start(run_id)
    status, error, trace, failure = "failed", None, None, None
    watch = CancelWatch(history, [run_id], outer=stop)
    with history.run_log(run_id) as log_path, watch:
        try:
            if resumed:
                log.info("backfill %s taken up again from its first chunk not done", run_id)
            status, error = _chunks(settings, history, run_id, job, watch, observers)
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted (Ctrl-C)"
            raise
        except Exception as exc:  # recorded and alerted, never lost
            failure = exc
            status, error = "failed", redact(f"{type(exc).__name__}: {exc}")
            trace = redact(traceback.format_exc())
            log.error("backfill %s failed: %s", run_id, error)
        finally:
            history.finish_run(run_id, status, error, trace)
            record = history.run(run_id)
            assert record is not None
            final = progress(history, record)
            log.info("%s: %s", final.line(), status)
            _emit(final)
            Alerter(settings.state, alert_urls(settings)).run_finished(
                job, run_id, status, error, log_path
            )
    return BackfillOutcome(run_id, status, final, resumed, error, failure)


def _chunks(
    settings: Settings,
    history: History,
    run_id: str,
    job: str,
    watch: CancelWatch,
    observers: Sequence[ObserverFactory],
) -> tuple[str, str | None]:
    """Run the chunks not done, then what publishes; the backfill's status and error."""
    selection = settings.jobs[job].select
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    plan = catalogue.with_upstream(assets, catalogue.select(assets, selection))
    per_chunk = [a for a in plan if assets[a].tags.get("kind") not in ONCE]

    def report() -> None:
        record = history.run(run_id)
        assert record is not None
        now = progress(history, record)
        log.info("%s", now.line())
        _emit(now)

    for chunk in history.chunks(run_id):
        if chunk["status"] == "success":
            continue
        asked = watch.check()
        if asked is not None:  # a safe point: between chunks
            return "cancelled", (f"{cancelled_error(asked)}, before chunk "
                                 f"{chunk['start_day']}..{chunk['end_day']}")  # fmt: skip
        if watch.stop.is_set():
            return "interrupted", "stopped before chunk " + chunk["start_day"]
        days = (dt.date.fromisoformat(chunk["start_day"]), dt.date.fromisoformat(chunk["end_day"]))
        history.set_chunk(run_id, chunk["chunk"], "running")
        report()
        log.info("backfill %s: chunk %s..%s", run_id, *days)
        started = time.monotonic()
        outcome = execute_run(
            settings, per_chunk, trigger="backfill", window=days, part_of=run_id,
            stop=watch.stop, history=history, observers=observers,
        )  # fmt: skip
        history.set_chunk(run_id, chunk["chunk"], outcome.status, run_id=outcome.run_id,
                          rows=_rows(outcome), seconds=time.monotonic() - started)  # fmt: skip
        report()
        if outcome.status != "success":
            return outcome.status, (f"chunk {days[0]}..{days[1]} {outcome.status} (run "
                                    f"{outcome.run_id}): {outcome.error}")  # fmt: skip
    # What publishes, once: the job's ordinary plan runs what the chunks made stale.
    outcome = execute_run(
        settings, selection, trigger="backfill", part_of=run_id, stop=watch.stop,
        history=history, observers=observers,
    )  # fmt: skip
    if outcome.status != "success":
        return outcome.status, f"after the last chunk (run {outcome.run_id}): {outcome.error}"
    return "success", None
