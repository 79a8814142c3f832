"""Copies of the DuckDB warehouse: rotated backups, and the read-only copy for analysts."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from daybreak.config import Settings
from daybreak.files import atomic_path, keep_newest, snapshot_path
from daybreak.state import StateLayout
from daybreak.warehouse.lock import warehouse_lock

log = logging.getLogger(__name__)


@dataclass
class BackupReport:
    """Where the backup went and how big it is."""

    path: str
    bytes: int
    kept: int
    not_done: str = ""  # why no copy was made (a Spark warehouse: the engine's business)

    def summary(self) -> str:
        if self.not_done:
            return f"no copy: {self.not_done}"
        return f"{Path(self.path).name}: {self.bytes / 1e6:,.1f} MB ({self.kept} backups kept)"


def back_up(settings: Settings) -> BackupReport:
    """The warehouse_backup asset: a DuckDB warehouse is copied; a Spark warehouse is not."""
    if settings.warehouse.engine == "spark":
        return BackupReport("", 0, 0, not_done=(
            "the warehouse is on Spark; its tables are backed up where Spark keeps them "
            "(storage snapshots, Delta or Iceberg time travel), not by daybreak"))  # fmt: skip
    return backup_warehouse(settings.paths.warehouse, settings.state, settings.backup.keep)


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


def publish_reader_copy(warehouse: Path, target: Path) -> Path:
    """A checkpointed copy of the warehouse at `target`, for people and BI tools to open.

    The caller holds the warehouse lock. The copy is written beside `target` and renamed onto
    it, so nobody ever needs a lock a reader holds: on Linux and macOS a reader that has the old
    copy open keeps reading it; on Windows an open file cannot be replaced, so the new copy waits
    as `<name>.next<suffix>` and replaces the old one at the next build after the reader closed
    it (returned: where the new copy is).
    """
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CHECKPOINT")  # fold the write-ahead log in, so the copy is complete
    finally:
        con.close()
    waiting = target.with_name(f"{target.stem}.next{target.suffix}")
    with atomic_path(waiting) as tmp:
        shutil.copyfile(warehouse, tmp)
    try:
        os.replace(waiting, target)
    except PermissionError:  # Windows: a reader has the old copy open
        log.warning(
            "the read-only copy %s is open in another program; the new one waits as %s and "
            "takes its place at the next build after it is closed", target, waiting,
        )  # fmt: skip
        return waiting
    return target
