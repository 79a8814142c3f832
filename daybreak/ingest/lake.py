"""The Parquet lake: one CSV in, one typed Parquet file out, or a BadFile naming line and column.

A conversion is a single DuckDB pass (read_csv with explicit types -> COPY to Parquet); a batch
of files is one DuckDB scan whose rows pyarrow writes out one Parquet file per CSV. Rejected
lines are collected by DuckDB's reject tables rather than by a Python loop. Files are written
atomically (daybreak.files), so readers and crashes only ever see the old file or the new one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from daybreak.errors import DiskFull, disk_full
from daybreak.files import atomic_path, publish
from daybreak.ingest.datasets import CsvDataset, cleaned

_MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as the input allows."""

    message: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class BadFile(Exception):
    """A landing file that cannot be loaded as it is; `problems` says where and why."""

    name: str
    problems: list[Problem]
    total: int = field(default=0)

    def __post_init__(self) -> None:
        self.total = max(self.total, len(self.problems))
        super().__init__(str(self))

    def __str__(self) -> str:
        first = "; ".join(str(p) for p in self.problems[:3])
        more = f" (and {self.total - 3} more)" if self.total > 3 else ""
        return f"{self.name}: {first}{more}"


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for conversions, bounded so memory does not follow file count."""
    con = duckdb.connect(config={"threads": 2, "memory_limit": "1GB"})
    return con


def _read_header(path: Path, name: str) -> list[str]:
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadFile(
            name, [Problem(f"not valid UTF-8 (byte {exc.start} of the header)", line=1)]
        ) from None
    return [h.strip() for h in next(csv.reader(io.StringIO(text)), [])]


def _check_header(header: list[str], dataset: CsvDataset, name: str) -> None:
    expected = dataset.column_names
    if len(header) == 1 and len(expected) > 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in header[0]:
                raise BadFile(
                    name,
                    [
                        Problem(
                            f"wrong delimiter: the header is separated by {delimiter!r}, "
                            "expected ','",
                            line=1,
                        )
                    ],
                )
    missing = [c for c in expected if c not in header]
    unexpected = [c for c in header if c not in expected]
    problems = [Problem("missing column", line=1, column=c) for c in missing]
    problems += [Problem("unexpected column (renamed?)", line=1, column=c) for c in unexpected]
    duplicated = {c for c in header if header.count(c) > 1}
    problems += [Problem("column appears more than once", line=1, column=c) for c in duplicated]
    if problems:
        raise BadFile(name, problems)


def _reader(source: str, dataset: CsvDataset, header: list[str], filename: str = "") -> str:
    """DuckDB's read_csv of `source` (a path or a list of paths, as SQL) with the dataset's
    types, strict parsing, and bad lines collected in the `rejects` tables."""
    types = dict(dataset.columns)
    columns = "{" + ", ".join(f"{sql_string(h)}: {sql_string(types[h])}" for h in header) + "}"
    return (
        f"read_csv({source}, header=true, delim=',', quote='\"', escape='\"', "
        f"columns={columns}, auto_detect=false, encoding='utf-8', "
        + (f"filename={sql_string(filename)}, " if filename else "")
        + "dateformat='%Y-%m-%d', timestampformat='%Y-%m-%d %H:%M:%S', "
        "store_rejects=true, rejects_table='rejects', rejects_scan='rejects_scan')"
    )


def _select_list(dataset: CsvDataset, extra: dict[str, str], table: str = "") -> str:
    parts = [f'{cleaned(column, kind, table)} AS "{column}"' for column, kind in dataset.columns]
    parts += [f"{expr} AS {col}" for col, expr in extra.items()]
    return ", ".join(parts)


def convert_csv(
    con: duckdb.DuckDBPyConnection,
    csv_path: Path,
    dataset: CsvDataset,
    dest: Path,
    *,
    name: str,
    extra: dict[str, str] | None = None,
) -> int:
    """Load `csv_path` into the Parquet file `dest` atomically; return its row count.

    Raises BadFile (naming `name`, line and column) and leaves `dest` untouched when the file
    is empty, has the wrong header or delimiter, has a value that does not parse, a blank
    required field, or invalid UTF-8.
    """
    if csv_path.stat().st_size == 0:
        raise BadFile(name, [Problem("empty file (0 bytes)")])
    header = _read_header(csv_path, name)
    _check_header(header, dataset, name)

    reader = _reader(sql_string(str(csv_path)), dataset, header)
    try:
        with _naming_a_full_disk(dest), atomic_path(dest) as tmp:
            rows = con.execute(
                f"COPY (SELECT {_select_list(dataset, extra or {})} FROM {reader}) "
                f"TO {sql_string(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
            ).fetchall()[0][0]
            _raise_for_rejects(con, name)
            _raise_for_blank_required(con, tmp, reader, dataset, name)
            if rows == 0:
                raise BadFile(name, [Problem("no data rows: the file has only a header", line=2)])
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP TABLE IF EXISTS rejects; DROP TABLE IF EXISTS rejects_scan")
    return int(rows)


@contextlib.contextmanager
def _naming_a_full_disk(dest: Path) -> Iterator[None]:
    """A write that fails for want of space says which file it was writing."""
    try:
        yield
    except (OSError, duckdb.Error) as exc:
        if disk_full(exc) and not isinstance(exc, DiskFull):
            raise DiskFull(dest) from exc
        raise


@dataclass(frozen=True)
class BatchItem:
    """One CSV of a batch conversion: where it is, where its Parquet file goes, its extras."""

    csv_path: Path
    dest: Path
    extra: dict[str, str]  # column -> SQL literal, the same columns for every item


class BatchError(Exception):
    """A batch conversion failed for a reason that is not a file's fault (disk, Arrow)."""


# Rows per Arrow batch streamed out of DuckDB: a few batches are in memory at once (the queue
# below), so a batch conversion's memory does not follow the batch's size.
_ARROW_ROWS = 262_144


def convert_batch(
    con: duckdb.DuckDBPyConnection, items: list[BatchItem], dataset: CsvDataset, scratch: Path
) -> list[int] | None:
    """Convert many CSVs in one DuckDB scan, one Parquet file each; their row counts.

    The same result as convert_csv on each (types, trims, extras, atomic replace), at the cost
    of one scan: a backfill of a thousand daily files moves like one big file. Returns None,
    writing nothing, when any file would need convert_csv's diagnosis (empty, header, rejected
    or blank values, only a header): the caller then converts them one by one, so a bad file
    is still named, with line and column, and quarantined alone.

    DuckDB reads, types and cleans the files in one scan and streams the rows out as Arrow,
    in file order; pyarrow writes each file's rows to that file's Parquet, on this thread
    while DuckDB's threads read ahead. (DuckDB's own `PARTITION_BY` write of the same scan
    took 1.7x as long as one plain COPY; this takes about as long: docs/PERFORMANCE.md.)
    """
    if not items:
        return []
    headers: set[tuple[str, ...]] = set()
    for item in items:
        if item.csv_path.stat().st_size == 0:
            return None
        try:
            found = _read_header(item.csv_path, str(item.csv_path))
            _check_header(found, dataset, str(item.csv_path))
        except BadFile:
            return None
        headers.add(tuple(found))
    if len(headers) != 1:
        return None
    (header_row,) = headers
    header = list(header_row)
    paths = "[" + ", ".join(sql_string(str(i.csv_path)) for i in items) + "]"
    # Each file's extras (its date, when it was synced, ...) picked by the file's index.
    extras = {
        column: "[" + ", ".join(i.extra[column] for i in items) + "][r.file_index::BIGINT + 1]"
        for column in items[0].extra
    }
    query = (
        f"SELECT {_select_list(dataset, extras, table='r')}, r.file_index::BIGINT AS __i "
        f"FROM {_reader(paths, dataset, header)} r"
    )
    scratch.mkdir(parents=True, exist_ok=True)
    out = scratch / f".batch-{uuid.uuid4().hex[:8]}"
    out.mkdir()
    written = [out / f"{n}.parquet" for n in range(len(items))]
    try:
        counts = _write_per_file(con, query, written)
        if counts is None or con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]:
            return None
        if not all(counts):  # a header-only file: diagnose one by one
            return None
        # Parquet statistics hold null counts: one metadata read for the whole batch.
        required = [c for c in dataset.column_names if c not in dataset.optional]
        listed = "[" + ", ".join(sql_string(str(p)) for p in written) + "]"
        blank = con.execute(
            f"SELECT count(*) FROM parquet_metadata({listed}) WHERE stats_null_count > 0 "
            "AND path_in_schema IN (SELECT unnest(?))",
            [required],
        ).fetchall()[0][0]
        if blank:
            return None
        for part, item in zip(written, items, strict=True):
            publish(part, item.dest)  # same filesystem: the batch folder is in the lake
        return counts
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DROP TABLE IF EXISTS rejects; DROP TABLE IF EXISTS rejects_scan")
        shutil.rmtree(out, ignore_errors=True)


def _write_per_file(
    con: duckdb.DuckDBPyConnection, query: str, written: list[Path]
) -> list[int] | None:
    """Stream `query` (its last column `__i`, the file index, in ascending runs) into one
    Parquet file per index; the rows of each, or None if the rows did not come in file order.

    A reader thread pulls Arrow batches from DuckDB (which releases the GIL while it scans)
    into a short queue, so DuckDB reads while pyarrow compresses and writes.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    batches: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for batch in con.sql(query).to_arrow_reader(_ARROW_ROWS):
                while not stop.is_set():
                    try:
                        batches.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            batches.put(done)
        except BaseException as exc:  # handed to the writing thread, which raises it
            batches.put(exc)

    counts = [0] * len(written)
    writer: Any = None
    current = -1
    reader = threading.Thread(target=read, name="lake-batch-reader", daemon=True)
    reader.start()
    try:
        while (batch := batches.get()) is not done:
            if isinstance(batch, BaseException):
                raise batch
            if not batch.num_rows:
                continue
            index = batch.column(batch.num_columns - 1).to_numpy()
            rows = pa.Table.from_batches([batch]).drop_columns(["__i"])
            cuts = np.flatnonzero(np.diff(index)) + 1
            for start, end in zip([0, *cuts], [*cuts, len(index)], strict=True):
                n = int(index[start])
                if n != current:
                    if n < current or counts[n]:
                        return None  # not in file order: not worth guessing
                    if writer is not None:
                        writer.close()
                    writer = pq.ParquetWriter(written[n], rows.schema, compression="zstd")
                    current = n
                writer.write_table(rows.slice(start, end - start), row_group_size=_ARROW_ROWS)
                counts[n] += int(end - start)
        return counts
    except OSError as exc:  # pyarrow's IO errors are OSErrors that do not name the file
        if disk_full(exc):
            raise DiskFull(written[max(current, 0)]) from exc
        raise BatchError(f"writing Parquet: {exc}") from exc
    except pa.ArrowException as exc:
        raise BatchError(f"writing Parquet: {exc}") from exc
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                batches.get_nowait()
        reader.join()


def _raise_for_rejects(con: duckdb.DuckDBPyConnection, name: str) -> None:
    total = con.execute("SELECT count(*) FROM rejects").fetchall()[0][0]
    if not total:
        return
    rows = con.execute(
        "SELECT line, column_name, error_type, error_message FROM rejects "
        f"ORDER BY line, column_idx LIMIT {_MAX_PROBLEMS}"
    ).fetchall()
    problems = []
    for line, column, error_type, message in rows:
        if error_type == "INVALID ENCODING":
            message = "not valid UTF-8"
        elif error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
            message = f"{message.replace('Expected Number of Columns', 'expected columns')}"
            column = None
        problems.append(Problem(message, line=int(line), column=column))
    raise BadFile(name, problems, total=int(total))


def _raise_for_blank_required(
    con: duckdb.DuckDBPyConnection, tmp: Path, reader: str, dataset: CsvDataset, name: str
) -> None:
    # Parquet statistics carry null counts, so the happy path reads no data.
    nulls = con.execute(
        "SELECT path_in_schema, sum(stats_null_count) FROM parquet_metadata(?) "
        "GROUP BY path_in_schema",
        [str(tmp)],
    ).fetchall()
    required = {c for c in dataset.column_names if c not in dataset.optional}
    blank = [column for column, count in nulls if column in required and count]
    if not blank:
        return
    problems = []
    for column in blank:
        quoted = f'"{column}"'
        # Lines are counted from the header (line 1); rows are read in file order.
        lines = con.execute(
            f"SELECT line FROM (SELECT row_number() OVER () + 1 AS line, "
            f"nullif(trim({quoted}::VARCHAR), '') AS v FROM {reader}) WHERE v IS NULL "
            f"ORDER BY line LIMIT {_MAX_PROBLEMS}"
        ).fetchall()
        problems += [Problem("required value is blank", line=ln, column=column) for (ln,) in lines]
    raise BadFile(name, sorted(problems, key=lambda p: p.line or 0))
