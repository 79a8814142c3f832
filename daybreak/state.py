"""daybreak's state folder: where everything in it lives, and the SQLite database it holds.

`StateLayout` is the one place a path under the state folder is spelled. `StateDb` is the one
place the database is named, connected to and migrated: its schema is versioned with
`PRAGMA user_version`, and each entry of `MIGRATIONS` takes it one version further, so upgrading
daybreak keeps months of history instead of breaking on it. A database written by a newer
daybreak is refused with a message rather than misread.

The database is WAL-mode SQLite shared by every thread and process of daybreak: each write is a
short transaction that takes the write lock up front, and readers never block writers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daybreak import clock
from daybreak.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateLayout:
    """The state folder (`[paths] state`) and what lives in it."""

    root: Path

    @property
    def db(self) -> Path:
        """The SQLite database: sync state, run history, ticks, alert incidents."""
        return self.root / "daybreak.sqlite"

    @property
    def logs(self) -> Path:
        """One log file per run: `<run_id>.log`."""
        return self.root / "logs"

    def run_log(self, run_id: str) -> Path:
        return self.logs / f"{run_id}.log"

    @property
    def runner_log(self) -> Path:
        """The long-lived runner's own log (rotated: runner.log.1, ...)."""
        return self.logs / "runner.log"

    @property
    def locks(self) -> Path:
        """Lock files: the warehouse writer, one per syncing asset, tag slots."""
        return self.root / "locks"

    def lock(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    @property
    def lock_waiters(self) -> Path:
        """One JSON file per process or thread waiting for the warehouse lock."""
        return self.locks / "waiting"

    @property
    def quarantine(self) -> Path:
        """Bad landing files, with an .error.txt sidecar each."""
        return self.root / "quarantine"

    @property
    def retired(self) -> Path:
        """Lake files whose source was deleted upstream."""
        return self.root / "retired"

    @property
    def scratch(self) -> Path:
        """Blobs downloaded for the length of one conversion."""
        return self.root / "scratch"

    def downloads(self, what: str) -> Path:
        """Every version of a fetched file that was read (the budget workbook)."""
        return self.root / "downloads" / what

    def backups(self, what: str) -> Path:
        """Rotated backups (the warehouse)."""
        return self.root / "backups" / what

    @property
    def dbt(self) -> Path:
        """dbt's target (manifest, compiled SQL) and logs for this warehouse."""
        return self.root / "dbt"

    @property
    def dbt_tests(self) -> Path:
        """Each tested-by-change model's high-water mark (daybreak/warehouse/test_scope.py)."""
        return self.dbt / "tests.json"

    @property
    def spark(self) -> Path:
        """A local Spark session's settings (spark-defaults.conf) and metastore."""
        return self.root / "spark"

    @property
    def broken(self) -> Path:
        """Files that no longer opened, kept aside (one folder per recovery, with a note)."""
        return self.root / "broken"

    @property
    def warehouse_recovered(self) -> Path:
        """What the last warehouse recovery did (JSON): the plan rebuilds what was built before."""
        return self.root / "warehouse-recovered.json"

    @property
    def warehouse_columns(self) -> Path:
        """Each built model's columns and their types in the warehouse, as the last build left
        them (daybreak/warehouse/dbt_project.py; shown with the column lineage)."""
        return self.dbt / "columns.json"

    @property
    def column_lineage(self) -> Path:
        """The column lineage, cached by what it was computed from (daybreak/assets/columns.py)."""
        return self.root / "column-lineage.json"

    @property
    def warehouse_checked(self) -> Path:
        """The warehouse file as it was when last found to open (daybreak/warehouse/backup.py)."""
        return self.root / "warehouse-checked.json"

    @property
    def hamilton_ui(self) -> Path:
        """The Hamilton UI's own SQLite store and blobs."""
        return self.root / "hamilton-ui"


# Each entry takes the schema from version i to i + 1. Never edit one that has shipped: add one.
# Version 1 is the schema daybreak had before versioning (IF NOT EXISTS, so an unversioned
# database of that time is adopted as it is).
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS synced_blobs (
        asset      TEXT NOT NULL,
        blob       TEXT NOT NULL,
        etag       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        rows       INTEGER NOT NULL,
        lake_path  TEXT NOT NULL,
        synced_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (asset, blob)
    );
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
    CREATE TABLE IF NOT EXISTS alert_incidents (
        incident  TEXT PRIMARY KEY,
        opened_at TEXT NOT NULL,
        closed_at TEXT
    );
    """,
    # 2: a run that failed before its first asset keeps its traceback; an attempt waiting to be
    # retried says when and out of how many.
    """
    ALTER TABLE runs ADD COLUMN traceback TEXT;
    ALTER TABLE asset_attempts ADD COLUMN next_try_at TEXT;
    ALTER TABLE asset_attempts ADD COLUMN max_attempts INTEGER;
    """,
    # 3: a rerun links to the run it repeats.
    """
    ALTER TABLE runs ADD COLUMN rerun_of TEXT;
    """,
    # 4: what each run decided to run and why (the plan), and the code each success ran.
    """
    ALTER TABLE runs ADD COLUMN plan TEXT;
    ALTER TABLE asset_attempts ADD COLUMN code_version TEXT;
    """,
    # 5: backfills. A backfill is one run (trigger 'backfill') whose chunks are runs `part_of` it;
    # `backfill_chunks` says which days each chunk covers and how far it got, so a killed
    # backfill resumes from its first chunk not done.
    """
    ALTER TABLE runs ADD COLUMN part_of TEXT;
    CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (part_of);
    CREATE TABLE IF NOT EXISTS backfill_chunks (
        backfill_id TEXT NOT NULL,
        chunk       INTEGER NOT NULL,
        start_day   TEXT NOT NULL,
        end_day     TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending',
        run_id      TEXT,
        rows        INTEGER,
        seconds     REAL,
        PRIMARY KEY (backfill_id, chunk)
    );
    """,
    # 6: the Dask worker that ran an attempt ([engine]; NULL when the runner ran it); the order
    # in which attempts finished (what `plan` compares: later is larger, across processes); when
    # a backfill chunk started running.
    """
    ALTER TABLE asset_attempts ADD COLUMN worker TEXT;
    ALTER TABLE asset_attempts ADD COLUMN finished_seq INTEGER;
    ALTER TABLE backfill_chunks ADD COLUMN started_at TEXT;
    """,
    # 7: arrival-driven jobs (daybreak.runner.arrival). `arrival_watch` holds each file a source
    # lists that its sync has not taken yet, as last seen, until it settles; `arrivals` is the
    # append-only log of settled files (one row per file version, never repeated); each job's
    # cursor is the last arrival it has run for. A run says what started it (`trigger_detail`:
    # the files that arrived, the inputs missing at `latest`).
    """
    ALTER TABLE runs ADD COLUMN trigger_detail TEXT;
    CREATE TABLE IF NOT EXISTS arrival_watch (
        asset         TEXT NOT NULL,
        blob          TEXT NOT NULL,
        etag          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        last_modified TEXT,
        first_seen    TEXT NOT NULL,
        PRIMARY KEY (asset, blob)
    );
    CREATE TABLE IF NOT EXISTS arrivals (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        asset         TEXT NOT NULL,
        blob          TEXT NOT NULL,
        etag          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        landed_at     TEXT NOT NULL,
        arrived_at    TEXT NOT NULL,
        UNIQUE (asset, blob, etag)
    );
    CREATE INDEX IF NOT EXISTS arrivals_by_asset ON arrivals (asset, landed_at);
    CREATE TABLE IF NOT EXISTS arrival_cursors (
        job         TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL,
        latest_done TEXT,
        updated_at  TEXT NOT NULL
    );
    """,
    # 8: liveness by the process's key as well as its pid (daybreak.processes): a pid reused
    # after a reboot never makes a dead run look alive.
    """
    ALTER TABLE runs ADD COLUMN process_key TEXT;
    """,
    # 9: acting from the page (daybreak.runner.actions): who started a run, a cancel asked for
    # (by whom, when; the run's process sees it at its next safe point), every action recorded.
    """
    ALTER TABLE runs ADD COLUMN origin TEXT;
    ALTER TABLE runs ADD COLUMN cancel_requested_at TEXT;
    ALTER TABLE runs ADD COLUMN cancel_requested_by TEXT;
    CREATE TABLE IF NOT EXISTS actions (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        at       TEXT NOT NULL,
        action   TEXT NOT NULL,
        params   TEXT,
        origin   TEXT NOT NULL,
        outcome  TEXT NOT NULL,
        run_id   TEXT
    );
    CREATE INDEX IF NOT EXISTS actions_by_at ON actions (at);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection whose transactions take the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    when another writer got in between; an immediate one waits for the busy timeout instead.
    """
    return sqlite3.connect(path, timeout=60, isolation_level="IMMEDIATE")


def migrate(path: Path, migrations: list[str] = MIGRATIONS) -> int:
    """Bring the database at `path` to the newest schema version; return the version it had."""
    for attempt in range(100):
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            # Switching to WAL does not wait on the busy timeout: retried below.
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE")  # one process migrates; the others then see it done
            try:
                found = int(con.execute("PRAGMA user_version").fetchone()[0])
                if found > len(migrations):
                    raise ConfigError(
                        f"{path}: the state database has schema version {found}, newer than "
                        f"this daybreak knows ({len(migrations)}): it was written by a newer "
                        "daybreak; upgrade this one rather than risk misreading its history"
                    )
                for version in range(found, len(migrations)):
                    for statement in _statements(migrations[version]):
                        con.execute(statement)
                    con.execute(f"PRAGMA user_version = {version + 1}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return found
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
        finally:
            con.close()
    raise AssertionError("unreachable")


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (executescript would commit the migration's
    transaction); a ';' inside a string or a trigger body does not end a statement."""
    found, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip() != ";":
                found.append(current.strip())
            current = ""
    if current.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {current.strip()[:80]}")
    return found


_migrated_lock = threading.Lock()
# database file -> its (inode, ctime) when migrated: a new file (the state folder was deleted
# under a long-lived process) is migrated again; an unchanged one is not looked at twice.
_migrated: dict[Path, tuple[int, int]] = {}


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_ctime_ns


# What SQLite says of a file that is not (or no longer) a sound database.
CORRUPT = re.compile(r"not a database|malformed|corrupt", re.IGNORECASE)
RECOVERED_NOTE = "RECOVERED.txt"  # in each folder under <state>/broken: what happened


def keep_aside(layout: StateLayout, files: list[Path], why: str, what: str) -> Path:
    """Move `files` (those that exist) into a new folder under <state>/broken with a note saying
    what happened and why; return the folder. Nothing is deleted."""
    folder = layout.broken / f"{clock.stamp(fine=True)}-{what}"
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.exists():
            os.replace(path, folder / path.name)
    (folder / RECOVERED_NOTE).write_text(why.rstrip() + "\n", encoding="utf-8")
    return folder


def _db_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def recover_db(layout: StateLayout, problem: str) -> Path:
    """The state database does not open or fails its integrity check: keep it aside and start a
    new one, saying what is lost (run history, alerts sent, and what the syncs had taken, so the
    next sync takes every file again). Returns where the old one went."""
    folder = keep_aside(layout, _db_files(layout.db), (
        f"The state database {layout.db} could not be used: {problem}\n"
        "It was kept here and a new, empty one was started. Lost from view: the run history, the "
        "alerts already sent and the arrival log before this moment; the syncs take every file "
        "again on their next run (the lake is rewritten file by file, nothing is duplicated)."
    ), "state-db")  # fmt: skip
    log.error(
        "the state database %s could not be used (%s): kept aside in %s and a new one started; "
        "the run history before now is not shown", layout.db, problem, folder,
    )  # fmt: skip
    return folder


def _usable(path: Path) -> str | None:
    """Why the database at `path` cannot be used (None: it can): SQLite's quick check."""
    try:
        con = sqlite3.connect(path, timeout=60)
        try:
            rows = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if not CORRUPT.search(str(exc)):
            raise
        return f"{type(exc).__name__}: {exc}"
    return None if rows == ["ok"] else "integrity check: " + "; ".join(map(str, rows[:3]))


class StateDb:
    """Transactions on the state database; cheap to create, one per thread or task.

    A database that does not open (a file cut short, garbage, a failed migration because the file
    is not a database) is kept aside and a new one started (`recover_db`), never a crash.
    """

    def __init__(self, layout: StateLayout) -> None:
        self.layout = layout
        self.path = layout.db
        with _migrated_lock:
            with contextlib.suppress(FileNotFoundError):
                if _migrated.get(self.path) == _identity(self.path):
                    return
            layout.root.mkdir(parents=True, exist_ok=True)
            try:
                migrate(self.path)
            except sqlite3.DatabaseError as exc:
                if not CORRUPT.search(str(exc)):  # locked, a full disk, permissions: not the file
                    raise
                recover_db(layout, f"{type(exc).__name__}: {exc}")
                migrate(self.path)
            _migrated[self.path] = _identity(self.path)

    def check(self) -> Path | None:
        """SQLite's integrity check (the runner at start): a database that fails it is kept aside
        and a new one started; returns where the old one went, or None when it is sound."""
        problem = _usable(self.path)
        if problem is None:
            return None
        with _migrated_lock:
            folder = recover_db(self.layout, problem)
            migrate(self.path)
            _migrated[self.path] = _identity(self.path)
        return folder

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed when the block ends without an exception; rows by name."""
        con = _connect(self.path)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA synchronous=NORMAL")
            with con:
                yield con
        finally:
            con.close()

    def version(self) -> int:
        with self.transaction() as con:
            return int(con.execute("PRAGMA user_version").fetchone()[0])
