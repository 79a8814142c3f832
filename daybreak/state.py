"""daybreak's own state: an SQLite database (WAL mode) in the state folder.

Holds what each asset has synced (blob, ETag, lake file). Safe for several processes: every write
is a short transaction and readers never block writers. The runner's history joins it later.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
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
"""


@dataclass(frozen=True)
class SyncedBlob:
    """A blob whose data is in the lake, as of the ETag it had then."""

    blob: str
    etag: str
    size: int
    rows: int
    lake_path: str


_init_lock = threading.Lock()
# -> the database file's (inode, ctime): a new file (the state folder deleted) is set up again;
# an unchanged identity means the tables exist (a spurious re-run is harmless: IF NOT EXISTS).
_initialised: dict[tuple[Path, str], tuple[int, int]] = {}


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_ctime_ns


def connect(path: Path) -> sqlite3.Connection:
    """A connection whose transactions take the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads and then writes fails at once with "database is locked"
    when another writer got in between; an immediate one waits for the busy timeout instead.
    """
    return sqlite3.connect(path, timeout=60, isolation_level="IMMEDIATE")


def init_db(path: Path, schema: str) -> None:
    """Create the tables once per process; several threads or processes may start at once."""
    key = (path, schema)
    with _init_lock:
        with contextlib.suppress(FileNotFoundError):
            if _initialised.get(key) == _identity(path):
                return
        for attempt in range(100):
            try:
                con = sqlite3.connect(path, timeout=60)
                try:
                    # Switching to WAL does not wait on the busy timeout: retry it ourselves.
                    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        con.execute("PRAGMA journal_mode=WAL")
                    con.executescript(schema)
                finally:
                    con.close()
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        _initialised[key] = _identity(path)


class StateStore:
    """Connections to the state database; open one per thread or task, they are cheap."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "daybreak.sqlite"
        init_db(self.path, _SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = connect(self.path)
        try:
            con.execute("PRAGMA synchronous=NORMAL")
            with con:  # one transaction, committed on success
                yield con
        finally:
            con.close()

    def synced_blobs(self, asset: str) -> dict[str, SyncedBlob]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT blob, etag, size, rows, lake_path FROM synced_blobs WHERE asset = ?",
                (asset,),
            ).fetchall()
        return {row[0]: SyncedBlob(*row) for row in rows}

    def record_synced(self, asset: str, synced: SyncedBlob) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO synced_blobs (asset, blob, etag, size, rows, lake_path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (asset, synced.blob, synced.etag, synced.size, synced.rows, synced.lake_path),
            )

    def forget(self, asset: str, blob: str) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM synced_blobs WHERE asset = ? AND blob = ?", (asset, blob))
