"""Run history: every run, every asset attempt, every schedule tick, in the state database.

Append-mostly SQLite (WAL) beside the sync state, safe for several processes: each write is a
short transaction. Every run also gets a log file (`<state>/logs/<run_id>.log`) holding the log
lines its assets wrote. Old runs and their logs are pruned after `retention_days`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from daybreak import clock, processes
from daybreak.errors import UnknownRunError
from daybreak.logs import current_run, make_handler, redact
from daybreak.state import StateDb, StateLayout


def iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds") if moment else None


def to_json(value: Any) -> str | None:
    """An asset's report as JSON for the history (dataclasses, dicts, or its summary)."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data: Any = dataclasses.asdict(value)
    elif isinstance(value, dict | list | str | int | float | bool):
        data = value
    else:
        summary = getattr(value, "summary", None)
        data = {"summary": summary() if callable(summary) else repr(value)}
    text = json.dumps(data, default=str)
    return redact(text[:100_000])


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str | None
    selection: list[str]
    trigger: str
    scheduled_for: str | None
    status: str
    started_at: str
    ended_at: str | None
    seconds: float | None
    pid: int
    host: str
    log_path: str
    error: str | None
    traceback: str | None = None
    rerun_of: str | None = None
    plan: str | None = None  # JSON: each asset, whether it ran, and why
    part_of: str | None = None  # the backfill this run is a chunk of
    # JSON: what started it beyond the trigger's name (an arrival run: the files that arrived,
    # the inputs still missing when it ran at its `latest`)
    trigger_detail: str | None = None
    process_key: str | None = None  # what tells its process from a later one with its pid
    origin: str | None = None  # who started it: "cli (user on host)", "page (client address)"
    cancel_requested_at: str | None = None  # a cancel asked for (runner.py cancel, the page)
    cancel_requested_by: str | None = None

    @property
    def detail(self) -> dict[str, Any]:
        return json.loads(self.trigger_detail) if self.trigger_detail else {}


class History:
    """The runs, attempts and ticks tables; open one per thread or task, connections are cheap."""

    def __init__(self, layout: StateLayout) -> None:
        self.layout = layout
        self.db = StateDb(layout)
        layout.logs.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.db.transaction()

    # -- runs -----------------------------------------------------------------------------

    def start_run(
        self,
        selection: list[str],
        *,
        job: str | None = None,
        trigger: str = "manual",
        scheduled_for: dt.datetime | None = None,
        rerun_of: str | None = None,
        part_of: str | None = None,
        trigger_detail: dict[str, Any] | None = None,
        origin: str | None = None,
        chunks: list[tuple[dt.date, dt.date]] | None = None,
    ) -> str:
        """Record a run as `running`; a backfill's `chunks` in the same transaction, so no reader
        ever sees a backfill without them."""
        started = clock.now()
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        log_path = self.layout.run_log(run_id)
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, job, selection, trigger, scheduled_for, status, "
                "started_at, pid, host, log_path, rerun_of, part_of, trigger_detail, process_key, "
                "origin) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, job, json.dumps(selection), trigger, iso(scheduled_for), iso(started),
                 os.getpid(), socket.gethostname(), str(log_path), rerun_of, part_of,
                 redact(json.dumps(trigger_detail)) if trigger_detail else None,
                 processes.own_key(), origin),
            )  # fmt: skip
            if chunks:
                _insert_chunks(con, run_id, chunks)
            moved = (trigger_detail or {}).get("cursor")
            if moved:  # an arrival run takes its files in the same transaction (no loss, no repeat)
                move_cursor(con, moved["job"], seq=moved["to_seq"], latest_done=(
                    trigger_detail or {}).get("latest"))  # fmt: skip
        return run_id

    def set_plan(self, run_id: str, plan: list[dict[str, Any]]) -> None:
        """What the run decided to run, asset by asset, and why."""
        with self._connect() as con:
            con.execute("UPDATE runs SET plan = ? WHERE run_id = ?", (json.dumps(plan), run_id))

    def success_versions(self) -> dict[str, str | None]:
        """Each asset's code version at its latest success."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, code_version FROM asset_attempts WHERE rowid IN ("
                " SELECT max(rowid) FROM asset_attempts WHERE status = 'success' GROUP BY asset)"
            ).fetchall()
        return {r["asset"]: r["code_version"] for r in rows}

    def set_selection(self, run_id: str, selection: list[str]) -> None:
        """The run's plan, once it is known (a run is recorded before its graph is built)."""
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET selection = ? WHERE run_id = ?", (json.dumps(selection), run_id)
            )

    def finish_run(
        self, run_id: str, status: str, error: str | None = None, traceback: str | None = None
    ) -> None:
        ended = clock.now()
        with self._connect() as con:
            row = con.execute("SELECT started_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            seconds = (ended - dt.datetime.fromisoformat(row["started_at"])).total_seconds()
            con.execute(
                "UPDATE runs SET status = ?, ended_at = ?, seconds = ?, error = ?, traceback = ? "
                "WHERE run_id = ?",
                (status, iso(ended), round(seconds, 3), redact(error) if error else None,
                 redact(traceback) if traceback else None, run_id),
            )  # fmt: skip

    def mark_interrupted(
        self, *, host: str | None = None, pids: set[int] | None = None
    ) -> list[str]:
        """Runs left 'running' by a process that is gone: on this host, by pid and the process's
        start time (a pid reused after a reboot is another program), or those of `pids` (this
        process, stopping). Their running attempts and backfill chunks end `interrupted` too."""
        host = host or socket.gethostname()
        with self._connect() as con:
            rows = con.execute(
                "SELECT run_id, pid, process_key FROM runs WHERE status = 'running' AND host = ?",
                (host,),
            ).fetchall()
            gone = [
                r["run_id"]
                for r in rows
                if (pids is not None and r["pid"] in pids)
                or (pids is None and not processes.alive(r["pid"], r["process_key"]))
            ]
            now = iso(clock.now())
            for run_id in gone:
                con.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = ?, "
                    "error = coalesce(error, 'interrupted: its process stopped before it ended') "
                    "WHERE run_id = ?",
                    (now, run_id),
                )
                con.execute(
                    "UPDATE asset_attempts SET status = 'interrupted', ended_at = ? "
                    "WHERE run_id = ? AND status IN ('running', 'retrying')",
                    (now, run_id),
                )
                con.execute(
                    "UPDATE backfill_chunks SET status = 'interrupted' WHERE status = 'running' "
                    "AND (backfill_id = ? OR run_id = ?)",
                    (run_id, run_id),
                )
        return gone

    def request_cancel(self, run_id: str, by: str) -> tuple[str, RunRecord]:
        """Ask a running run to stop at its next safe point; its process (any process: the state
        database is shared) sees the request within a second. Returns what happened: `requested`,
        `already` (asked before: it is stopping) or `ended` (nothing running to stop), with the
        run as it stands. A chunk of a backfill stands for its backfill: the whole backfill
        stops."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRunError(f"unknown run {run_id!r} (see `runner.py history`)")
            if row["part_of"]:
                parent = con.execute(
                    "SELECT * FROM runs WHERE run_id = ?", (row["part_of"],)
                ).fetchone()
                row = parent if parent is not None and parent["status"] == "running" else row
            if row["status"] != "running":
                outcome = "ended"
            elif row["cancel_requested_at"]:
                outcome = "already"
            else:
                outcome = "requested"
                con.execute(
                    "UPDATE runs SET cancel_requested_at = ?, cancel_requested_by = ? "
                    "WHERE run_id = ? OR (part_of = ? AND status = 'running')",
                    (iso(clock.now()), redact(by), row["run_id"], row["run_id"]),
                )
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
        return outcome, _run(row)

    def cancel_request(self, run_ids: Sequence[str]) -> tuple[str, str] | None:
        """(when, by whom) a cancel was asked for any of these runs, or None."""
        ids = [r for r in run_ids if r]
        if not ids:
            return None
        with self._connect() as con:
            row = con.execute(
                f"SELECT cancel_requested_at, cancel_requested_by FROM runs WHERE run_id IN "
                f"({', '.join('?' * len(ids))}) AND cancel_requested_at IS NOT NULL "
                "ORDER BY cancel_requested_at LIMIT 1",
                ids,
            ).fetchone()
        return (row[0], row[1] or "someone") if row else None

    def record_action(
        self, action: str, params: dict[str, Any], origin: str, outcome: str,
        run_id: str | None = None,
    ) -> None:  # fmt: skip
        """Every action asked of daybreak from the CLI or the page, allowed or refused."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO actions (at, action, params, origin, outcome, run_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (iso(clock.now()), action[:40], redact(json.dumps(params, default=str)[:2000]),
                 redact(origin[:200]), redact(outcome[:500]), run_id),
            )  # fmt: skip

    def actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest actions, newest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM actions ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{**dict(r), "params": json.loads(r["params"] or "{}")} for r in rows]

    def resume_run(self, run_id: str) -> None:
        """A run taken up again by this process (a backfill given again after it stopped)."""
        with self._connect() as con:
            con.execute(
                "UPDATE runs SET status = 'running', ended_at = NULL, seconds = NULL, "
                "error = NULL, traceback = NULL, pid = ?, host = ?, process_key = ?, "
                "cancel_requested_at = NULL, cancel_requested_by = NULL "
                "WHERE run_id = ?",
                (os.getpid(), socket.gethostname(), processes.own_key(), run_id),
            )

    def runs(
        self, *, job: str | None = None, limit: int = 20, part_of: str | None = None
    ) -> list[RunRecord]:
        """Newest first; a backfill's chunks only when asked for by `part_of` (the backfill is
        one entry in the history)."""
        query = "SELECT * FROM runs WHERE part_of IS NULL"
        args: tuple[Any, ...] = ()
        if part_of is not None:
            query = "SELECT * FROM runs WHERE part_of = ?"
            args = (part_of,)
        if job is not None:
            query += " AND job = ?"
            args = (*args, job)
        query += " ORDER BY started_at DESC, rowid DESC LIMIT ?"
        with self._connect() as con:
            rows = con.execute(query, (*args, limit)).fetchall()
        return [_run(r) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    # -- attempts -------------------------------------------------------------------------

    def start_attempt(self, run_id: str, asset: str, attempt: int) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO asset_attempts (run_id, asset, attempt, status, "
                "started_at) VALUES (?, ?, ?, 'running', ?)",
                (run_id, asset, attempt, iso(clock.now())),
            )

    def finish_attempt(
        self,
        run_id: str,
        asset: str,
        attempt: int,
        status: str,
        *,
        seconds: float,
        error: str | None = None,
        traceback: str | None = None,
        report: Any = None,
        next_try_at: dt.datetime | None = None,
        max_attempts: int | None = None,
        code_version: str | None = None,
        worker: str | None = None,
    ) -> None:
        """An attempt's end; a `retrying` one says when the next try is, out of how many."""
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO asset_attempts (run_id, asset, attempt, status, started_at) "
                "VALUES (?, ?, ?, 'running', ?)",
                (run_id, asset, attempt, iso(clock.now())),
            )
            con.execute(
                "UPDATE asset_attempts SET status = ?, ended_at = ?, seconds = ?, error = ?, "
                "traceback = ?, report = ?, next_try_at = ?, max_attempts = ?, code_version = ?, "
                "worker = ?, finished_seq = (SELECT coalesce(max(finished_seq), 0) + 1 FROM "
                "asset_attempts) WHERE run_id = ? AND asset = ? AND attempt = ?",
                (status, iso(clock.now()), round(seconds, 3), redact(error) if error else None,
                 redact(traceback) if traceback else None, to_json(report), iso(next_try_at),
                 max_attempts, code_version, worker, run_id, asset, attempt),
            )  # fmt: skip

    def retrying(self) -> list[dict[str, Any]]:
        """Assets of running runs that wait for their next try: run, asset, attempt n of m, the
        error, when the next try is."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT a.run_id, a.asset, a.attempt, a.max_attempts, a.error, a.next_try_at "
                "FROM asset_attempts a JOIN runs r USING (run_id) "
                "WHERE r.status = 'running' AND a.status = 'retrying' AND NOT EXISTS ("
                " SELECT 1 FROM asset_attempts later WHERE later.run_id = a.run_id"
                " AND later.asset = a.asset AND later.attempt > a.attempt) "
                "ORDER BY a.next_try_at"
            ).fetchall()
        return [dict(r) for r in rows]

    def attempts(self, run_id: str) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM asset_attempts WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    def attempt(self, run_id: str, asset: str, attempt: int) -> dict[str, Any] | None:
        with self._connect() as con:
            row = con.execute(
                "SELECT * FROM asset_attempts WHERE run_id = ? AND asset = ? AND attempt = ?",
                (run_id, asset, attempt),
            ).fetchone()
        return dict(row) if row else None

    def asset_attempts(self, asset: str, limit: int = 100) -> list[dict[str, Any]]:
        """One asset's finished attempts across runs, newest first, with their run's job and
        trigger: its own history."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT a.*, r.job, r.trigger FROM asset_attempts a JOIN runs r USING (run_id) "
                "WHERE a.asset = ? AND a.status NOT IN ('running') "
                "ORDER BY a.started_at DESC, a.rowid DESC LIMIT ?",
                (asset, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def last_reports(self) -> dict[str, Any]:
        """Each asset's most recent report (parsed), where one was kept."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, report FROM asset_attempts WHERE rowid IN ("
                " SELECT max(rowid) FROM asset_attempts WHERE report IS NOT NULL GROUP BY asset)"
            ).fetchall()
        return {r["asset"]: json.loads(r["report"]) for r in rows}

    def last_success(self) -> dict[str, str]:
        """Each asset's most recent successful materialization (UTC ISO)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, max(ended_at) AS at FROM asset_attempts "
                "WHERE status = 'success' GROUP BY asset"
            ).fetchall()
        return {r["asset"]: r["at"] for r in rows}

    def success_order(self) -> dict[str, int]:
        """Each asset's latest success as a position in the order attempts finished (later is
        larger; one sequence across processes, taken in the recording transaction): what `plan`
        compares, since two runs can end within the same second and start in another order."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, max(coalesce(finished_seq, 0)) AS n FROM asset_attempts "
                "WHERE status = 'success' GROUP BY asset"
            ).fetchall()
        return {r["asset"]: r["n"] for r in rows}

    def last_attempts(self) -> dict[str, dict[str, Any]]:
        """Each asset's most recent finished attempt: run_id, status, ended_at, error, and its
        place in the order attempts finished (finished_seq)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, run_id, status, ended_at, error, finished_seq FROM asset_attempts "
                "WHERE rowid IN "
                "(SELECT max(rowid) FROM asset_attempts "
                " WHERE status NOT IN ('running', 'retrying') GROUP BY asset)"
            ).fetchall()
        return {r["asset"]: dict(r) for r in rows}

    # -- backfills (daybreak.runner.backfill) ---------------------------------------------

    def chunks(self, backfill_id: str) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM backfill_chunks WHERE backfill_id = ? ORDER BY chunk",
                (backfill_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    def set_chunk(
        self,
        backfill_id: str,
        chunk: int,
        status: str,
        *,
        run_id: str | None = None,
        rows: int | None = None,
        seconds: float | None = None,
    ) -> None:
        with self._connect() as con:
            if status == "running":  # (again): a fresh start, nothing of the try before
                con.execute(
                    "UPDATE backfill_chunks SET status = 'running', run_id = NULL, rows = NULL, "
                    "seconds = NULL, started_at = ? WHERE backfill_id = ? AND chunk = ?",
                    (iso(clock.now()), backfill_id, chunk),
                )
                return
            con.execute(
                "UPDATE backfill_chunks SET status = ?, run_id = coalesce(?, run_id), "
                "rows = coalesce(?, rows), seconds = coalesce(?, seconds) "
                "WHERE backfill_id = ? AND chunk = ?",
                (status, run_id, rows, seconds, backfill_id, chunk),
            )

    def backfills(self, *, limit: int = 10) -> list[RunRecord]:
        """Backfills, newest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM runs WHERE trigger = 'backfill' AND part_of IS NULL "
                "ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_run(r) for r in rows]

    # -- ticks ----------------------------------------------------------------------------

    def record_tick(
        self, job: str, scheduled_for: dt.datetime, outcome: str, run_id: str | None = None
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO ticks (job, scheduled_for, outcome, run_id, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (job, iso(scheduled_for), outcome, run_id, iso(clock.now())),
            )

    def ticks(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM ticks WHERE job = ? ORDER BY scheduled_for DESC LIMIT ?",
                (job, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    # -- Hamilton UI mirror (daybreak.views.hamilton_ui_mirror) ---------------------------

    def mark_tracked(self, run_id: str, ui_url: str, dag_run_id: int) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO tracked_runs VALUES (?, ?, ?, ?)",
                (run_id, ui_url, dag_run_id, iso(clock.now())),
            )

    def untracked_runs(self, ui_url: str, since: dt.datetime, limit: int) -> list[RunRecord]:
        """Finished runs started after `since` that were never sent to this UI, oldest first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM runs WHERE status <> 'running' AND started_at >= ? "
                "AND run_id NOT IN (SELECT run_id FROM tracked_runs WHERE ui_url = ?) "
                "ORDER BY started_at LIMIT ?",
                (iso(since), ui_url, limit),
            ).fetchall()
        return [_run(r) for r in rows]

    # -- retention ------------------------------------------------------------------------

    def prune(self, retention_days: int) -> int:
        """Delete runs (with their attempts, ticks and log files) older than the retention."""
        cutoff = iso(clock.now() - dt.timedelta(days=retention_days))
        with self._connect() as con:
            old = con.execute(
                "SELECT run_id, log_path FROM runs WHERE started_at < ? AND status <> 'running'",
                (cutoff,),
            ).fetchall()
            for row in old:
                con.execute("DELETE FROM asset_attempts WHERE run_id = ?", (row["run_id"],))
                con.execute("DELETE FROM runs WHERE run_id = ?", (row["run_id"],))
                con.execute("DELETE FROM tracked_runs WHERE run_id = ?", (row["run_id"],))
                con.execute("DELETE FROM backfill_chunks WHERE backfill_id = ?", (row["run_id"],))
                with contextlib.suppress(FileNotFoundError):
                    Path(row["log_path"]).unlink()
            con.execute("DELETE FROM ticks WHERE scheduled_for < ?", (cutoff,))
            con.execute("DELETE FROM arrivals WHERE arrived_at < ?", (cutoff,))
            con.execute("DELETE FROM actions WHERE at < ?", (cutoff,))
        return len(old)

    @contextlib.contextmanager
    def run_log(self, run_id: str) -> Iterator[Path]:
        """Copy every log line written in this context (this run) into the run's log file."""
        path = self.layout.run_log(run_id)
        handler = make_handler(logging.FileHandler(path, encoding="utf-8"))
        handler.addFilter(lambda record: current_run.get() == run_id)
        root = logging.getLogger()
        root.addHandler(handler)
        token = current_run.set(run_id)
        try:
            yield path
        finally:
            current_run.reset(token)
            root.removeHandler(handler)
            handler.close()


def move_cursor(
    con: sqlite3.Connection, job: str, *, seq: int | None = None, latest_done: str | None = None
) -> None:
    """Move an arrival job's cursor (daybreak.runner.arrival) inside the caller's transaction:
    the last arrival it took, and the `latest` it handled."""
    con.execute(
        "INSERT INTO arrival_cursors (job, seq, latest_done, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (job) DO UPDATE SET seq = coalesce(?, seq), "
        "latest_done = coalesce(?, latest_done), updated_at = excluded.updated_at",
        (job, seq or 0, latest_done, iso(clock.now()), seq, latest_done),
    )


def _insert_chunks(
    con: sqlite3.Connection, backfill_id: str, chunks: list[tuple[dt.date, dt.date]]
) -> None:
    con.executemany(
        "INSERT INTO backfill_chunks (backfill_id, chunk, start_day, end_day) VALUES (?, ?, ?, ?)",
        [(backfill_id, i, a.isoformat(), b.isoformat()) for i, (a, b) in enumerate(chunks)],
    )


def process_alive(pid: int, key: str | None = None) -> bool:
    """Whether the process with this pid (and, given, this key) runs on this machine."""
    return processes.alive(pid, key)


def _run(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["selection"] = json.loads(data["selection"])
    return RunRecord(**data)
