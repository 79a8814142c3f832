"""The read-only database for people and BI tools: views over Parquet snapshots of the models.

A DuckDB session that holds the warehouse open keeps every writer out, so people get their own
small database instead (`[warehouse] reader_copy`, beside the warehouse). It holds one view per
model of `[warehouse] reader_layers` (folders under dbt/models, `marts` by default), each over a
Parquet snapshot of that model, plus a table `daybreak_refreshed` (model, when its snapshot was
taken, its rows). After each passing build, under the warehouse lock:

1. each reader model the build built (or that has no snapshot yet) is written to a new Parquet
   file in `<reader_copy's stem>/`, named by the build (written aside and renamed);
2. `current.json` records which file is each model's now, and retires the files they replace;
3. the database of views is written aside and renamed onto `reader_copy`.

So the refresh costs what the build changed, not the warehouse's size (a whole-file copy did:
6.7-7.8 s a build at 4.4 GB, docs/PERFORMANCE.md), and the disk holds the reader models once
more, not the warehouse twice. A reader that opened the database keeps the snapshots it saw
until it reconnects: a retired file is deleted a day after it was retired and never while the
database in place still names it. On Windows an open file cannot be replaced, so the new
database waits as `<name>.next<suffix>` and takes its place at the next build after the reader
closed it; the files the database in place names are kept until then.

A kill at any step leaves either the old database or the new one, each naming files that exist:
files are written before the record that names them, and the record before the database.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from daybreak.files import TMP_SUFFIX, atomic_path, clean_stale_tmp, write_atomic

log = logging.getLogger(__name__)

# A retired snapshot is kept this long, for a session that opened the database before.
KEEP_RETIRED = dt.timedelta(days=1)


def reader_models(manifest: Any, layers: Collection[str]) -> list[str]:
    """The models under the folders `layers` of dbt/models (their fqn's second part)."""
    found = []
    for node in manifest.nodes.values():
        if str(node.resource_type) == "model" and len(node.fqn) > 2 and node.fqn[1] in layers:
            found.append(str(node.alias or node.name))
    return sorted(found)


def snapshot_folder(target: Path) -> Path:
    return target.with_name(target.stem)


# The only names the record may give: a snapshot this module wrote, inside its folder.
_SNAPSHOT = re.compile(r"\w+\.\d{8}T\d{6}-[0-9a-f]{6}\.parquet", re.ASCII)


def _snapshot_name(name: object) -> str:
    if not isinstance(name, str) or not _SNAPSHOT.fullmatch(name):
        raise ValueError(f"{name!r} is not a snapshot's name")
    return name


def _load(record: Path) -> dict[str, Any]:
    """The record, checked: a forged or damaged one is no record (every reader model is written
    again, and the files it does not name are retired), never a path outside the folder."""
    try:
        raw = json.loads(record.read_text(encoding="utf-8"))
        tables = {}
        for name, table in dict(raw["tables"]).items():
            table = dict(table)
            _aware(str(table["at"]))
            tables[str(name)] = {"file": _snapshot_name(table["file"]), "at": str(table["at"]),
                                 "rows": int(table["rows"])}  # fmt: skip
        retired = {_snapshot_name(k): str(v) for k, v in dict(raw["retired"]).items()}
        for since in retired.values():
            _aware(since)
        return {
            "tables": tables,
            "retired": retired,
            "in_place": [_snapshot_name(f) for f in list(raw["in_place"])],
        }
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("%s cannot be read (%s): every reader model is written again", record, e)
    return {"tables": {}, "retired": {}, "in_place": []}


def _quote(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def publish_reader_database(
    con: duckdb.DuckDBPyConnection, target: Path, models: Iterable[str], built: Iterable[str],
    now: dt.datetime,
) -> Path:  # fmt: skip
    """Refresh the read-only database at `target` from the warehouse `con` (the caller holds the
    warehouse lock): new snapshots of the `models` in `built` or without one. Returns where the
    new database is (`target`, or the `.next` file waiting on Windows)."""
    folder = snapshot_folder(target)
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(folder)  # what a killed publish left (we hold the warehouse lock)
    for stray in target.parent.glob(f".{target.stem}*{TMP_SUFFIX}*"):  # and its .wal
        stray.unlink(missing_ok=True)
    record_path = folder / "current.json"
    record = _load(record_path)
    tables: dict[str, dict[str, Any]] = record["tables"]
    retired: dict[str, str] = record["retired"]
    wanted, built = sorted(set(models)), set(built)
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' UNION "
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main'").fetchall()}  # fmt: skip
    stamp = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    for name in wanted:
        known = tables.get(name)
        if name not in present:
            continue  # not built yet: no view until it is
        if known is not None and name not in built and (folder / known["file"]).exists():
            continue
        file = folder / f"{name}.{stamp}.parquet"
        with atomic_path(file) as tmp:
            con.execute(f'COPY main."{name}" TO {_quote(tmp)} (FORMAT parquet, COMPRESSION zstd)')
        rows = con.execute(f"SELECT count(*) FROM read_parquet({_quote(file)})").fetchone()
        if known is not None:
            retired[known["file"]] = now.isoformat()
        count = int(rows[0]) if rows else 0
        tables[name] = {"file": file.name, "at": now.isoformat(), "rows": count}
    for name in sorted(set(tables) - (set(wanted) & present)):  # dropped, or no longer a reader's
        retired[tables.pop(name)["file"]] = now.isoformat()
    # A file no record names (a kill between its write and the record): retired from now.
    named = {t["file"] for t in tables.values()} | set(retired)
    for stray in folder.glob("*.parquet"):
        if stray.name not in named:
            retired[stray.name] = now.isoformat()
    write_atomic(record_path, json.dumps(record, indent=2))

    landed = _write_database(target, folder, tables)
    if landed == target:
        record["in_place"] = sorted(t["file"] for t in tables.values())
    keep = set(record["in_place"]) | {t["file"] for t in tables.values()}
    for name, since in list(retired.items()):
        if name in keep or now - _aware(since) < KEEP_RETIRED:
            continue
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:  # Windows: a session is reading it; next time
            continue
        del retired[name]
    write_atomic(record_path, json.dumps(record, indent=2))
    return landed


def _aware(stamp: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(stamp)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _write_database(target: Path, folder: Path, tables: Mapping[str, dict[str, Any]]) -> Path:
    waiting = target.with_name(f"{target.stem}.next{target.suffix}")
    with atomic_path(waiting) as tmp:
        tmp.unlink(missing_ok=True)  # DuckDB makes the file itself
        db = duckdb.connect(str(tmp))
        try:
            db.execute("CREATE TABLE daybreak_refreshed (model VARCHAR, snapshot_at TIMESTAMPTZ, "
                       "rows BIGINT, file VARCHAR)")  # fmt: skip
            for name, table in sorted(tables.items()):
                file = folder / table["file"]
                db.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({_quote(file)})')
                db.execute("INSERT INTO daybreak_refreshed VALUES (?, ?, ?, ?)",
                           [name, _aware(table["at"]), table["rows"], str(file)])  # fmt: skip
            db.execute("CHECKPOINT")
        finally:
            db.close()
    try:
        os.replace(waiting, target)
    except PermissionError:  # Windows: a reader has the old database open
        log.warning(
            "the read-only database %s is open in another program; the new one waits as %s and "
            "takes its place at the next build after it is closed", target, waiting,
        )  # fmt: skip
        return waiting
    return target
