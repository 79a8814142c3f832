"""[warehouse] engine = "spark": the same dbt project, tests and exports on a real local Spark
(dbt-spark `method: session`, pyspark's jars, the machine's Java), equal to DuckDB's build."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets, demo
from daybreak.runner.execute import execute_run
from daybreak.warehouse.reader import open_reader
from tests.conftest import DEMO_END, write_config

FLOW = """
[jobs.flow]
select = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion",
          "build_daily_sales_models", "export", "warehouse_maintenance"]

[[exports]]
asset = "summary_export"
name = "summary"
tables = ["int_orders_summary_daily"]
upstream = ["build_daily_sales_models"]

[[exports]]
asset = "executive_export"
name = "executive"
tables = ["qi_executive_daily_sales"]
upstream = ["build_daily_sales_models"]
"""
SPARK = '\n[warehouse]\nengine = "spark"\n[warehouse.spark]\nshuffle_partitions = 2\n'
DAYS, ROWS = 8, 5


def _marts(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Row counts and totals per market, read the same way whichever engine built them."""
    con = open_reader(settings)
    try:
        return {
            "executive": con.execute(
                "SELECT market, count(*), sum(net_sales_gbp), sum(budget_gbp), "
                "sum(mtd_net_sales_gbp), sum(mtd_budget_gbp), sum(ytd_net_sales_gbp), "
                "sum(ytd_budget_gbp), sum(last_year_net_sales_gbp) "
                "FROM qi_executive_daily_sales GROUP BY ALL ORDER BY ALL").fetchall(),
            "summary": con.execute(
                "SELECT market, count(*), sum(orders), sum(units), sum(net_sales_local), "
                "sum(net_sales_gbp), sum(new_customers) "
                "FROM int_orders_summary_daily GROUP BY ALL ORDER BY ALL").fetchall(),
            "customers": con.execute(
                "SELECT market, count(*), min(first_order_date), max(first_order_date) "
                "FROM int_customers_first_order GROUP BY ALL ORDER BY ALL").fetchall(),
        }  # fmt: skip
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Settings]:
    root = tmp_path_factory.mktemp("spark")
    duck = load_settings(write_config(root / "duckdb", FLOW, days=DAYS, rows=ROWS), environ={})
    demo.generate(duck, end=DEMO_END)
    spark = load_settings(write_config(root / "spark", FLOW + SPARK, days=DAYS, rows=ROWS),
                          environ={})  # fmt: skip
    shutil.copytree(duck.paths.landing, spark.paths.landing)
    assert execute_run(duck, duck.jobs["flow"].select, job="flow").status == "success"
    outcome = execute_run(spark, spark.jobs["flow"].select, job="flow")
    assert outcome.status == "success", outcome.error
    return duck, spark


def test_every_model_and_test_builds_on_spark_and_the_marts_equal_duckdbs(
    built: tuple[Settings, Settings],
) -> None:
    duck, spark = built
    tables = sorted(p.name for p in (spark.spark_warehouse / "daybreak.db").iterdir())
    assert "qi_executive_daily_sales" in tables and "stg_uk_orders" in tables
    assert not spark.paths.warehouse.exists()  # nothing went to DuckDB
    assert _marts(spark) == _marts(duck)
    summary = _marts(spark)["executive"]
    assert {row[0] for row in summary} == {"ALL", "UK", "DE", "IT", "JP"}
    assert all(row[1] == DAYS for row in summary)


def test_the_exports_read_spark_and_write_the_same_extracts(
    built: tuple[Settings, Settings],
) -> None:
    from tableauhyperapi import Connection, HyperProcess, Telemetry

    def rows(settings: Settings, name: str) -> int:
        with HyperProcess(Telemetry.DO_NOT_SEND_USAGE_DATA_TO_TABLEAU) as hyper, Connection(
            hyper.endpoint, str(settings.paths.exports / f"{name}.hyper")
        ) as con:  # fmt: skip
            table = con.catalog.get_table_names("Extract")[0]
            return int(con.execute_scalar_query(f"SELECT COUNT(*) FROM {table}"))

    duck, spark = built
    for name in ("summary", "executive"):
        assert rows(spark, name) == rows(duck, name) > 0


def test_an_incremental_build_on_spark_touches_only_the_new_days_partitions(
    built: tuple[Settings, Settings], tmp_path: Path
) -> None:
    _, spark = built
    staging = spark.spark_warehouse / "daybreak.db" / "stg_uk_orders"
    before = {p: p.stat().st_mtime_ns for p in staging.rglob("*.parquet")}
    assert {p.parent.name for p in before} == {
        f"file_date={DEMO_END - dt.timedelta(days=i)}" for i in range(DAYS)
    }
    new_day = DEMO_END + dt.timedelta(days=1)
    demo.generate(spark, days=1, end=new_day, root=tmp_path)
    relative = f"{datasets.orders('UK').prefix}{new_day:%Y}/ingest_orders_{new_day:%Y%m%d}.csv"
    (spark.paths.landing / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / relative, spark.paths.landing / relative)

    outcome = execute_run(spark, ["build_daily_sales_models"])

    assert outcome.status == "success", outcome.error
    after = {p: p.stat().st_mtime_ns for p in staging.rglob("*.parquet")}
    assert {p: t for p, t in after.items() if p in before} == before  # old days untouched
    assert {p.parent.name for p in after if p not in before} == {f"file_date={new_day}"}
    con = open_reader(spark)
    try:
        days = con.execute("SELECT count(DISTINCT order_date) FROM int_orders_summary_daily "
                           "WHERE market = 'UK'").fetchall()[0][0]  # fmt: skip
    finally:
        con.close()
    assert days >= DAYS  # the new day is in, nothing lost


def test_the_backup_on_spark_says_it_is_the_engines_business(
    built: tuple[Settings, Settings],
) -> None:
    _, spark = built
    outcome = execute_run(spark, ["warehouse_backup"], full_refresh=True)  # run, current or not
    assert outcome.status == "success"
    assert "no copy: the warehouse is on Spark" in outcome.results[-1].summary
    with pytest.raises(duckdb.Error):  # and there is still no DuckDB file
        duckdb.connect(str(spark.paths.warehouse), read_only=True)


def test_a_second_spark_warehouse_in_the_same_process_is_refused_by_name(
    built: tuple[Settings, Settings], tmp_path: Path
) -> None:
    from daybreak.warehouse.dbt_project import DbtError, DbtProject

    other = load_settings(write_config(tmp_path, SPARK), environ={})
    with pytest.raises(
        DbtError, match=r"already runs a Spark session .* needs a process of its own"
    ):
        DbtProject(other).build(["stg_budget"])


def test_the_column_lineage_of_the_spark_build_reads_sparks_sql_the_same(
    built: tuple[Settings, Settings],
) -> None:
    """The Spark build's own compiled SQL (parquet.`path` sources, left semi join, explode),
    read with sqlglot's Spark dialect, traces every model column to the same inputs as the
    DuckDB compile that daybreak caches."""
    import json

    from daybreak.assets import columns

    duck, spark = built
    manifest = json.loads((spark.state.dbt / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "spark"
    on_spark = columns.ColumnGraph(columns.compute(spark, manifest))
    on_duckdb = columns.load(duck)
    assert on_spark.data["dialect"] == "spark" and on_spark.gaps == []
    models = [t for t, e in on_duckdb.tables.items() if e["kind"] == "model"]
    assert len(models) >= 10
    for table in models:
        for column in on_duckdb.tables[table]["columns"]:
            name = f"{table}.{column}"
            assert {e["source"] for e in on_spark.inputs(name)} == {
                e["source"] for e in on_duckdb.inputs(name)
            }, name
    assert on_spark.upstream("summary.net_sales_gbp")["landing"] == sorted(
        [f"{m}_orders_azure.{c}" for m in ("uk", "de", "it", "jp")
         for c in ("quantity", "unit_price", "discount", "returned_quantity")]
        + ["daily_sales_budget_exchange_ingest.local_per_gbp"]
    )  # fmt: skip
