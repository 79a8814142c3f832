#!/usr/bin/env python
"""Export warehouse tables to a Tableau Hyper extract, back it up, and publish it to Tableau Server.

    python exports/duckdb_to_tableau_server.py --tables TABLE [TABLE ...] --name EXTRACT_NAME

Steps: (1) read the tables from the DuckDB warehouse under daybreak's warehouse lock, (2) hand
them over as Arrow files of 2.5 million rows, (3) build `<exports>/<NAME>.hyper` with one table per
warehouse table, loaded by Hyper's own `COPY ... FROM` each Arrow file while the next is written,
(4) keep a timestamped backup and drop backups beyond
--keep, (5) publish it as data source NAME to Tableau Server with tableauserverclient, overwriting
the previous one. Without [tableau] server_url in the config, step 5 is skipped: the local
extract and its backup are the result. The backup is taken before publishing, so a failed
publish leaves both the extract and its backup.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make the repository importable, use its .venv
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from daybreak.venv import ensure_project_python

    ensure_project_python(__file__)

import duckdb

from daybreak.config import Settings, load_settings
from daybreak.errors import ConfigError, TransientError, backoff_seconds
from daybreak.files import keep_newest, snapshot_path
from daybreak.logs import redact, setup_logging
from daybreak.warehouse.lock import warehouse_lock
from daybreak.warehouse.reader import WarehouseMissing, open_reader

log = logging.getLogger(__name__)

EXIT_CODES = {"arguments": 2, "tables": 3, "read": 4, "hyper": 5, "backup": 6, "publish": 7}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ExportError(Exception):
    """One step of the export failed; `step` picks the exit code."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        self.exit_code = EXIT_CODES[step]
        super().__init__(f"{step}: {message}")


class TransientExportError(ExportError, TransientError):
    """A step failed in a way that may pass (a 5xx from Tableau Server): the asset retries."""

    def __init__(self, step: str, message: str) -> None:
        ExportError.__init__(self, step, message)
        self.retry_after = None


@dataclass
class ExportReport:
    """What an export produced: the asset's value and the CLI's last lines."""

    name: str
    hyper: str
    bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    backup: str | None = None
    datasource_id: str | None = None
    project: str | None = None

    @property
    def published(self) -> str:
        return f"published as {self.datasource_id}" if self.datasource_id else "not published"

    def summary(self) -> str:
        tables = ", ".join(f"{t} {n:,} rows" for t, n in self.rows.items())
        return f"{Path(self.hyper).name}: {tables}, {self.bytes / 1e6:,.1f} MB, {self.published}"


# -- 1 + 2: the warehouse, read under the lock, as Arrow files Hyper copies while they come ----

# Hyper's COPY reads only files it can seek (a pipe fails with "lseek(): Illegal seek"), so the
# rows are handed over as Arrow IPC files of CHUNK_ROWS rows, each copied by Hyper while DuckDB
# writes the next and deleted once copied; fewer, larger files measured faster (a COPY costs
# about 0.15 s of its own). Arrow needs no encoding on either side: on 5 M order lines the
# export took 0.55x the time of the uncompressed Parquet hand-off it replaced. The reader never
# waits for Hyper, so the warehouse lock is held for the read and at most one COPY after it
# (the caller lets it go between two COPYs); the files waiting on disk are at most the table's
# size in Arrow (as the Parquet file was before).
CHUNK_ROWS = 2_500_000
BATCH_ROWS = 500_000
# The first file is small, and each next one twice the last up to CHUNK_ROWS: Hyper starts
# copying while DuckDB is still early in the table, so the read's head is not paid in series.
FIRST_CHUNK_ROWS = 500_000


def _chunk_rows(part: int) -> int:
    """How many rows Arrow file number `part` (from 0) holds before the next one begins."""
    return min(CHUNK_ROWS, FIRST_CHUNK_ROWS << min(part, 20))


# DuckDB types whose Arrow form Hyper's column type does not take as it is.
_WIDEN = {"TINYINT": "SMALLINT", "FLOAT": "DOUBLE"}


@dataclass(frozen=True)
class _Chunk:
    table: str
    path: Path


class _Reader(threading.Thread):
    """Reads the tables into Arrow files, one queue message at a time: first the columns of every
    table (or the ExportError that stops the export), then a _Chunk per file, then None. `done`
    is set once the warehouse is closed again; `stop` is set by the consumer when Hyper failed:
    the reader ends.

    The warehouse lock is the consumer's to take and release, never this thread's: the lock is
    re-entrant per thread, and an export asset's own thread may already hold it (a `[concurrency]
    dbt_duckdb = 1` slot takes it), which a second thread would wait for forever."""

    def __init__(self, settings: Settings, tables: list[str], name: str, staging: Path) -> None:
        super().__init__(name=f"export-read-{name}", daemon=True)
        self.settings, self.tables, self.export, self.staging = settings, tables, name, staging
        self.out: queue.Queue[Any] = queue.Queue()
        self.stop = threading.Event()
        self.done = threading.Event()
        self.seconds = 0.0

    def _put(self, message: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(message, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        started = time.monotonic()
        try:
            self._read()
        except ExportError as exc:
            self._put(exc)
        except (duckdb.Error, OSError) as exc:
            self._put(ExportError("read", f"reading {self._warehouse().name}: {exc}"))
        except Exception as exc:  # handed to the consumer, never lost in a thread
            self._put(ExportError("read", f"reading {self._warehouse().name}: {exc!r}"))
        finally:
            self.seconds = time.monotonic() - started
            self.done.set()
            self._put(None)

    def _warehouse(self) -> Path:
        if self.settings.warehouse.engine == "spark":  # the Spark tables' Parquet
            return self.settings.spark_warehouse
        return self.settings.paths.warehouse

    def _read(self) -> None:
        warehouse = self._warehouse()
        try:
            con = open_reader(self.settings)
        except WarehouseMissing as exc:
            raise ExportError("read", str(exc)) from None
        except duckdb.Error as exc:
            raise ExportError("read", f"cannot open {warehouse}: {exc}") from None
        try:
            columns = _describe(con, self.tables, warehouse)
            if not self._put(columns):
                return
            for table in self.tables:
                if not self._write_chunks(con, table, columns[table]):
                    return
        finally:
            con.close()

    def next(self) -> Any:
        """The next message; an ExportError if the thread ended without its last word."""
        while True:
            try:
                return self.out.get(timeout=0.5)
            except queue.Empty:
                if not self.is_alive() and self.out.empty():
                    raise ExportError("read", "the reading thread ended early") from None

    def _write_chunks(self, con: duckdb.DuckDBPyConnection, table: str,
                      cols: list[tuple[str, str]]) -> bool:  # fmt: skip
        import pyarrow as pa

        select = ", ".join(
            f'CAST("{c}" AS {_WIDEN[t.upper()]}) AS "{c}"' if t.upper() in _WIDEN else f'"{c}"'
            for c, t in (((c.replace('"', '""'), t)) for c, t in cols)
        )
        reader = con.sql(f'SELECT {select} FROM main."{table}"').to_arrow_reader(BATCH_ROWS)
        part, rows, writer, sink, path = 0, 0, None, None, None
        try:
            for batch in reader:
                if self.stop.is_set():
                    return False
                if writer is None:
                    path = self.staging / f"{table}.{part:05d}.arrow"
                    sink = pa.OSFile(str(path), "wb")
                    writer, rows = pa.ipc.new_file(sink, reader.schema), 0
                writer.write_batch(batch)
                rows += batch.num_rows
                if rows >= _chunk_rows(part):
                    writer.close()
                    sink.close()  # type: ignore[union-attr]
                    writer, part = None, part + 1
                    if not self._put(_Chunk(table, path)):  # type: ignore[arg-type]
                        return False
            if writer is not None:
                writer.close()
                sink.close()  # type: ignore[union-attr]
                writer = None
                return self._put(_Chunk(table, path))  # type: ignore[arg-type]
            return True  # no rows left (or none at all: the table is created empty)
        finally:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
                    sink.close()  # type: ignore[union-attr]


def _check_names(tables: list[str]) -> None:
    bad = [t for t in tables if not _IDENTIFIER.fullmatch(t)]
    if bad:
        raise ExportError("tables", f"refused table name {bad[0]!r}: only plain identifiers")
    if len(set(tables)) != len(tables):
        raise ExportError("tables", "a table is named twice")


def _describe(
    con: duckdb.DuckDBPyConnection, tables: list[str], warehouse: Path
) -> dict[str, list[tuple[str, str]]]:
    """Each table's columns (name, DuckDB type); a table not in the warehouse is an error."""
    known = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    missing = [t for t in tables if t not in known]
    if missing:
        raise ExportError(
            "tables", f"table {missing[0]!r} is not in the warehouse {warehouse.name}"
        )
    columns: dict[str, list[tuple[str, str]]] = {}
    for table in tables:
        described = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        columns[table] = [(str(c), str(t)) for c, t in described]
    return columns


# -- 3: Hyper ---------------------------------------------------------------------------------


def _hyper_type(duck_type: str) -> Any:
    from tableauhyperapi import SqlType

    t = duck_type.upper()
    simple = {
        "BOOLEAN": SqlType.bool(),
        "TINYINT": SqlType.small_int(),
        "SMALLINT": SqlType.small_int(),
        "INTEGER": SqlType.int(),
        "BIGINT": SqlType.big_int(),
        "FLOAT": SqlType.double(),
        "DOUBLE": SqlType.double(),
        "VARCHAR": SqlType.text(),
        "DATE": SqlType.date(),
        "TIME": SqlType.time(),
        "TIMESTAMP": SqlType.timestamp(),
        "TIMESTAMP WITH TIME ZONE": SqlType.timestamp_tz(),
    }
    if t in simple:
        return simple[t]
    if m := re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", t):
        return SqlType.numeric(int(m[1]), int(m[2]))
    return None


def _build_hyper(
    columns: dict[str, list[tuple[str, str]]],
    reader: _Reader,
    staging: Path,
    dest: Path,
    read_done: Callable[[], None],
) -> dict[str, int]:
    """Create every table in a new Hyper file, then COPY each Arrow file as `reader` hands it
    over; the file is renamed onto `dest` only when whole. `read_done` is called (in this
    thread, between two COPYs) once the reader has closed the warehouse."""
    from tableauhyperapi import (
        Connection,
        CreateMode,
        HyperProcess,
        Nullability,
        SchemaName,
        TableDefinition,
        TableName,
        Telemetry,
        escape_string_literal,
    )

    definitions = {}
    for table, cols in columns.items():
        mapped = []
        for column, duck_type in cols:
            hyper_type = _hyper_type(duck_type)
            if hyper_type is None:
                raise ExportError(
                    "hyper",
                    f"table {table!r} column {column!r} has type {duck_type}, which a Hyper "
                    "extract cannot hold: cast it in the dbt model",
                )
            mapped.append(TableDefinition.Column(column, hyper_type, Nullability.NULLABLE))
        definitions[table] = TableDefinition(TableName("Extract", table), mapped)

    rows: dict[str, int] = {}
    # Written beside the target under a temporary name and renamed only when complete.
    tmp = dest.with_name(f".{dest.stem}.building.hyper")
    tmp.unlink(missing_ok=True)
    parameters = {"log_dir": str(staging)}
    wide = [
        f"{table}.{column}"
        for table, cols in columns.items()
        for column, duck_type in cols
        if (m := re.fullmatch(r"DECIMAL\((\d+),\s*\d+\)", duck_type.upper())) and int(m[1]) > 18
    ]
    if wide:
        # 128-bit numerics need Hyper file format 3 (Tableau 2022.4.1 and newer).
        log.info("%s: numerics wider than 18 digits need Hyper file format 3", ", ".join(wide))
        parameters["default_database_version"] = "3"
    try:
        with (
            HyperProcess(
                Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU, parameters=parameters
            ) as hyper,
            Connection(hyper.endpoint, tmp, CreateMode.CREATE_AND_REPLACE) as connection,
        ):
            connection.catalog.create_schema(SchemaName("Extract"))
            for table, definition in definitions.items():
                connection.catalog.create_table(definition)
                rows[table] = 0
            while (chunk := reader.next()) is not None:
                if reader.done.is_set():
                    read_done()
                if isinstance(chunk, ExportError):
                    raise chunk
                source = escape_string_literal(str(chunk.path))
                rows[chunk.table] += connection.execute_command(
                    f"COPY {definitions[chunk.table].table_name} FROM {source} "
                    "WITH (FORMAT => 'arrowfile')"
                )
                with contextlib.suppress(OSError):  # Windows: Hyper may still hold it; see below
                    chunk.path.unlink()
        tmp.replace(dest)
    except ExportError:
        raise
    except Exception as exc:  # the Hyper API raises its own HyperException, among others
        raise ExportError("hyper", f"building {dest.name}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return rows


# -- 4: backup --------------------------------------------------------------------------------


def _backup(hyper: Path, folder: Path, keep: int) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = snapshot_path(folder, hyper.stem, hyper.suffix)
        try:
            # The extract is only ever replaced by a rename, never changed in place, so a hard
            # link is as safe a snapshot as a copy, and free; across filesystems, copy.
            os.link(hyper, target)
        except OSError:
            shutil.copyfile(hyper, target)
        keep_newest(folder, hyper.stem, hyper.suffix, keep)
        return target
    except OSError as exc:
        raise ExportError("backup", f"backing up {hyper.name} to {folder}: {exc}") from None


# -- 5: Tableau Server ------------------------------------------------------------------------


def _publish(settings: Settings, hyper: Path, name: str, project_name: str) -> str:
    import tableauserverclient as TSC
    from tableauserverclient.server.endpoint.exceptions import (
        InternalServerError,
        ServerResponseError,
        XMLError,
    )

    tableau, secrets = settings.tableau, settings.secrets
    assert tableau.server_url is not None
    auth: TSC.PersonalAccessTokenAuth | TSC.TableauAuth
    if secrets.tableau_token_name and secrets.tableau_token_secret:
        auth = TSC.PersonalAccessTokenAuth(
            secrets.tableau_token_name,
            secrets.tableau_token_secret.get_secret_value(),
            site_id=tableau.site,
        )
        credential = "TABLEAU_TOKEN_NAME and TABLEAU_TOKEN_SECRET"
    else:
        assert secrets.tableau_username and secrets.tableau_password
        auth = TSC.TableauAuth(
            secrets.tableau_username,
            secrets.tableau_password.get_secret_value(),
            site_id=tableau.site,
        )
        credential = "TABLEAU_USERNAME and TABLEAU_PASSWORD"
    try:
        server = TSC.Server(tableau.server_url, use_server_version=tableau.use_server_version)
        if tableau.api_version:
            server.version = tableau.api_version
        server.auth.sign_in(auth)
    except XMLError as exc:  # FailedSignInError and ServerResponseError both carry code/summary
        raise ExportError(
            "publish",
            f"Tableau sign-in refused ({exc.code} {exc.summary}): check {credential} "
            f"and [tableau] site {tableau.site!r}",
        ) from None
    except Exception as exc:  # connection errors and the like
        raise ExportError(
            "publish", f"cannot reach Tableau Server {tableau.server_url}: {exc}"
        ) from None
    try:
        project = next((p for p in TSC.Pager(server.projects) if p.name == project_name), None)
        if project is None:
            raise ExportError(
                "publish",
                f"project {project_name!r} not found on site {tableau.site or 'Default'!r}",
            )
        item = TSC.DatasourceItem(project_id=project.id, name=name)
        for attempt in range(1, tableau.max_attempts + 1):
            try:
                published = server.datasources.publish(
                    item, str(hyper), mode=TSC.Server.PublishMode.Overwrite
                )
                return str(published.id)
            except (InternalServerError, ServerResponseError, OSError) as exc:
                status = getattr(exc, "code", None) or type(exc).__name__
                transient = isinstance(exc, InternalServerError | OSError) or str(
                    status
                ).startswith("5")
                if not transient or attempt == tableau.max_attempts:
                    kind = TransientExportError if transient else ExportError
                    raise kind(
                        "publish",
                        f"publishing {name} to project {project_name!r} failed ({status}) after "
                        f"{attempt} attempt(s)",
                    ) from None
                wait = backoff_seconds(tableau.backoff_seconds, attempt)
                log.warning(
                    "publish of %s failed (%s); retry %d in %.1f s", name, status, attempt, wait
                )
                time.sleep(wait)
    except ServerResponseError as exc:
        raise ExportError(
            "publish", f"Tableau Server refused a request ({exc.code} {exc.summary})"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            server.auth.sign_out()
    raise AssertionError("unreachable")


# -- the whole export -------------------------------------------------------------------------


# A staging folder this old was left by a killed export (a live one is written every second).
STALE_STAGING_SECONDS = 3600


def _sweep_staging(exports: Path, name: str) -> None:
    """Remove the staging folders (`.NAME.*`) a killed export of this name left behind; one a
    second export of the same name is using now is too recent to be touched."""
    for stale in exports.glob(f".{name}.*"):
        with contextlib.suppress(OSError):
            if stale.is_dir() and time.time() - stale.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)


def export_extract(
    settings: Settings,
    tables: list[str],
    name: str,
    *,
    publish: bool = True,
    project: str | None = None,
    backup_dir: Path | None = None,
    keep: int | None = None,
) -> ExportReport:
    """Run the export; raises ExportError naming the step (and table) that failed."""
    _check_names(tables)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}", name) or name.endswith("."):
        raise ExportError("arguments", f"refused extract name {name!r}")
    exports = settings.paths.exports
    exports.mkdir(parents=True, exist_ok=True)
    report = ExportReport(name=name, hyper=str(exports / f"{name}.hyper"))
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.monotonic()
        report.seconds[step] = round(now - clock, 3)
        clock = now

    _sweep_staging(exports, name)
    # ignore_cleanup_errors: on Windows a file Hyper still holds is left, never the export failed
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=exports,
                                     ignore_cleanup_errors=True) as tmp:  # fmt: skip
        staging = Path(tmp)
        reader = _Reader(settings, tables, name, staging)
        # The lock is taken here, in the caller's thread (see _Reader), and let go as soon as
        # the reader is done: at most one COPY later.
        with contextlib.ExitStack() as locked:
            locked.enter_context(warehouse_lock(settings.state, f"export {name}"))
            reader.start()
            try:
                columns = reader.next()  # the tables' columns, or why they cannot be read
                if isinstance(columns, ExportError):
                    raise columns
                report.rows = _build_hyper(
                    columns, reader, staging, Path(report.hyper), read_done=locked.close
                )
            finally:
                reader.stop.set()
                reader.join()
        # The two overlap: "read" is the reader's own time (the warehouse lock is held for it),
        # "hyper" the rest until the extract is whole.
        report.seconds["read"] = round(reader.seconds, 3)
        lap("hyper")
        report.seconds["hyper"] = round(report.seconds["hyper"] - reader.seconds, 3)
    report.bytes = Path(report.hyper).stat().st_size
    report.backup = str(
        _backup(
            Path(report.hyper),
            backup_dir or exports / "backups",
            keep or settings.tableau.keep_backups,
        )
    )
    lap("backup")
    report.project = project or settings.tableau.project
    if not publish:
        log.info("%s: not published (--no-publish)", name)
    elif not settings.tableau.server_url:
        log.info("%s: not published: no Tableau server configured ([tableau] server_url)", name)
    else:
        report.datasource_id = _publish(settings, Path(report.hyper), name, report.project)
        lap("publish")
    log.info("%s", report.summary())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="duckdb_to_tableau_server.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            "exit codes: 0 success; 2 bad arguments or config; 3 a table refused (not a plain "
            "identifier, or not in the warehouse); 4 reading the warehouse failed; 5 building the "
            "Hyper file failed; 6 the backup failed; 7 publishing failed. A failed step prints "
            "one line on stderr naming it."
        ),
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        required=True,
        metavar="TABLE",
        help="warehouse tables (plain names) to put in the extract, one Hyper table each",
    )
    parser.add_argument(
        "--name",
        required=True,
        metavar="EXTRACT_NAME",
        help="extract name: the .hyper file's name and the published data source's",
    )
    parser.add_argument(
        "--no-publish", action="store_true", help="build and back up the extract, do not publish it"
    )
    parser.add_argument(
        "--project",
        metavar="NAME",
        help="Tableau project to publish into (default: [tableau] project)",
    )
    parser.add_argument(
        "--backup-dir",
        type=Path,
        metavar="DIR",
        help="where timestamped backups go (default: <exports>/backups)",
    )
    parser.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="backups of this extract to keep (default: [tableau] keep_backups)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $DAYBREAK_CONFIG or ./daybreak.toml)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    if args.keep is not None and args.keep < 1:
        print("error: arguments: --keep must be at least 1", file=sys.stderr)
        return EXIT_CODES["arguments"]
    try:
        settings = load_settings(args.config)
        redact.register(settings.secrets.values())
        report = export_extract(
            settings,
            args.tables,
            args.name,
            publish=not args.no_publish,
            project=args.project,
            backup_dir=args.backup_dir,
            keep=args.keep,
        )
    except ConfigError as exc:
        print(f"error: arguments: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CODES["arguments"]
    except ExportError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
