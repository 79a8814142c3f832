"""Incremental sync of one dataset from the landing zone into the lake.

Policies, in order of a sync:
- The whole prefix is listed (names and ETags only) every time, so deletions are always seen.
- A blob whose name is unsafe, unexpected or carries an impossible date is rejected; the rest go on.
- Routine syncs look only at blobs from the last `days_back` days ([ingestion] days_back unless
  the asset says otherwise; the date in the name, else the last-modified time); an empty lake, a
  full refresh or `force` looks at everything. A backfill's `window` (first and last day) takes
  every dated blob of those days, whatever its ETag, and no other dated blob.
- A blob whose recorded ETag is unchanged and whose lake file exists is skipped (a full refresh
  re-syncs it); a new or changed blob is converted to its own Parquet file, replacing that file
  atomically (never duplicating rows). Many at once (a backfill) are converted in batches of up
  to 64 files by one DuckDB statement each; a batch with any file in doubt is redone one file at
  a time, so a bad file is still diagnosed and quarantined on its own.
- A blob that fails validation is copied to quarantine with an .error.txt sidecar; the lake keeps
  whatever it had for it. It is not recorded, so it is tried again (and reported) on every sync
  until upstream fixes it.
- State is recorded per file right after its Parquet file is in place, so a sync killed at any
  point resumes where it stopped.
- A blob recorded earlier but gone upstream has its Parquet file moved out of the lake into
  state/retired/ and is reported as deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from daybreak import clock, progress
from daybreak.files import clean_stale_tmp
from daybreak.ingest import lake
from daybreak.ingest.datasets import CsvDataset
from daybreak.ingest.sources import BlobInfo, Source, UnsafeBlobName, check_blob_name, copy_into
from daybreak.ingest.sync_state import SyncedBlob, SyncState, SyncStateCopy
from daybreak.state import StateLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncContext:
    """Everything a sync needs besides the dataset: resolved once per run from Settings."""

    source: Source
    lake_root: Path
    state: SyncState | SyncStateCopy
    layout: StateLayout
    run_date: dt.date
    full_refresh: bool = False
    on_bad_file: str = "fail"
    days_back: int = 30  # [ingestion] days_back: how far back a routine sync looks
    # Decide only: list the source and compare with the sync state, write nothing (for `plan`).
    dry_run: bool = False
    volume_ratio: float = 0.5  # [ingestion] volume check (see volume_warnings)
    volume_weeks: int = 6
    min_rows: int = 0
    # A backfill chunk: re-sync every dated file of these days (first, last), and no other.
    window: tuple[dt.date, dt.date] | None = None


@dataclass
class SyncReport:
    """What one sync did: the asset's return value and the line in the run summary."""

    asset: str
    source: str
    rows_loaded: int = 0
    files_synced: int = 0
    files_skipped: int = 0
    files_quarantined: int = 0
    files_rejected: int = 0
    files_deleted: int = 0
    bytes: int = 0
    seconds: float = 0.0
    backfill: bool = False
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # A dry run: the blobs a sync would convert (new, changed, or still bad), by name.
    pending: list[str] = field(default_factory=list)
    # ... and as listed (ETag, size, last modified): what an arrival watcher settles on.
    pending_blobs: list[BlobInfo] = field(default_factory=list)
    # Of those, files synced before whose Parquet file is no longer in the lake (deleted by hand).
    lake_missing: list[str] = field(default_factory=list)
    # Daily files far below the usual volume for their weekday: probable partial exports.
    volume_warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        text = (
            f"{self.rows_loaded:,} rows from {self.files_synced} files "
            f"({self.files_skipped} unchanged, {self.files_quarantined} quarantined, "
            f"{self.files_rejected} rejected, {self.files_deleted} deleted upstream), "
            f"{self.bytes / 1e6:,.1f} MB"
        )
        return ("backfill: " if self.backfill else "") + text


class SyncFailed(Exception):
    """A sync finished but some files were bad; the report says which and where."""

    def __init__(self, report: SyncReport) -> None:
        self.report = report
        errors = report.errors
        more = f"\n  (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(
            f"{len(errors)} bad file(s), the others synced; first: {errors[0]}\n"
            f"  {report.summary()}\n  " + "\n  ".join(errors[:10]) + more
        )

    def __reduce__(self) -> Any:  # pickled with its report (a Dask worker raises it)
        return (SyncFailed, (self.report,))


def _dataset_root(dataset: CsvDataset, market: str) -> str:
    fixed = dataset.lake_path.split("{year}")[0].split("{stem}")[0].format(market=market)
    return fixed.rsplit("/", 1)[0]


def _quarantine(
    ctx: SyncContext, asset: str, blob: BlobInfo, path: Path, bad: lake.BadFile
) -> Path:
    target = ctx.layout.quarantine / asset / PurePosixPath(blob.name)
    copy_into(path, target)
    sidecar = target.with_name(target.name + ".error.txt")
    lines = [
        f"blob: {blob.name}",
        f"etag: {blob.etag}",
        f"size: {blob.size}",
        f"asset: {asset}",
        f"quarantined_at: {clock.now().isoformat(timespec='seconds')}",
        f"problems ({bad.total}):",
        *(f"  {problem}" for problem in bad.problems),
    ]
    sidecar.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _retire(ctx: SyncContext, asset: str, synced: SyncedBlob) -> None:
    live = ctx.lake_root / synced.lake_path
    if live.exists():
        target = ctx.layout.retired / asset / clock.stamp() / synced.lake_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(live, target)
    ctx.state.forget(asset, synced.blob)


def sync_dataset(
    ctx: SyncContext,
    asset: str,
    dataset: CsvDataset,
    *,
    market: str,
    days_back: int | None = None,
    force: bool = False,
) -> SyncReport:
    """Bring the lake's copy of `dataset` up to date with the source; see the module docstring.

    `force` takes the blobs whatever their age (single reference files that change rarely).
    """
    started = time.monotonic()
    report = SyncReport(asset=asset, source=ctx.source.description)
    if ctx.dry_run:  # what `plan` asks: the same decision, nothing done
        known = ctx.state.synced_blobs(asset)
        todo, gone = _decide(ctx, dataset, market, days_back, force, known, report)
        report.pending = [blob.name for blob, _, _ in todo]
        report.pending_blobs = [blob for blob, _, _ in todo]
        report.deleted, report.files_deleted = gone, len(gone)
        return report
    with ctx.state.lock(asset):
        clean_stale_tmp(ctx.lake_root / _dataset_root(dataset, market))
        known = ctx.state.synced_blobs(asset)
        todo, gone = _decide(ctx, dataset, market, days_back, force, known, report)
        con = lake.connect()
        try:
            batches = ctx.lake_root / ".batches" / asset
            shutil.rmtree(batches, ignore_errors=True)  # what a killed sync left
            done = 0
            converted = _convert_batches(ctx, con, dataset, list(_batches(todo)), market, batches)
            for batch, counts in converted:
                if counts is not None:
                    _record_batch(ctx, asset, batch, counts, report)
                    done += len(batch)
                    progress.emit(progress.Event("files", asset, "running", done, len(todo)))
                    continue
                for blob, lake_path, file_date in batch:  # one by one: each bad file named
                    _sync_blob(ctx, con, asset, dataset, blob, lake_path, market, file_date,
                               report)  # fmt: skip
                    done += 1
                    progress.emit(progress.Event("files", asset, "running", done, len(todo)))
            shutil.rmtree(batches, ignore_errors=True)
        finally:
            con.close()
        for name in gone:
            _retire(ctx, asset, known[name])
            report.files_deleted += 1
            report.deleted.append(name)
            log.warning("%s was deleted upstream; its lake file was retired", name)
        _check_volume(ctx, asset, dataset, [blob.name for blob, _, _ in todo], report)
    report.seconds = round(time.monotonic() - started, 3)
    log.info("Synced %s rows (%s)", f"{report.rows_loaded:,}", report.summary())
    if report.errors:
        if ctx.on_bad_file == "fail":
            raise SyncFailed(report)
        for error in report.errors:
            log.warning("bad file (on_bad_file = 'warn'): %s", error)
    return report


def _decide(
    ctx: SyncContext,
    dataset: CsvDataset,
    market: str,
    days_back: int | None,
    force: bool,
    known: dict[str, SyncedBlob],
    report: SyncReport,
) -> tuple[list[_Todo], list[str]]:
    """From listing names and ETags alone: the blobs to convert, and those gone upstream.

    Refused names and unchanged blobs are counted on `report`. A sync and `plan` (a dry run)
    both decide here, so they cannot disagree.
    """
    report.backfill = ctx.full_refresh or not known or ctx.window is not None
    cutoff = None
    if not (ctx.full_refresh or not known) and not force and ctx.window is None:
        back = ctx.days_back if days_back is None else days_back
        cutoff = ctx.run_date - dt.timedelta(days=back)
    listed: set[str] = set()
    todo: list[_Todo] = []
    for blob in ctx.source.list(dataset.prefix):
        listed.add(blob.name)
        try:
            file_date, lake_path = _plan(dataset, blob, market)
        except _Rejected as rejected:
            report.files_rejected += 1
            report.errors.append(str(rejected))
            if not ctx.dry_run:
                log.error("%s", rejected)
            continue
        if cutoff is not None and (file_date or blob.last_modified.date()) < cutoff:
            continue
        if ctx.window is not None and file_date is not None:
            if ctx.window[0] <= file_date <= ctx.window[1]:
                todo.append((blob, lake_path, file_date))  # a backfill re-syncs its days
            continue
        previous = known.get(blob.name)
        if previous is not None and previous.etag == blob.etag and not ctx.full_refresh:
            if (ctx.lake_root / previous.lake_path).exists():
                report.files_skipped += 1
                continue
            report.lake_missing.append(blob.name)  # synced before; its Parquet file is gone
            if not ctx.dry_run:
                log.warning("%s was synced before but %s is missing from the lake: synced again",
                            blob.name, previous.lake_path)  # fmt: skip
        todo.append((blob, lake_path, file_date))
    return todo, [name for name in known if name not in listed]


def _check_volume(
    ctx: SyncContext, asset: str, dataset: CsvDataset, synced: list[str], report: SyncReport
) -> None:
    """Flag daily files far below the median of the same weekday over recent weeks, and fail
    those below [ingestion] min_rows; from the rows the sync state keeps, no data read again."""
    if not synced or (ctx.volume_ratio <= 0 and ctx.min_rows <= 0):
        return
    by_day: dict[dt.date, tuple[str, int]] = {}
    for name, blob in ctx.state.synced_blobs(asset).items():
        match = dataset.match(name)
        day = dataset.file_date(match) if match else None
        if day is not None:
            by_day[day] = (name, blob.rows)
    for day, (name, rows) in sorted(by_day.items()):
        if name not in synced:
            continue
        if rows < ctx.min_rows:
            report.errors.append(f"{name}: {rows:,} rows, fewer than [ingestion] min_rows "
                                 f"({ctx.min_rows:,}): a partial export?")  # fmt: skip
            continue
        same_weekday = [
            by_day[d][1] for k in range(1, ctx.volume_weeks + 1)
            if (d := day - dt.timedelta(weeks=k)) in by_day
        ]  # fmt: skip
        if ctx.volume_ratio <= 0 or len(same_weekday) < 3:
            continue  # too little history to judge
        usual = statistics.median(same_weekday)
        if rows < ctx.volume_ratio * usual:
            warning = (
                f"{name}: {rows:,} rows, {rows / usual:.0%} of the usual {usual:,.0f} for a "
                f"{day:%A} (median of {len(same_weekday)} weeks): probably a partial export"
            )
            report.volume_warnings.append(warning)
            log.warning("volume check: %s", warning)
    del report.volume_warnings[20:]


class _Rejected(Exception):
    """A blob refused on its name alone; the message says why."""


def _plan(dataset: CsvDataset, blob: BlobInfo, market: str) -> tuple[dt.date | None, str]:
    """The blob's date and lake path, or _Rejected saying why it cannot be synced."""
    try:
        check_blob_name(blob.name)
    except UnsafeBlobName as exc:
        raise _Rejected(f"{exc}; refused, it would escape the lake") from None
    match = dataset.match(blob.name)
    if match is None:
        raise _Rejected(
            f"{blob.name}: unexpected blob name under {dataset.prefix!r} "
            f"(expected {dataset.blob_pattern!r})"
        )
    try:
        file_date = dataset.file_date(match)
    except ValueError:
        raise _Rejected(f"{blob.name}: the date in the name is not a real date") from None
    year = match.groupdict().get("year")
    if file_date is not None and year is not None and int(year) != file_date.year:
        raise _Rejected(f"{blob.name}: filed under year {year} but dated {file_date}")
    lake_path = dataset.lake_path.format(
        market=market,
        year=file_date.year if file_date else "",
        stem=PurePosixPath(blob.name).stem,
    )
    return file_date, lake_path


_Todo = tuple[BlobInfo, str, "dt.date | None"]
# A backfill converts up to this many files (and bytes of CSV) in one DuckDB statement; the
# partitioned write keeps each file's rows in memory until it closes, so bytes bound memory.
BATCH_FILES = 64
BATCH_BYTES = 256 << 20


def _batches(todo: list[_Todo]) -> Iterator[list[_Todo]]:
    batch: list[_Todo] = []
    size = 0
    for item in todo:
        if batch and (len(batch) >= BATCH_FILES or size + item[0].size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[0].size
    if batch:
        yield batch


def _extras(
    blob: BlobInfo, market: str, file_date: dt.date | None, synced_at: str
) -> dict[str, str]:
    # synced_at lets dbt's incremental models pick exactly the files changed since their last build.
    extra = {
        "source_blob": lake.sql_string(blob.name),
        "synced_at": f"TIMESTAMP {lake.sql_string(synced_at)}",
    }
    if file_date is not None:
        extra = {
            "market": lake.sql_string(market),
            "file_date": f"DATE {lake.sql_string(file_date.isoformat())}",
            **extra,
        }
    return extra


def _now() -> str:
    return clock.now().replace(tzinfo=None).isoformat(sep=" ")


# Where a sync's batches are converted: None here, in this thread; on a Dask worker the engine
# sets a map over the cluster, so a backfill's batches spread over every worker
# (daybreak.runner.engine). It takes a function and its argument tuples and yields the results
# in order.
Mapper = Callable[[Callable[..., Any], list[tuple[Any, ...]]], Iterator[Any]]
fan_out: ContextVar[Mapper | None] = ContextVar("fan_out", default=None)


def _convert_batches(
    ctx: SyncContext,
    con: duckdb.DuckDBPyConnection,
    dataset: CsvDataset,
    batches: list[list[_Todo]],
    market: str,
    scratch: Path,
) -> Iterator[tuple[list[_Todo], list[int] | None]]:
    """Each batch with its row counts, or None for a batch to go one file at a time (a single
    file, or one in doubt). With a fan-out, the batches convert as tasks of their own."""
    work = [(i, b) for i, b in enumerate(batches) if len(b) > 1]
    mapper = fan_out.get()
    results = None
    if mapper is not None and len(work) > 1:
        args = [(ctx.source, ctx.layout.scratch, ctx.lake_root, dataset, batch, market, _now(),
                 scratch / str(i), None) for i, batch in work]  # fmt: skip
        results = mapper(convert_batch, args)  # all submitted; they come back in order
    for i, batch in enumerate(batches):
        if len(batch) == 1:
            yield batch, None
        elif results is not None:
            yield batch, next(results)  # recorded by the caller before the next one is read
        else:
            # Stamped when it is written: a later batch is never older than one a build saw.
            yield batch, convert_batch(ctx.source, ctx.layout.scratch, ctx.lake_root, dataset,
                                       batch, market, _now(), scratch / str(i), con)  # fmt: skip


def convert_batch(
    source: Source,
    fetch_scratch: Path,
    lake_root: Path,
    dataset: CsvDataset,
    batch: list[_Todo],
    market: str,
    synced_at: str,
    scratch: Path,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[int] | None:
    """Convert a batch in one statement, on whichever process runs it; None (nothing written)
    if a file needs diagnosis one at a time."""
    own = con is None
    con = con or lake.connect()
    try:
        with contextlib.ExitStack() as stack:
            items = [
                lake.BatchItem(
                    stack.enter_context(source.fetch(blob, fetch_scratch)),
                    lake_root / lake_path,
                    _extras(blob, market, file_date, synced_at),
                )
                for blob, lake_path, file_date in batch
            ]
            try:
                return lake.convert_batch(con, items, dataset, scratch)
            except (duckdb.Error, lake.BatchError) as exc:  # not a file's fault: one by one
                log.warning("batch conversion of %d files failed (%s); converting one by one",
                            len(items), exc)  # fmt: skip
                return None
    finally:
        if own:
            con.close()


def _record_batch(
    ctx: SyncContext, asset: str, batch: list[_Todo], counts: list[int], report: SyncReport
) -> None:
    for (blob, lake_path, _), rows in zip(batch, counts, strict=True):
        ctx.state.record_synced(asset, SyncedBlob(blob.name, blob.etag, blob.size, rows, lake_path))
        report.rows_loaded += rows
        report.files_synced += 1
        report.bytes += blob.size


def _sync_blob(
    ctx: SyncContext,
    con: duckdb.DuckDBPyConnection,
    asset: str,
    dataset: CsvDataset,
    blob: BlobInfo,
    lake_path: str,
    market: str,
    file_date: dt.date | None,
    report: SyncReport,
) -> None:
    extra = _extras(blob, market, file_date, _now())
    with ctx.source.fetch(blob, ctx.layout.scratch) as path:
        try:
            rows = lake.convert_csv(
                con, path, dataset, ctx.lake_root / lake_path, name=blob.name, extra=extra
            )
        except lake.BadFile as bad:
            where = _quarantine(ctx, asset, blob, path, bad)
            report.files_quarantined += 1
            report.errors.append(f"{bad} (quarantined to {where})")
            log.error("%s (quarantined to %s)", bad, where)
            return
    ctx.state.record_synced(asset, SyncedBlob(blob.name, blob.etag, blob.size, rows, lake_path))
    report.rows_loaded += rows
    report.files_synced += 1
    report.bytes += blob.size
