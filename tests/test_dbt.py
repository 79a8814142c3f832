"""The dbt project on demo data, in the asset graph: numbers, tests, incrementality, the lock."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from daybreak.assets import catalogue
from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets, demo
from daybreak.runner.history import History
from daybreak.runner.materialize import AssetResult, materialize, run_inputs
from daybreak.warehouse import lock
from daybreak.warehouse.dbt_project import DbtBuildFailed, DbtProject
from daybreak.warehouse.lock import warehouse_lock
from tests.conftest import DEMO_END, ROOT, RUN_DATE, write_config

DAYS, ROWS = 40, 25


def run(settings: Settings, *names: str, full: bool = False) -> dict[str, AssetResult]:
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    plan = catalogue.with_upstream(assets, catalogue.select(assets, list(names)))
    inputs = {"settings": settings, **run_inputs(full_refresh=full, run_date=RUN_DATE)}
    return {r.name: r for r in materialize(dr, assets, plan, inputs)}


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def new_settings(folder: Path, extra: str = "") -> Settings:
    settings = load_settings(write_config(folder, extra, days=DAYS, rows=ROWS), environ={})
    demo.generate(settings, end=DEMO_END)
    return settings


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, AssetResult]]:
    """Demo data synced and the daily sales models built once for the module."""
    settings = new_settings(tmp_path_factory.mktemp("dbt"))
    return settings, run(settings, "build_daily_sales_models")


def hand_computed_day(settings: Settings, market: str, day: dt.date) -> dict[str, Any]:
    """The day's figures from the landing CSVs with Python's csv module: no DuckDB, no dbt."""
    first_order: dict[str, dt.date] = {}
    day_lines = []
    for path in sorted((settings.paths.landing / datasets.orders(market).prefix).rglob("*.csv")):
        file_day = dt.datetime.strptime(path.stem[-8:], "%Y%m%d").date()
        with path.open(newline="", encoding="utf-8") as fh:
            for line in csv.DictReader(fh):
                if line["status"].strip() == "cancelled":
                    continue
                customer = line["customer_id"].strip()
                first_order[customer] = min(first_order.get(customer, file_day), file_day)
                if file_day == day:
                    day_lines.append(line)
    if market == "UK":  # the CRM knows first orders from before the lake's history
        crm = settings.paths.landing / datasets.UK_NEW_NAMES.prefix / "new_names.csv"
        with crm.open(newline="", encoding="utf-8") as fh:
            for line in csv.DictReader(fh):
                known = dt.date.fromisoformat(line["first_order_date"])
                customer = line["customer_id"].strip()
                first_order[customer] = min(first_order.get(customer, known), known)
    gross = sum(
        int(x["quantity"]) * Decimal(x["unit_price"]) - Decimal(x["discount"] or 0)
        for x in day_lines
    )
    returns = sum(int(x["returned_quantity"] or 0) * Decimal(x["unit_price"]) for x in day_lines)
    return {
        "orders": len({x["order_id"] for x in day_lines}),
        "order_lines": len(day_lines),
        "units": sum(int(x["quantity"]) for x in day_lines),
        "gross": gross,
        "returns": returns,
        "net": gross - returns,
        "new_customers": sum(1 for d in first_order.values() if d == day),
    }


@pytest.mark.parametrize(("market", "rate"), [("UK", Decimal(1)), ("JP", Decimal(190))])
def test_a_hand_computed_day_matches_the_summary_and_the_mart(
    built: tuple[Settings, dict[str, AssetResult]], market: str, rate: Decimal
) -> None:
    settings, results = built
    assert results["build_daily_sales_models"].status == "success"
    day = DEMO_END - dt.timedelta(days=3)
    expected = hand_computed_day(settings, market, day)
    (row,) = query(
        settings,
        "SELECT orders, order_lines, units, gross_sales_local, returns_local, net_sales_local, "
        f"net_sales_gbp, new_customers FROM int_orders_summary_daily "
        f"WHERE market = '{market}' AND order_date = DATE '{day}'",
    )
    net_gbp = (expected["net"] / rate).quantize(Decimal("0.01"))
    assert row == (
        expected["orders"], expected["order_lines"], expected["units"], expected["gross"],
        expected["returns"], expected["net"], net_gbp, expected["new_customers"],
    )  # fmt: skip

    budget = query(
        settings,
        "SELECT budget_gbp FROM read_parquet("
        f"'{settings.paths.lake}/budget/daily_sales_budget_exchange.parquet') "
        f"WHERE market = '{market}' AND date = DATE '{day}'",
    )[0][0]
    month_days = [day - dt.timedelta(days=i) for i in range(day.day)]
    mtd = sum(
        (hand_computed_day(settings, market, d)["net"] / rate).quantize(Decimal("0.01"))
        for d in month_days
        if d >= DEMO_END - dt.timedelta(days=DAYS - 1)
    )
    (mart,) = query(
        settings,
        "SELECT net_sales_gbp, budget_gbp, variance_gbp, mtd_net_sales_gbp "
        f"FROM qi_executive_daily_sales WHERE market = '{market}' AND sales_date = DATE '{day}'",
    )
    assert mart == (net_gbp, budget, net_gbp - budget, mtd)


def test_the_total_row_sums_the_markets(built: tuple[Settings, dict[str, AssetResult]]) -> None:
    settings, _ = built
    rows = query(
        settings,
        "SELECT sales_date, sum(net_sales_gbp) FILTER (market <> 'ALL'), "
        "sum(net_sales_gbp) FILTER (market = 'ALL') FROM qi_executive_daily_sales GROUP BY 1",
    )
    assert len(rows) == DAYS
    assert all(markets == total for _, markets, total in rows)


def test_dbt_unit_tests_and_data_tests_ran_and_passed(
    built: tuple[Settings, dict[str, AssetResult]],
) -> None:
    _, results = built
    report = results["build_daily_sales_models"].value
    unit_tests = {n.name: n.status for n in report.nodes if n.resource_type == "unit_test"}
    assert unit_tests == {
        "qi_executive_daily_sales_variance_month_and_year_to_date": "pass",
        "qi_executive_daily_sales_year_restarts_and_last_year_is_weekday_aligned": "pass",
    }
    assert len(report.tests) > 50 and not report.failures
    assert {m.name for m in report.models} >= {"stg_uk_orders", "qi_executive_daily_sales"}
    assert all(m.rows for m in report.models)
    # The read-only copy was refreshed, and what it cost is said apart (docs/PERFORMANCE.md).
    settings = built[0]
    assert settings.reader_copy is not None and settings.reader_copy.exists()
    assert 0 < report.reader_copy_seconds <= report.seconds


def test_every_dbt_model_is_an_asset_with_its_true_upstream(
    built: tuple[Settings, dict[str, AssetResult]],
) -> None:
    settings, _ = built
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    assert assets["stg_uk_orders"].upstream == ("uk_orders_azure",)
    assert assets["stg_budget"].upstream == ("daily_sales_budget_exchange_ingest",)
    assert assets["stg_uk_orders"].group == "dbt_staging_uk_azure"
    assert assets["int_orders_summary_daily"].group == "dbt_transformations_cross_market"
    assert assets["qi_executive_daily_sales"].group == "dbt_marts_cross_market_commercial"
    assert "int_orders_summary_daily" in assets["qi_executive_daily_sales"].upstream
    upstream_of_mart = catalogue.with_upstream(assets, ["qi_executive_daily_sales"])
    assert {"uk_orders_azure", "jp_orders_azure", "daily_sales_budget_exchange_ingest"} <= set(
        upstream_of_mart
    )
    assert "uk_products_sku" not in upstream_of_mart


def _project_copy(settings: Settings, folder: Path) -> Path:
    copy = folder / "dbt-copy"
    shutil.copytree(
        settings.paths.dbt_project, copy, ignore=shutil.ignore_patterns("target", "logs")
    )
    return copy


def _using_project(settings: Settings, project: Path) -> Settings:
    config = settings.config_path
    text = config.read_text().replace(
        "[paths]", f'[paths]\ndbt_project = "{project.as_posix()}"', 1
    )
    config.write_text(text)
    return load_settings(config, environ={})


def test_a_model_added_to_the_project_appears_as_an_asset(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path), environ={})
    copy = _project_copy(settings, tmp_path)
    (copy / "models/marts/commercial/qi_uk_weekly_sales.sql").write_text(
        "select date_trunc('week', order_date) as week, sum(net_sales_gbp) as net_sales_gbp\n"
        "from {{ ref('int_orders_summary_daily') }} where market = 'UK' group by 1\n"
    )
    settings = _using_project(settings, copy)
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    assert assets["qi_uk_weekly_sales"].upstream == ("int_orders_summary_daily",)
    assert assets["qi_uk_weekly_sales"].group == "dbt_marts_uk_commercial"


def test_a_failing_dbt_test_fails_its_model_and_stops_downstream(tmp_path: Path) -> None:
    settings = new_settings(tmp_path / "base")
    copy = _project_copy(settings, tmp_path)
    (copy / "tests").mkdir(exist_ok=True)
    (copy / "tests/assert_no_day_over_a_million.sql").write_text(
        "-- Fails on purpose: every demo day sells something.\n"
        "select * from {{ ref('int_orders_summary_daily') }} where net_sales_local > 0\n"
    )
    settings = _using_project(settings, copy)

    results = run(settings, "qi_executive_daily_sales")
    failed = results["int_orders_summary_daily"]
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith(
        "int_orders_summary_daily: test assert_no_day_over_a_million fail"
    )
    assert "Got 160 results" in failed.error  # dbt's own message
    assert results["qi_executive_daily_sales"].status == "skipped"
    assert results["stg_uk_orders"].status == "success"

    with pytest.raises(
        DbtBuildFailed,
        match=r"test assert_no_day_over_a_million \(on int_orders_summary_daily\) fail",
    ):
        DbtProject(settings).build(["+qi_executive_daily_sales"])
    flow = run(settings, "build_daily_sales_models")
    assert flow["build_daily_sales_models"].status == "failed"
    assert "int_orders_summary_daily" in (flow["build_daily_sales_models"].error or "")


def test_incremental_build_touches_only_new_and_resynced_days(
    tmp_path: Path, clock: FixedClock
) -> None:
    settings = new_settings(tmp_path / "base")
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].status == "success"
    before = clock.now()
    clock.advance(dt.timedelta(minutes=1))  # what syncs next is stamped after `before`

    new_day = DEMO_END + dt.timedelta(days=1)
    scratch = tmp_path / "scratch"
    demo.generate(settings, days=1, end=new_day, root=scratch)
    relative = f"{datasets.orders('UK').prefix}{new_day:%Y}/ingest_orders_{new_day:%Y%m%d}.csv"
    (settings.paths.landing / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(scratch / relative, settings.paths.landing / relative)
    old_day = DEMO_END - dt.timedelta(days=5)
    old = settings.paths.landing / relative.replace(f"{new_day:%Y%m%d}", f"{old_day:%Y%m%d}")
    lines = old.read_text().splitlines()
    old.write_text("\n".join(lines[:11]) + "\n")  # re-exported with 10 lines

    results = run(settings, "build_daily_sales_models")
    assert results["build_daily_sales_models"].status == "success"
    since = before.replace(tzinfo=None)
    touched = query(
        settings,
        f"SELECT file_date, count(*) FROM stg_uk_orders WHERE synced_at > TIMESTAMP '{since}' "
        "GROUP BY 1 ORDER BY 1",
    )
    assert touched == [(old_day, 10), (new_day, ROWS)]
    assert (
        query(settings, "SELECT count(*) FROM stg_uk_orders")[0][0] == (DAYS - 1) * ROWS + 10 + ROWS
    )
    recomputed = query(
        settings,
        "SELECT market, order_date FROM int_orders_summary_daily "
        f"WHERE last_synced_at > TIMESTAMP '{since}' ORDER BY 2",
    )
    assert recomputed == [("UK", old_day), ("UK", new_day)]
    (lines_now,) = query(
        settings,
        "SELECT order_lines FROM int_orders_summary_daily "
        f"WHERE market = 'UK' AND order_date = DATE '{old_day}'",
    )[0]
    assert lines_now == sum(1 for x in lines[1:11] if ",cancelled," not in x)


def test_a_second_writer_waits_for_the_warehouse_lock_and_then_succeeds(tmp_path: Path) -> None:
    settings = new_settings(tmp_path)
    log = tmp_path / "runner.log"
    with warehouse_lock(settings.state, "the test holding the warehouse"):
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "runner.py"), "materialize", "build_daily_sales_models",
                 "--config", str(settings.config_path)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while "waiting for the warehouse lock" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert "the test holding the warehouse" in log.read_text()  # says who holds it
        waiters = lock.waiting(settings.state)  # and status shows who waits
        assert len(waiters) == 1 and "qi_executive_daily_sales" in str(waiters[0]["what"])
        assert lock.holder(settings.state)["what"] == "the test holding the warehouse"  # type: ignore[index]
    assert proc.wait(timeout=300) == 0, log.read_text()
    assert "build_daily_sales_models" in log.read_text()


def test_two_processes_building_at_once_both_succeed_one_after_the_other(tmp_path: Path) -> None:
    settings = new_settings(tmp_path)
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].status == "success"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = []
    for log_file in logs:
        with log_file.open("w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "runner.py"), "materialize", "build_daily_sales_models",
                 "--config", str(settings.config_path)],
                stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    codes = [p.wait(timeout=300) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    assert all("11/11 models built" in text for text in texts)
    # The models count as materialized by the build: freshness and status see them.
    assert "qi_executive_daily_sales" in History(settings.state).last_success()


def test_a_rewritten_crm_file_moves_first_orders_and_every_day_it_touches(tmp_path: Path) -> None:
    """The CRM corrects first-order dates, later as well as earlier: each customer's first order
    and the new customers of every day it touches (the day it left and the day it came to) are
    recomputed by the next ordinary (incremental) build."""
    settings = new_settings(tmp_path)
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].ok
    crm = settings.paths.landing / datasets.UK_NEW_NAMES.prefix / "new_names.csv"
    with crm.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    first_day = DEMO_END - dt.timedelta(days=DAYS - 1)
    for i, row in enumerate(rows):  # every third later, into the lake's days; every third earlier
        known = dt.date.fromisoformat(row["first_order_date"])
        if i % 3 == 0:
            row["first_order_date"] = (first_day + dt.timedelta(days=i % DAYS)).isoformat()
        elif i % 3 == 1:
            row["first_order_date"] = (known - dt.timedelta(days=40)).isoformat()
    with crm.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].ok
    days = [first_day + dt.timedelta(days=i) for i in range(DAYS)]
    got = dict(query(settings, "SELECT order_date, new_customers FROM int_orders_summary_daily "
                               "WHERE market = 'UK'"))  # fmt: skip
    expected = {day: hand_computed_day(settings, "UK", day)["new_customers"] for day in days}
    assert {day: got.get(day) for day in days} == expected


def _first_orders_from_everything(settings: Settings) -> set[tuple[Any, ...]]:
    """Each customer's first order computed from every order line and CRM row: what a full
    build of int_customers_first_order holds."""
    lines = " union all ".join(
        f"select market, customer_id, order_date as d from stg_{m}_orders "
        "where order_status <> 'cancelled'"
        for m in ("uk", "de", "it", "jp")
    )
    return set(query(settings, f"""
        select market, customer_id, min(d) from (
            {lines} union all
            select market, customer_id, first_order_date from stg_uk_new_names
            where first_order_date is not null)
        group by market, customer_id"""))  # fmt: skip


def test_the_first_orders_built_by_increments_equal_those_computed_from_everything(
    tmp_path: Path, clock: FixedClock
) -> None:
    """int_customers_first_order reads only the lines synced since its last build (and the CRM
    rows that changed), yet holds what a computation from every line holds: after new days, and
    after a CRM file that came in while the table was built without it (a hand-run dbt build of
    the orders' models), whose earlier first orders and new customers a later build folds in."""
    settings = new_settings(tmp_path)
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].ok
    crm = settings.paths.landing / datasets.UK_NEW_NAMES.prefix / "new_names.csv"
    with crm.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames or []), list(reader)
    for i, row in enumerate(rows):  # every other customer's first order 400 days earlier
        if i % 2 == 0:
            known = dt.date.fromisoformat(row["first_order_date"])
            row["first_order_date"] = (known - dt.timedelta(days=400)).isoformat()
    newcomer = {**rows[0], "customer_id": "CRM-ONLY-1", "first_order_date": "2020-02-02"}
    with crm.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows([*rows, newcomer])
    clock.advance(dt.timedelta(hours=1))
    assert run(settings, "uk_new_names")["uk_new_names"].ok  # in the lake, not yet in dbt
    # Orders synced after the CRM file, built without it (stg_uk_new_names is not selected).
    clock.advance(dt.timedelta(hours=1))
    _land_day(settings, DEMO_END + dt.timedelta(days=1), tmp_path / "s1")
    assert run(settings, "uk_orders_azure")["uk_orders_azure"].ok
    DbtProject(settings).build(["stg_uk_orders", "int_customers_first_order"])
    # The next ordinary build takes in the CRM file although its rows are older than the lines.
    clock.advance(dt.timedelta(days=1))
    _land_day(settings, DEMO_END + dt.timedelta(days=2), tmp_path / "s2")
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].ok
    got = set(query(settings, "select market, customer_id, first_order_date "
                              "from int_customers_first_order"))  # fmt: skip
    expected = _first_orders_from_everything(settings)
    assert ("UK", "CRM-ONLY-1", dt.date(2020, 2, 2)) in expected
    assert got == expected


def _land_day(settings: Settings, day: dt.date, scratch: Path, *, duplicate: bool = False) -> Path:
    """The UK order file of `day` in the landing zone; `duplicate`: its first line twice."""
    demo.generate(settings, days=1, end=day, root=scratch)
    relative = f"{datasets.orders('UK').prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"
    landed = settings.paths.landing / relative
    landed.parent.mkdir(parents=True, exist_ok=True)
    lines = (scratch / relative).read_text().splitlines()
    landed.write_text("\n".join([*lines, lines[1]] if duplicate else lines) + "\n")
    return landed


def test_the_tests_read_what_each_build_wrote_and_the_weekly_run_reads_everything(
    tmp_path: Path, clock: FixedClock
) -> None:
    """A duplicate in a new day fails that day's build; one planted in an old day is not read by
    the daily tests (they read what the build wrote) and is caught by the weekly whole run."""
    settings = new_settings(tmp_path)
    first = run(settings, "build_daily_sales_models")["build_daily_sales_models"]
    assert first.ok and first.value.tested_by_change == []  # the first build tests everything
    marks = json.loads(settings.state.dbt_tests.read_text())["models"]
    assert set(marks) == {*(f"stg_{m}_orders" for m in ("uk", "de", "it", "jp")),
                          "int_customers_first_order"}  # fmt: skip

    # A new day with a line twice: caught the day it comes in, and its rows are tested again
    # at the next build (a failed build moves no mark).
    clock.advance(dt.timedelta(days=1))
    day = DEMO_END + dt.timedelta(days=1)
    landed = _land_day(settings, day, tmp_path / "s1", duplicate=True)
    failed = run(settings, "build_daily_sales_models")["build_daily_sales_models"]
    assert failed.status == "failed"
    assert "unique_stg_uk_orders_order_line_id" in (failed.error or "")
    assert json.loads(settings.state.dbt_tests.read_text())["models"] == marks
    landed.write_text("\n".join(landed.read_text().splitlines()[:-1]) + "\n")  # re-delivered
    clock.advance(dt.timedelta(minutes=5))
    fixed = run(settings, "build_daily_sales_models")["build_daily_sales_models"]
    assert fixed.ok, fixed.error
    assert "stg_uk_orders" in fixed.value.tested_by_change
    assert "int_customers_first_order" in fixed.value.tested_by_change

    # A duplicate planted in an old day (by hand, outside any build): the daily tests do not
    # read old rows, so the next builds pass...
    old_day = DEMO_END - dt.timedelta(days=DAYS - 2)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute(f"INSERT INTO stg_uk_orders SELECT * FROM stg_uk_orders "
                f"WHERE file_date = DATE '{old_day}' LIMIT 1")  # fmt: skip
    con.close()
    for offset in (2, 3):
        clock.advance(dt.timedelta(days=1))
        _land_day(settings, DEMO_END + dt.timedelta(days=offset), tmp_path / f"s{offset}")
        daily = run(settings, "build_daily_sales_models")["build_daily_sales_models"]
        assert daily.ok, daily.error
    # ... until the first build a week after the last whole run, which reads every row.
    clock.advance(dt.timedelta(days=5))
    _land_day(settings, DEMO_END + dt.timedelta(days=9), tmp_path / "s9")
    weekly = run(settings, "build_daily_sales_models")["build_daily_sales_models"]
    assert weekly.status == "failed"
    assert "unique_stg_uk_orders_order_line_id" in (weekly.error or "")
    # It stays due until it passes; a full refresh rebuilds the model from the lake, whole.
    with pytest.raises(DbtBuildFailed, match="unique_stg_uk_orders_order_line_id"):
        DbtProject(settings).build(["stg_uk_orders"])
    repaired = DbtProject(settings).build(["stg_uk_orders"], full_refresh=True)
    assert repaired.tested_by_change == [] and not repaired.failures
    assert DbtProject(settings).build(["stg_uk_orders"]).tested_by_change == ["stg_uk_orders"]
    # dbt run by hand (`nox -s dbt -- run ...`): daybreak's tests never saw what it wrote, so the
    # next build reads every row; a command that only reads keeps the marks.
    assert DbtProject(settings).cli(["ls", "--select", "stg_uk_orders"]) == 0
    assert settings.state.dbt_tests.exists()
    assert DbtProject(settings).cli(["run", "--select", "stg_uk_orders"]) == 0
    assert not settings.state.dbt_tests.exists()
    assert DbtProject(settings).build(["stg_uk_orders"]).tested_by_change == []


def test_a_parse_ahead_is_the_parse_the_build_uses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run parses the dbt project while its syncs run (execute_run starts it); the build
    waits for that parse and uses it, and does not parse again."""
    settings = new_settings(tmp_path)
    caplog.set_level(logging.INFO, logger="daybreak.warehouse.dbt_project")
    thread = DbtProject(settings).parse_ahead()
    assert run(settings, "build_daily_sales_models")["build_daily_sales_models"].ok
    thread.join(timeout=60)
    assert not thread.is_alive()
    parses = [r for r in caplog.records if r.getMessage().startswith("parsed the dbt project")]
    assert len(parses) == 1
