"""Maintenance: a consistent, rotated backup of the DuckDB warehouse."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
from hamilton.function_modifiers import tag

from daybreak.config import Settings
from daybreak.lake import atomic_path
from daybreak.warehouse import warehouse_lock


@dataclass
class BackupReport:
    """Where the backup went and how big it is."""

    path: str
    bytes: int
    kept: int

    def summary(self) -> str:
        return f"{Path(self.path).name}: {self.bytes / 1e6:,.1f} MB ({self.kept} backups kept)"


@tag(group="warehouse_maintenance", kind="backup", dbt_duckdb="true", run_last="true")
def warehouse_backup(settings: Settings) -> BackupReport:
    """A consistent copy of the warehouse: checkpointed and copied while no one can write it."""
    warehouse = settings.paths.warehouse
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse to back up at {warehouse}: build it first")
    folder = settings.paths.state / "backups" / "warehouse"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{warehouse.stem}__{stamp}{warehouse.suffix}"
    with warehouse_lock(settings.paths.state, "warehouse_backup"):
        con = duckdb.connect(str(warehouse))
        try:
            con.execute("CHECKPOINT")  # fold the write-ahead log into the file first
        finally:
            con.close()
        with atomic_path(target) as tmp:
            shutil.copyfile(warehouse, tmp)
    backups = sorted(folder.glob(f"{warehouse.stem}__*{warehouse.suffix}"))
    for old in backups[: -settings.backup.keep]:
        old.unlink()
    return BackupReport(str(target), target.stat().st_size, min(len(backups), settings.backup.keep))
