"""Copies of the DuckDB warehouse: rotated backups, and the recovery of one that no longer opens."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from daybreak import clock
from daybreak.config import Settings
from daybreak.files import atomic_path, keep_newest, snapshot_path, snapshots, write_atomic
from daybreak.state import StateLayout, keep_aside
from daybreak.warehouse.lock import warehouse_lock
from daybreak.warehouse.test_scope import ChangeMarks

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


@dataclass
class Recovery:
    """What was done with a warehouse that did not open."""

    problem: str
    kept_aside: str
    restored_from: str | None  # the backup put in its place; None: rebuilt from the lake

    def sentence(self, warehouse: Path) -> str:
        if self.restored_from:
            then = (f"restored the newest good backup {Path(self.restored_from).name}; the "
                    "models are built again from the lake")  # fmt: skip
        else:
            then = "no good backup: the warehouse is rebuilt from the lake, the source of truth"
        return (f"the warehouse {warehouse} did not open ({self.problem}); the broken file is "
                f"kept in {self.kept_aside}; {then}")  # fmt: skip


_HEADERS = 3 * 4096  # DuckDB's file header and its two database headers, before the blocks


def _last_data_block(con: duckdb.DuckDBPyConnection) -> int:
    """The highest block id any table's data sits in (-1 for none), from the storage metadata:
    no table data is read."""
    last = -1
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database()"
    ).fetchall()
    for schema, table in tables:
        name = '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))
        row = con.execute(
            "SELECT max(block_id) FROM pragma_storage_info(?) WHERE block_id >= 0", [name]
        ).fetchone()
        if row and row[0] is not None:
            last = max(last, int(row[0]))
    return last


def damaged(path: Path) -> str | None:
    """Why the DuckDB file at `path` cannot be opened for writing (a failed WAL replay, a file
    cut short, not a database), or None: it opens, is missing, or another program holds it."""
    from daybreak.warehouse.lock import lock_conflict

    if not path.exists():
        return None
    try:
        con = duckdb.connect(str(path))  # replays the write-ahead log, if one was left
        try:
            if path.with_name(path.name + ".wal").exists():
                con.execute("CHECKPOINT")  # folded in now: the file below is then complete
            size, used = con.execute(
                "SELECT block_size, used_blocks FROM pragma_database_size()"
            ).fetchone() or (0, 0)
            last = _last_data_block(con)
        finally:
            con.close()
    except duckdb.Error as exc:
        if lock_conflict(str(exc)) is not None:
            return None
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    # DuckDB opens a file cut short (its catalogue sits in the first blocks) and fails only
    # when a table's data is read: every block a table's data sits in, and as many blocks as
    # are in use, must be in the file. Not total_blocks: it counts the free blocks too, and
    # DuckDB cuts free blocks off the end of the file (a sound file is shorter than that).
    needed = _HEADERS + int(size) * max(int(used), last + 1)
    have = path.stat().st_size
    if have < needed:
        return f"the file is cut short: {have:,} bytes of the {needed:,} its blocks take"
    return None


def _signature(path: Path) -> str | None:
    """What identifies the file's bytes without reading them (None: a log to replay, or none)."""
    try:
        st = path.stat()
    except OSError:
        return None
    if path.with_name(path.name + ".wal").exists():
        return None
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def remember_sound(layout: StateLayout, path: Path) -> None:
    """The warehouse opens as it is now (found so, or just closed by daybreak's own writer): the
    next check skips opening it while the file is unchanged. Opening it and reading its storage
    map took 3 s at 7 GB, before every writer of every run."""
    signature = _signature(path)
    if signature is not None:
        body = {"file": str(path), "signature": signature}
        write_atomic(layout.warehouse_checked, json.dumps(body))


def _known_sound(layout: StateLayout, path: Path) -> bool:
    try:
        raw = json.loads(layout.warehouse_checked.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    signature = _signature(path)
    return (isinstance(raw, dict) and signature is not None and raw.get("file") == str(path)
            and raw.get("signature") == signature)  # fmt: skip


def recover_warehouse(settings: Settings, *, wait: bool = False) -> Recovery | None:
    """If the warehouse does not open: keep it aside, put the newest backup that opens in its
    place (or nothing: dbt rebuilds it from the lake), and leave a note the plan reads
    (`StateLayout.warehouse_recovered`), so every model built before now is built again. Without
    `wait`, a warehouse another daybreak writer is using now is not looked at (it opened)."""
    warehouse, layout = settings.paths.warehouse, settings.state
    if settings.warehouse.engine == "spark" or not warehouse.exists():
        return None
    with warehouse_lock(layout, "the warehouse check", wait=wait) as held:
        if not held:
            return None
        if _known_sound(layout, warehouse):  # unchanged since it last opened: not opened again
            return None
        problem = damaged(warehouse)
        if problem is None:
            remember_sound(layout, warehouse)
            return None
        wal = warehouse.with_name(warehouse.name + ".wal")
        folder = keep_aside(layout, [warehouse, wal], (
            f"The warehouse {warehouse} did not open: {problem}\nIt was kept here; the newest "
            "backup that opens was put in its place, or, with none, dbt rebuilt it from the lake."
        ), "warehouse")  # fmt: skip
        # Before anything is put in its place: what the tests passed is not the next file's data.
        ChangeMarks.forget(layout.dbt_tests)
        restored = None
        for backup in reversed(snapshots(layout.backups("warehouse"), warehouse.stem,
                                         warehouse.suffix)):  # fmt: skip
            if damaged(backup) is None:
                with atomic_path(warehouse) as tmp:
                    shutil.copyfile(backup, tmp)
                restored = str(backup)
                break
            log.warning("the backup %s does not open either: skipped", backup)
        recovery = Recovery(problem, str(folder), restored)
        note = {"at": clock.now().isoformat(), **asdict(recovery)}
        write_atomic(layout.warehouse_recovered, json.dumps(note, indent=2))
        log.error("%s", recovery.sentence(warehouse))
        return recovery
