"""The read-only database for people: views over Parquet snapshots, refreshed by change."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pytest

from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.execute import execute_run
from daybreak.warehouse import reader_database
from daybreak.warehouse.dbt_project import DbtBuildFailed, DbtProject
from daybreak.warehouse.reader_database import snapshot_folder
from tests.conftest import DEMO_END, MODELS, write_config

MARTS = ["qi_executive_daily_sales"]


MODELS_SELECTION = ["+qi_executive_daily_sales", "stg_uk_products_sku"]


def built(folder: Path, extra: str = "") -> Settings:
    """A demo synced and its models built by the `models` job."""
    settings = load_settings(write_config(folder, MODELS + extra, days=20, rows=20), environ={})
    demo.generate(settings, end=DEMO_END)
    assert execute_run(settings, settings.jobs["models"].select, job="models").status == "success"
    return settings


def reader_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def files(settings: Settings) -> set[str]:
    assert settings.reader_copy is not None
    return {p.name for p in snapshot_folder(settings.reader_copy).glob("*.parquet")}


def test_readers_see_the_marts_as_the_build_left_them_and_old_sessions_keep_reading(
    tmp_path: Path, clock: FixedClock
) -> None:
    settings = built(tmp_path)
    reader = settings.reader_copy
    assert reader is not None
    warehouse = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    expected = warehouse.execute("SELECT * FROM qi_executive_daily_sales ORDER BY ALL").fetchall()
    warehouse.close()
    got = reader_rows(reader, "SELECT * FROM qi_executive_daily_sales ORDER BY ALL")
    assert got == expected and len(got) > 0
    # Only the reader layers (marts by default), and when each snapshot was taken.
    views = reader_rows(reader, "SELECT view_name FROM duckdb_views() WHERE NOT internal")
    assert [v for (v,) in views] == MARTS
    (refreshed,) = reader_rows(reader, "SELECT model, rows FROM daybreak_refreshed")
    assert refreshed == ("qi_executive_daily_sales", len(expected))
    # The database is small: views, not data (the old copy was the whole warehouse).
    assert reader.stat().st_size < settings.paths.warehouse.stat().st_size / 4

    # A session opened before the next builds keeps reading what it saw.
    session = duckdb.connect(str(reader), read_only=True)
    first = files(settings)
    DbtProject(settings).build(MODELS_SELECTION)
    DbtProject(settings).build(MODELS_SELECTION)
    assert session.execute("SELECT count(*) FROM qi_executive_daily_sales").fetchone() == (
        len(expected),
    )
    session.close()
    assert first < files(settings)  # retired, kept for a day
    # A day later the snapshots retired then are gone; what is left is what the database names
    # and the one this build retired.
    clock.advance(dt.timedelta(days=1, minutes=1))
    DbtProject(settings).build(MODELS_SELECTION)
    record = json.loads((snapshot_folder(reader) / "current.json").read_text())
    assert not first & files(settings)
    named = {t["file"] for t in record["tables"].values()}
    assert files(settings) == named | set(record["retired"])
    assert len(files(settings)) == 2


def test_a_build_rewrites_only_the_reader_models_it_changed(tmp_path: Path) -> None:
    settings = built(tmp_path, '\n[warehouse]\nreader_layers = ["marts", "intermediate"]\n')
    reader = settings.reader_copy
    assert reader is not None
    views = {v for (v,) in reader_rows(reader, "SELECT view_name FROM duckdb_views() "
                                               "WHERE NOT internal")}  # fmt: skip
    assert views == {"qi_executive_daily_sales", "int_orders_summary_daily",
                     "int_customers_first_order", "int_market_calendar"}  # fmt: skip
    before = json.loads((snapshot_folder(reader) / "current.json").read_text())["tables"]
    DbtProject(settings).build(["qi_executive_daily_sales"])  # the mart only
    after = json.loads((snapshot_folder(reader) / "current.json").read_text())["tables"]
    changed = {name for name in after if after[name]["file"] != before[name]["file"]}
    assert changed == {"qi_executive_daily_sales"}


def test_an_open_database_on_windows_waits_and_keeps_what_it_names(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows refuses to replace an open file: the new database waits as `.next`, and the
    snapshots the database in place names are kept past the day, until it is replaced."""
    settings = built(tmp_path)
    reader = settings.reader_copy
    assert reader is not None
    in_place = files(settings)
    real = os.replace

    def windows(src: object, dst: object) -> None:
        if Path(str(dst)) == reader:
            raise PermissionError(13, "The process cannot access the file", str(dst))
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(reader_database.os, "replace", windows)
    DbtProject(settings).build(MODELS_SELECTION)
    waiting = reader.with_name("daybreak_readonly.next.duckdb")
    assert waiting.exists()
    clock.advance(dt.timedelta(days=3))
    DbtProject(settings).build(MODELS_SELECTION)
    assert in_place <= files(settings)  # the open database still finds its files
    monkeypatch.setattr(reader_database.os, "replace", real)
    DbtProject(settings).build(MODELS_SELECTION)  # closed: the new one takes its place
    assert not waiting.exists()
    clock.advance(dt.timedelta(days=2))
    DbtProject(settings).build(MODELS_SELECTION)
    assert not (in_place & files(settings))
    assert reader_rows(reader, "SELECT count(*) FROM qi_executive_daily_sales")[0][0] > 0


def test_a_record_that_does_not_read_rewrites_every_snapshot(tmp_path: Path) -> None:
    settings = built(tmp_path)
    reader = settings.reader_copy
    assert reader is not None
    (snapshot_folder(reader) / "current.json").write_text("{not json")
    DbtProject(settings).build(["qi_executive_daily_sales"])
    assert reader_rows(reader, "SELECT count(*) FROM qi_executive_daily_sales")[0][0] > 0


def test_a_forged_record_never_reaches_a_file_outside_its_folder(tmp_path: Path) -> None:
    """current.json names the files to delete; a forged one (`..`, an absolute path, a bad time)
    is no record: every snapshot is written again and nothing outside the folder is touched."""
    settings = built(tmp_path)
    reader = settings.reader_copy
    assert reader is not None
    folder = snapshot_folder(reader)
    precious = folder.parent.parent / "precious.parquet"
    precious.write_bytes(b"keep me")
    long_ago = "2000-01-01T00:00:00+00:00"
    for forged in (
        {"../../precious.parquet": long_ago},
        {str(precious): long_ago},
        {"qi_executive_daily_sales.20000101T000000-abcdef.parquet": "not a time"},
    ):
        record = json.loads((folder / "current.json").read_text())
        record["retired"] = forged
        record["in_place"] = []
        (folder / "current.json").write_text(json.dumps(record))
        DbtProject(settings).build(["qi_executive_daily_sales"])
        assert precious.read_bytes() == b"keep me"
        assert settings.paths.warehouse.exists()
        assert reader_rows(reader, "SELECT count(*) FROM qi_executive_daily_sales")[0][0] > 0


def test_a_mart_a_failed_build_changed_is_published_by_the_next_passing_build(
    tmp_path: Path,
) -> None:
    """A build whose mart built but whose other test failed changes the mart's table without
    publishing it; the next passing build publishes it, though it does not build the mart."""
    settings = built(tmp_path)
    reader = settings.reader_copy
    assert reader is not None
    record = snapshot_folder(reader) / "current.json"
    before = json.loads(record.read_text())["tables"]["qi_executive_daily_sales"]["file"]
    products = next((settings.paths.lake / "reference" / "uk_products_sku").glob("*.parquet"))
    good = products.read_bytes()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet('{products}') UNION ALL "
                f"(SELECT * FROM read_parquet('{products}') LIMIT 1)) TO '{products}.dup' "
                "(FORMAT parquet)")  # fmt: skip
    con.close()
    os.replace(f"{products}.dup", products)  # a duplicate SKU: stg_uk_products_sku's test fails
    with pytest.raises(DbtBuildFailed, match="stg_uk_products_sku"):
        DbtProject(settings).build(["qi_executive_daily_sales", "stg_uk_products_sku"])
    assert json.loads(record.read_text())["tables"]["qi_executive_daily_sales"]["file"] == before
    products.write_bytes(good)
    DbtProject(settings).build(["stg_uk_products_sku"])  # passes; the mart is not selected
    after = json.loads(record.read_text())["tables"]["qi_executive_daily_sales"]["file"]
    assert after != before
    assert not (settings.state.dbt / "unpublished.json").exists()
    DbtProject(settings).build(["stg_uk_products_sku"])  # published once, not at every build
    assert json.loads(record.read_text())["tables"]["qi_executive_daily_sales"]["file"] == after
