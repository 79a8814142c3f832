"""The state folder: its layout, and a versioned database that upgrades keep rather than break."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from daybreak import clock
from daybreak.clock import FixedClock
from daybreak.errors import ConfigError
from daybreak.ingest.sync_state import SyncedBlob, SyncState
from daybreak.runner.history import History
from daybreak.state import MIGRATIONS, SCHEMA_VERSION, StateDb, StateLayout, migrate

# The history tables as daybreak wrote them before the schema had a version (user_version 0).
UNVERSIONED = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, job TEXT, selection TEXT NOT NULL, trigger TEXT NOT NULL,
    scheduled_for TEXT, status TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    seconds REAL, pid INTEGER NOT NULL, host TEXT NOT NULL, log_path TEXT NOT NULL, error TEXT
);
CREATE TABLE synced_blobs (
    asset TEXT NOT NULL, blob TEXT NOT NULL, etag TEXT NOT NULL, size INTEGER NOT NULL,
    rows INTEGER NOT NULL, lake_path TEXT NOT NULL,
    synced_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (asset, blob)
);
INSERT INTO runs VALUES ('20260301T154500Z-abc123', 'daily_sales_flow', '["a"]', 'schedule',
    NULL, 'success', '2026-03-01T15:45:00+00:00', '2026-03-01T15:46:00+00:00', 60.0, 1, 'desk',
    'logs/x.log', NULL);
INSERT INTO synced_blobs (asset, blob, etag, size, rows, lake_path)
    VALUES ('uk_orders_azure', 'UK/a.csv', 'e1', 10, 3, 'orders/a.parquet');
"""


def test_a_database_from_before_versioning_is_adopted_with_its_history(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    layout.root.mkdir()
    con = sqlite3.connect(layout.db)
    con.executescript(UNVERSIONED)
    con.close()

    history = History(layout)  # migrates on first use
    (run,) = history.runs()
    assert run.run_id == "20260301T154500Z-abc123" and run.status == "success"
    assert SyncState(layout).synced_blobs("uk_orders_azure")["UK/a.csv"].etag == "e1"
    assert StateDb(layout).version() == SCHEMA_VERSION
    # The tables that came later exist now, and take writes.
    history.record_tick("daily_sales_flow", clock.now(), "ran")
    assert history.ticks("daily_sales_flow")[0]["outcome"] == "ran"


def test_each_migration_runs_once_and_in_order(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    steps = [
        "CREATE TABLE t (a INTEGER);",
        "ALTER TABLE t ADD COLUMN b TEXT; INSERT INTO t VALUES (1, 'x');",
    ]
    assert migrate(db, steps[:1]) == 0
    assert migrate(db, steps) == 1  # only the second step runs
    assert migrate(db, steps) == 2  # nothing runs
    con = sqlite3.connect(db)
    assert con.execute("SELECT a, b FROM t").fetchall() == [(1, "x")]
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite"
    migrate(db, ["CREATE TABLE t (a INTEGER);"])
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, ["CREATE TABLE t (a INTEGER);", "CREATE TABLE u (a); CREATE TABLE t (x);"])
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t"}  # u was rolled back with the rest of its step
    con.close()


def test_a_database_from_a_newer_daybreak_is_refused_not_misread(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    layout.root.mkdir()
    con = sqlite3.connect(layout.db)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.close()
    with pytest.raises(ConfigError, match="written by a newer daybreak"):
        History(layout)


def test_the_state_folder_layout_is_spelled_in_one_place(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    assert layout.db == tmp_path / "daybreak.sqlite"
    assert layout.run_log("r1") == tmp_path / "logs" / "r1.log"
    assert layout.lock("warehouse") == tmp_path / "locks" / "warehouse.lock"
    assert layout.downloads("budget") == tmp_path / "downloads" / "budget"
    assert layout.backups("warehouse") == tmp_path / "backups" / "warehouse"
    assert layout.hamilton_ui == tmp_path / "hamilton-ui"


def test_history_and_sync_state_are_stamped_by_the_one_clock(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    at = dt.datetime(2027, 3, 28, 0, 59, 30, tzinfo=dt.UTC)
    with clock.using(FixedClock(at, tick=False)):
        history = History(layout)
        run_id = history.start_run(["a"])
        history.finish_attempt(run_id, "a", 1, "success", seconds=0.1)
        SyncState(layout).record_synced("a", SyncedBlob("b", "e", 1, 1, "p"))
    assert run_id.startswith("20270328T005930Z-")
    assert history.last_success() == {"a": "2027-03-28T00:59:30+00:00"}
