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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from daybreak.logs import current_run, make_handler, redact
from daybreak.state import connect, init_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    job           TEXT,
    selection     TEXT NOT NULL,
    trigger       TEXT NOT NULL,
    scheduled_for TEXT,
    status        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    seconds       REAL,
    pid           INTEGER NOT NULL,
    host          TEXT NOT NULL,
    log_path      TEXT NOT NULL,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, started_at);
CREATE TABLE IF NOT EXISTS asset_attempts (
    run_id     TEXT NOT NULL,
    asset      TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    seconds    REAL,
    error      TEXT,
    traceback  TEXT,
    report     TEXT,
    PRIMARY KEY (run_id, asset, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_by_asset ON asset_attempts (asset, status, ended_at);
CREATE TABLE IF NOT EXISTS ticks (
    job           TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    run_id        TEXT,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (job, scheduled_for)
);
CREATE TABLE IF NOT EXISTS tracked_runs (
    run_id     TEXT NOT NULL,
    ui_url     TEXT NOT NULL,
    dag_run_id INTEGER NOT NULL,
    sent_at    TEXT NOT NULL,
    PRIMARY KEY (run_id, ui_url)
);
"""


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


class History:
    """The runs, attempts and ticks tables; open one per thread or task, connections are cheap."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "daybreak.sqlite"
        self.log_dir = state_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        init_db(self.path, _SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = connect(self.path)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA synchronous=NORMAL")
            with con:
                yield con
        finally:
            con.close()

    # -- runs -----------------------------------------------------------------------------

    def start_run(
        self,
        selection: list[str],
        *,
        job: str | None = None,
        trigger: str = "manual",
        scheduled_for: dt.datetime | None = None,
    ) -> str:
        started = now_utc()
        run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        log_path = self.log_dir / f"{run_id}.log"
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs (run_id, job, selection, trigger, scheduled_for, status, "
                "started_at, pid, host, log_path) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, job, json.dumps(selection), trigger, iso(scheduled_for), iso(started),
                 os.getpid(), socket.gethostname(), str(log_path)),
            )  # fmt: skip
        return run_id

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        ended = now_utc()
        with self._connect() as con:
            row = con.execute("SELECT started_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            seconds = (ended - dt.datetime.fromisoformat(row["started_at"])).total_seconds()
            con.execute(
                "UPDATE runs SET status = ?, ended_at = ?, seconds = ?, error = ? WHERE run_id = ?",
                (status, iso(ended), round(seconds, 3), redact(error) if error else None, run_id),
            )

    def mark_interrupted(
        self, *, host: str | None = None, pids: set[int] | None = None
    ) -> list[str]:
        """Runs left 'running' by a process that is gone (this host's other pids, or `pids`)."""
        host = host or socket.gethostname()
        with self._connect() as con:
            rows = con.execute(
                "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", (host,)
            ).fetchall()
            gone = [
                r["run_id"]
                for r in rows
                if (pids is not None and r["pid"] in pids)
                or (pids is None and r["pid"] != os.getpid() and not _alive(r["pid"]))
            ]
            for run_id in gone:
                con.execute(
                    "UPDATE runs SET status = 'interrupted', ended_at = ?, "
                    "error = coalesce(error, 'interrupted: the runner stopped before it ended') "
                    "WHERE run_id = ?",
                    (iso(now_utc()), run_id),
                )
                con.execute(
                    "UPDATE asset_attempts SET status = 'interrupted', ended_at = ? "
                    "WHERE run_id = ? AND status = 'running'",
                    (iso(now_utc()), run_id),
                )
        return gone

    def runs(self, *, job: str | None = None, limit: int = 20) -> list[RunRecord]:
        query = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if job is not None:
            query += " WHERE job = ?"
            args = (job,)
        query += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
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
                (run_id, asset, attempt, iso(now_utc())),
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
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO asset_attempts (run_id, asset, attempt, status, started_at) "
                "VALUES (?, ?, ?, 'running', ?)",
                (run_id, asset, attempt, iso(now_utc())),
            )
            con.execute(
                "UPDATE asset_attempts SET status = ?, ended_at = ?, seconds = ?, error = ?, "
                "traceback = ?, report = ? WHERE run_id = ? AND asset = ? AND attempt = ?",
                (status, iso(now_utc()), round(seconds, 3), redact(error) if error else None,
                 redact(traceback) if traceback else None, to_json(report), run_id, asset,
                 attempt),
            )  # fmt: skip

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

    def last_success(self) -> dict[str, str]:
        """Each asset's most recent successful materialization (UTC ISO)."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, max(ended_at) AS at FROM asset_attempts "
                "WHERE status = 'success' GROUP BY asset"
            ).fetchall()
        return {r["asset"]: r["at"] for r in rows}

    def last_attempts(self) -> dict[str, dict[str, Any]]:
        """Each asset's most recent finished attempt: run_id, status, ended_at, error."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT asset, run_id, status, ended_at, error FROM asset_attempts WHERE rowid IN "
                "(SELECT max(rowid) FROM asset_attempts "
                " WHERE status NOT IN ('running', 'retrying') GROUP BY asset)"
            ).fetchall()
        return {r["asset"]: dict(r) for r in rows}

    # -- ticks ----------------------------------------------------------------------------

    def record_tick(
        self, job: str, scheduled_for: dt.datetime, outcome: str, run_id: str | None = None
    ) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO ticks (job, scheduled_for, outcome, run_id, recorded_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (job, iso(scheduled_for), outcome, run_id, iso(now_utc())),
            )

    def ticks(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM ticks WHERE job = ? ORDER BY scheduled_for DESC LIMIT ?",
                (job, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    # -- Hamilton UI mirror (daybreak.tracking) ---------------------------------------------

    def mark_tracked(self, run_id: str, ui_url: str, dag_run_id: int) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO tracked_runs VALUES (?, ?, ?, ?)",
                (run_id, ui_url, dag_run_id, iso(now_utc())),
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
        cutoff = iso(now_utc() - dt.timedelta(days=retention_days))
        with self._connect() as con:
            old = con.execute(
                "SELECT run_id, log_path FROM runs WHERE started_at < ? AND status <> 'running'",
                (cutoff,),
            ).fetchall()
            for row in old:
                con.execute("DELETE FROM asset_attempts WHERE run_id = ?", (row["run_id"],))
                con.execute("DELETE FROM runs WHERE run_id = ?", (row["run_id"],))
                con.execute("DELETE FROM tracked_runs WHERE run_id = ?", (row["run_id"],))
                with contextlib.suppress(FileNotFoundError):
                    Path(row["log_path"]).unlink()
            con.execute("DELETE FROM ticks WHERE scheduled_for < ?", (cutoff,))
        return len(old)

    @contextlib.contextmanager
    def run_log(self, run_id: str) -> Iterator[Path]:
        """Copy every log line written in this context (this run) into the run's log file."""
        path = self.log_dir / f"{run_id}.log"
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


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    if os.name == "nt":  # the Windows branch: no signal 0 there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return bool(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["selection"] = json.loads(data["selection"])
    return RunRecord(**data)
