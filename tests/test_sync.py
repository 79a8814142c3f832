"""The incremental sync on generated demo data, with the local source backend."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pytest

from dataflows import resources
from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets
from daybreak.ingest.sources import LocalSource, UnsafeBlobName, check_blob_name
from daybreak.ingest.sync import SyncContext, SyncFailed, SyncReport, sync_dataset
from daybreak.ingest.sync_state import SyncState
from tests.conftest import DEMO_END, RUN_DATE, write_config

pytestmark = pytest.mark.dates

UK = datasets.orders("UK")
DAYS, ROWS = 40, 25


def context(settings: Settings, *, full: bool = False) -> SyncContext:
    return resources.sync_context(
        settings,
        LocalSource(settings.paths.landing),
        SyncState(settings.state),
        RUN_DATE,
        full,
    )


def sync_uk(settings: Settings, *, full: bool = False, days_back: int = 30) -> SyncReport:
    return sync_dataset(
        context(settings, full=full), "uk_orders_azure", UK, market="UK", days_back=days_back
    )


def landing_file(settings: Settings, day: dt.date) -> Path:
    return settings.paths.landing / f"{UK.prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"


def lake_rows(settings: Settings, where: str = "true") -> int:
    pattern = settings.paths.lake / "orders" / "market=UK" / "**" / "*.parquet"
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}') WHERE {where}").fetchall()[
        0
    ][0]


def rewrite(path: Path, keep_lines: int | None = None, append: str = "") -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    if keep_lines is not None:
        lines = lines[:keep_lines]
    path.write_text("\n".join(lines) + "\n" + append, encoding="utf-8")
    # Make sure the size-and-mtime ETag differs even on a coarse clock.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_first_sync_is_a_backfill_and_a_rerun_syncs_nothing(demo_settings: Settings) -> None:
    first = sync_uk(demo_settings)
    assert first.backfill
    assert (first.files_synced, first.rows_loaded) == (DAYS, DAYS * ROWS)
    assert lake_rows(demo_settings) == DAYS * ROWS
    second = sync_uk(demo_settings)
    assert not second.backfill
    # Routine syncs look at the last 30 days only, and every one of them is unchanged.
    assert (second.files_synced, second.files_skipped, second.rows_loaded) == (0, 30, 0)


def test_lake_is_partitioned_by_market_and_year_one_file_per_source_file(
    demo_settings: Settings,
) -> None:
    sync_uk(demo_settings)
    folder = demo_settings.paths.lake / "orders" / "market=UK" / "year=2026"
    assert len(list(folder.glob("ingest_orders_2026*.parquet"))) == DAYS
    row = duckdb.sql(
        "SELECT market, file_date, source_blob "
        f"FROM '{folder}/ingest_orders_20260331.parquet' LIMIT 1"
    ).fetchall()[0]
    assert row == ("UK", DEMO_END, f"{UK.prefix}2026/ingest_orders_20260331.csv")


def test_changed_blob_replaces_its_rows_and_never_duplicates(demo_settings: Settings) -> None:
    sync_uk(demo_settings)
    day = DEMO_END - dt.timedelta(days=3)
    rewrite(landing_file(demo_settings, day), keep_lines=11)  # header + 10 rows
    report = sync_uk(demo_settings)
    assert (report.files_synced, report.rows_loaded) == (1, 10)
    assert lake_rows(demo_settings, f"file_date = DATE '{day}'") == 10
    assert lake_rows(demo_settings) == DAYS * ROWS - (ROWS - 10)


def test_routine_sync_looks_back_days_back_and_full_refresh_takes_everything(
    demo_settings: Settings,
) -> None:
    sync_uk(demo_settings)
    old_day = DEMO_END - dt.timedelta(days=35)
    rewrite(landing_file(demo_settings, old_day), keep_lines=6)
    assert sync_uk(demo_settings).files_synced == 0  # outside the 30-day window
    assert lake_rows(demo_settings, f"file_date = DATE '{old_day}'") == ROWS
    full = sync_uk(demo_settings, full=True)
    assert full.backfill and full.files_synced == DAYS
    assert lake_rows(demo_settings, f"file_date = DATE '{old_day}'") == 5


def test_deleted_blob_is_reported_and_retired_from_the_lake(demo_settings: Settings) -> None:
    sync_uk(demo_settings)
    day = DEMO_END - dt.timedelta(days=50 - DAYS)
    landing_file(demo_settings, day).unlink()
    report = sync_uk(demo_settings)
    assert report.files_deleted == 1
    assert report.deleted == [f"{UK.prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"]
    assert lake_rows(demo_settings) == (DAYS - 1) * ROWS
    retired = list((demo_settings.state.retired / "uk_orders_azure").rglob("*.parquet"))
    assert [p.name for p in retired] == [f"ingest_orders_{day:%Y%m%d}.parquet"]
    assert sync_uk(demo_settings).files_deleted == 0  # reported once


def test_lake_file_removed_by_hand_is_synced_again(demo_settings: Settings) -> None:
    sync_uk(demo_settings)
    lake_file = (
        demo_settings.paths.lake / "orders/market=UK/year=2026/ingest_orders_20260330.parquet"
    )
    lake_file.unlink()
    assert sync_uk(demo_settings).files_synced == 1
    assert lake_file.exists()


def test_bad_file_is_quarantined_others_sync_and_earlier_data_stays(
    demo_settings: Settings,
) -> None:
    sync_uk(demo_settings)
    bad_day = DEMO_END - dt.timedelta(days=2)
    bad = landing_file(demo_settings, bad_day)
    lines = bad.read_text().splitlines()
    lines[4] = lines[4].replace(":", "h", 1)  # an unparsable order_ts on line 5
    bad.write_text("\n".join(lines) + "\n")
    new_day = DEMO_END + dt.timedelta(days=1)
    new = landing_file(demo_settings, new_day)
    new.write_text(landing_file(demo_settings, DEMO_END).read_text())

    with pytest.raises(SyncFailed) as caught:
        sync_uk(demo_settings)
    message = str(caught.value)
    blob = f"{UK.prefix}2026/ingest_orders_{bad_day:%Y%m%d}.csv"
    assert f"{blob}: line 5, column 'order_ts'" in message
    report = caught.value.report
    assert (report.files_synced, report.files_quarantined) == (1, 1)
    assert lake_rows(demo_settings, f"file_date = DATE '{new_day}'") == ROWS  # the good file synced
    assert lake_rows(demo_settings, f"file_date = DATE '{bad_day}'") == ROWS  # earlier data intact

    quarantined = demo_settings.state.quarantine / "uk_orders_azure" / blob
    assert quarantined.read_bytes() == bad.read_bytes()
    sidecar = quarantined.with_name(quarantined.name + ".error.txt").read_text()
    assert f"blob: {blob}" in sidecar and "line 5, column 'order_ts'" in sidecar
    # Still bad on the next sync: it fails again rather than going quietly green.
    with pytest.raises(SyncFailed):
        sync_uk(demo_settings)


def test_on_bad_file_warn_returns_the_report_with_errors(tmp_path: Path) -> None:
    settings = load_settings(
        write_config(tmp_path, '[ingestion]\non_bad_file = "warn"\n'), environ={}
    )
    from daybreak.ingest import demo

    demo.generate(settings, end=DEMO_END)
    landing_file(settings, DEMO_END).write_bytes(b"")
    report = sync_uk(settings)
    assert report.files_quarantined == 1 and not report.ok
    assert "empty file (0 bytes)" in report.errors[0]
    assert report.files_synced == DAYS - 1


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("2026/ingest_orders_2026033.csv", "unexpected blob name"),
        ("2026/ingest_orders_20260231.csv", "not a real date"),
        ("2025/ingest_orders_20260329.csv", "filed under year 2025 but dated 2026-03-29"),
        ("2026\\..\\..\\evil.csv", "contains a backslash"),
    ],
)
def test_unexpected_or_hostile_names_are_rejected_and_the_rest_sync(
    demo_settings: Settings, relative: str, reason: str
) -> None:
    target = demo_settings.paths.landing / UK.prefix / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("anything\n")
    with pytest.raises(SyncFailed) as caught:
        sync_uk(demo_settings)
    assert reason in str(caught.value)
    assert caught.value.report.files_rejected == 1
    assert caught.value.report.files_synced == DAYS
    assert not list(demo_settings.paths.lake.rglob("*evil*"))


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "UK/../../x.csv",
        "/abs/x.csv",
        "C:/x.csv",
        "UK\\x.csv",
        "UK/\x00.csv",
        "UK//x.csv",
        "UK/./x.csv",
        "",
    ],
)
def test_check_blob_name_refuses_names_that_escape(name: str) -> None:
    with pytest.raises(UnsafeBlobName):
        check_blob_name(name)


def test_check_blob_name_accepts_ordinary_names() -> None:
    assert str(check_blob_name("UK/raw_data/a b/ingest_orders_20260101.csv")).endswith(".csv")


def test_reference_files_sync_once_and_again_only_when_changed(demo_settings: Settings) -> None:
    ctx = context(demo_settings)
    first = sync_dataset(ctx, "uk_products_sku", datasets.UK_PRODUCTS_SKU, market="UK", force=True)
    assert (first.files_synced, first.rows_loaded) == (1, 240)
    second = sync_dataset(ctx, "uk_products_sku", datasets.UK_PRODUCTS_SKU, market="UK", force=True)
    assert (second.files_synced, second.files_skipped) == (0, 1)
