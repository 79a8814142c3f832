"""What each ingestion asset has synced: per blob, the ETag it had and the lake file it became.

Kept in the state database (daybreak.state); a row is written right after its Parquet file is in
place, so a sync killed at any point resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from daybreak import clock
from daybreak.state import StateDb, StateLayout


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
