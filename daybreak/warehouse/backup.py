"""A consistent, rotated copy of the DuckDB warehouse, taken while no one can write it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from daybreak.files import atomic_path, keep_newest, snapshot_path
from daybreak.state import StateLayout
from daybreak.warehouse.lock import warehouse_lock


@dataclass
class BackupReport:
    """Where the backup went and how big it is."""

    path: str
    bytes: int
    kept: int

    def summary(self) -> str:
        return f"{Path(self.path).name}: {self.bytes / 1e6:,.1f} MB ({self.kept} backups kept)"


def backup_warehouse(warehouse: Path, layout: StateLayout, keep: int) -> BackupReport:
    """Checkpoint the warehouse and copy it to `<state>/backups/warehouse`, keeping the newest
    `keep` copies; under the warehouse lock, so the copy is of one consistent state."""
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse to back up at {warehouse}: build it first")
    folder = layout.backups("warehouse")
    target = snapshot_path(folder, warehouse.stem, warehouse.suffix)
    with warehouse_lock(layout, "warehouse_backup"):
        con = duckdb.connect(str(warehouse))
        try:
            con.execute("CHECKPOINT")  # fold the write-ahead log into the file first
        finally:
            con.close()
        with atomic_path(target) as tmp:
            shutil.copyfile(warehouse, tmp)
    kept = keep_newest(folder, warehouse.stem, warehouse.suffix, keep)
    return BackupReport(str(target), target.stat().st_size, len(kept))
