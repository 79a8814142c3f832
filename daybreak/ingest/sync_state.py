"""What each ingestion asset has synced: per blob, the ETag it had and the lake file it became.

Kept in the state database (daybreak.state); a row is written right after its Parquet file is in
place, so a sync killed at any point resumes where it stopped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from filelock import FileLock

from daybreak import clock
from daybreak.state import StateDb, StateLayout


def sync_lock(layout: StateLayout, asset: str) -> FileLock:
    """One sync of `asset` at a time, across processes; a dbt build of the models it feeds takes
    it too (daybreak.runner.materialize), so it never reads the lake while the sync writes."""
    path = layout.lock(asset)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


@dataclass(frozen=True)
class SyncedBlob:
    """A blob whose data is in the lake, as of the ETag it had then."""

    blob: str
    etag: str
    size: int
    rows: int
    lake_path: str


class SyncState:
    """The synced_blobs table; open one per thread or task, it is cheap."""

    def __init__(self, layout: StateLayout) -> None:
        self.db = StateDb(layout)
        self.layout = layout

    def lock(self, asset: str) -> contextlib.AbstractContextManager[Any]:
        return sync_lock(self.layout, asset)

    def synced_blobs(self, asset: str) -> dict[str, SyncedBlob]:
        with self.db.transaction() as con:
            rows = con.execute(
                "SELECT blob, etag, size, rows, lake_path FROM synced_blobs WHERE asset = ?",
                (asset,),
            ).fetchall()
        return {row[0]: SyncedBlob(*row) for row in rows}

    def record_synced(self, asset: str, synced: SyncedBlob) -> None:
        with self.db.transaction() as con:
            con.execute(
                "INSERT OR REPLACE INTO synced_blobs (asset, blob, etag, size, rows, lake_path, "
                "synced_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (asset, synced.blob, synced.etag, synced.size, synced.rows, synced.lake_path,
                 clock.now().isoformat(timespec="milliseconds")),
            )  # fmt: skip

    def forget(self, asset: str, blob: str) -> None:
        with self.db.transaction() as con:
            con.execute("DELETE FROM synced_blobs WHERE asset = ? AND blob = ?", (asset, blob))


@dataclass
class SyncStateCopy:
    """The sync state of one asset for a sync that runs on another machine (a Dask worker).

    It reads a copy of the runner's rows and keeps every change for the runner to apply when the
    sync comes back: the state database stays with the runner, since SQLite's WAL mode does not
    work over a network share. The runner holds the asset's sync lock meanwhile.
    """

    asset: str
    rows: dict[str, SyncedBlob]
    # ("record", SyncedBlob) or ("forget", blob name), in order
    changes: list[tuple[str, Any]] = field(default_factory=list)

    def lock(self, asset: str) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # held by the runner

    def synced_blobs(self, asset: str) -> dict[str, SyncedBlob]:
        return dict(self.rows) if asset == self.asset else {}

    def record_synced(self, asset: str, synced: SyncedBlob) -> None:
        self.rows[synced.blob] = synced
        self.changes.append(("record", synced))

    def forget(self, asset: str, blob: str) -> None:
        self.rows.pop(blob, None)
        self.changes.append(("forget", blob))

    def apply_to(self, state: SyncState) -> int:
        """Write the changes into the runner's state, in the order they happened."""
        for kind, what in self.changes:
            if kind == "record":
                state.record_synced(self.asset, what)
            else:
                state.forget(self.asset, what)
        return len(self.changes)
