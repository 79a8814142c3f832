"""Column lineage over the shipped project: dbt's compiled SQL through sqlglot, joined to the
landing files' declarations and the extracts, from the CLI, the cache and the page's data."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from daybreak.assets import columns
from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.ingest import datasets, workbook
from daybreak.views.status import asset_columns, column_page
from daybreak.warehouse import column_lineage
from daybreak.warehouse.dbt_project import DbtProject
from tests.conftest import ROOT, ran_flow, run_runner, shipped_exports, write_config

MARKETS = ("uk", "de", "it", "jp")
NET_SALES_LANDING = sorted(
    [f"{m}_orders_azure.{c}" for m in MARKETS
     for c in ("quantity", "unit_price", "discount", "returned_quantity")]
    + ["daily_sales_budget_exchange_ingest.local_per_gbp"]
)  # fmt: skip


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, columns.ColumnGraph]:
    folder = tmp_path_factory.mktemp("shipped")
    settings = load_settings(write_config(folder, shipped_exports()), environ={})
    return settings, columns.load(settings)


def test_every_mart_and_extract_column_traces_to_a_landing_column_or_a_named_constant(
    shipped: tuple[Settings, columns.ColumnGraph],
) -> None:
    settings, graph = shipped
    # The exceptions of the shipped project, listed: none. A column that cannot be traced
    # appears in untraced() with why (and on its asset's page).
    assert graph.untraced(("model", "extract")) == []
    assert graph.gaps == []
    # Every sync's landing columns are there, read by a dbt model or not (the SCV is not yet).
    for asset in [*datasets.by_asset(settings.market_codes), workbook.ASSET]:
        assert graph.tables[asset]["kind"] == "landing" and graph.tables[asset]["columns"]
    assert graph.inputs("lake.scv_customers_azure.segment") == [
        {"source": "scv_customers_azure.segment", "how": "computed",
         "expression": "nullif(trim(\"segment\"), '')"}
    ]  # fmt: skip
    extracts = [t for t, e in graph.tables.items() if e["kind"] == "extract"]
    assert sorted(extracts) == ["daily_sales_summary", "executive_daily_sales"]
    marts = [t for t, e in graph.tables.items() if e["kind"] == "model" and t.startswith("qi_")]
    assert marts == ["qi_executive_daily_sales"]
    for table in [*extracts, *marts]:
        for column in graph.tables[table]["columns"]:
            up = graph.upstream(f"{table}.{column}")
            assert up["landing"] or up["constants"], f"{table}.{column}"
            assert all(c.split(".")[0] in graph.tables for c in up["landing"])


def test_net_sales_gbp_on_the_executive_extract_comes_from_each_markets_order_columns_and_the_rate(
    shipped: tuple[Settings, columns.ColumnGraph],
) -> None:
    _, graph = shipped
    up = graph.upstream("executive_daily_sales.net_sales_gbp")
    assert up["landing"] == NET_SALES_LANDING
    assert up["constants"] == {} and up["gaps"] == []
    chain = up["columns"]
    # Each hop, and how.
    assert chain["executive_daily_sales.net_sales_gbp"]["inputs"] == [
        {"source": "qi_executive_daily_sales.net_sales_gbp", "how": "copied"}
    ]
    (mart,) = chain["qi_executive_daily_sales.net_sales_gbp"]["inputs"]
    assert mart["source"] == "int_orders_summary_daily.net_sales_gbp"
    assert mart["how"] == "aggregated"  # the 'ALL' market sums the markets; each market copies
    assert "SUM(" in mart["expression"] and "computed:" in mart["expression"]
    summary = {e["source"]: e for e in chain["int_orders_summary_daily.net_sales_gbp"]["inputs"]}
    assert set(summary) == {
        *(f"stg_{m}_orders.{c}" for m in MARKETS
          for c in ("quantity", "unit_price_local", "discount_local", "returned_quantity")),
        "stg_budget.fx_local_per_gbp",
    }  # fmt: skip
    assert "/ currencies.fx" in summary["stg_uk_orders.quantity"]["expression"]
    assert chain["stg_uk_orders.discount_local"]["inputs"] == [
        {"source": "azure_orders.uk.discount", "how": "renamed"}
    ]
    assert chain["azure_orders.uk.discount"]["inputs"] == [
        {"source": "uk_orders_azure.discount", "how": "cast", "expression": "read as DECIMAL(12,2)"}
    ]
    assert chain["sharepoint.budget.fx_local_per_gbp"]["inputs"][0]["source"] == (
        "daily_sales_budget_exchange_ingest.local_per_gbp"
    )
    # What chooses the rows on the way: the cancelled lines are filtered out, the rate joined.
    indirect = {(i["table"], i["how"], i["on"]) for i in up["indirect"]}
    assert ("int_orders_summary_daily", "filtered", "stg_uk_orders.order_status") in indirect
    assert ("int_orders_summary_daily", "joined", "stg_budget.budget_year") in indirect


def test_downstream_of_a_landing_column_lists_what_renaming_it_would_break(
    shipped: tuple[Settings, columns.ColumnGraph],
) -> None:
    _, graph = shipped
    down = graph.downstream("uk_orders_azure.discount")
    assert "stg_uk_orders.discount_local" in down["model_columns"]
    assert {"int_orders_summary_daily.gross_sales_local", "int_orders_summary_daily.net_sales_gbp",
            "qi_executive_daily_sales.variance_gbp"} <= set(down["model_columns"])  # fmt: skip
    assert {"executive_daily_sales.net_sales_gbp", "executive_daily_sales.mtd_net_sales_gbp",
            "daily_sales_summary.net_sales_gbp"} <= set(down["extract_fields"])  # fmt: skip
    assert not any(c.startswith("stg_de_orders.") for c in down["model_columns"])
    assert "executive_daily_sales.budget_gbp" not in down["extract_fields"]
    assert down["indirect"] == []
    # A column that only chooses rows still breaks something: its models say so.
    status = graph.downstream("uk_orders_azure.status")
    tables = {(i["table"], i["how"]) for i in status["indirect"]}
    assert ("int_orders_summary_daily", "filtered") in tables
    assert ("int_customers_first_order", "filtered") in tables
    # A landing column nothing uses says so too.
    assert graph.downstream("uk_orders_azure.promo_code")["extract_fields"] == []


def test_each_edge_says_how(shipped: tuple[Settings, columns.ColumnGraph]) -> None:
    _, graph = shipped

    def edge(name: str) -> dict[str, Any]:
        (only,) = graph.inputs(name)
        return only

    assert edge("stg_uk_orders.order_line_number")["how"] == "renamed"
    assert edge("stg_uk_orders.order_date") == {
        "source": "azure_orders.uk.order_ts", "how": "cast",
        "expression": "CAST(source.order_ts AS DATE)",
    }  # fmt: skip
    assert edge("stg_uk_orders.market")["how"] == "computed"  # upper(market)
    assert {e["how"] for e in graph.inputs("stg_uk_orders.order_line_id")} == {"computed"}
    assert {e["source"] for e in graph.inputs("stg_uk_orders.order_line_id")} == {
        "azure_orders.uk.order_id",
        "azure_orders.uk.order_line",
    }
    assert {e["how"] for e in graph.inputs("int_orders_summary_daily.units")} == {"aggregated"}
    # Constants are named with their expression: a count of rows, a literal, the sync's values.
    assert graph.column_info("int_orders_summary_daily.order_lines")["constant"] == "COUNT(*)"
    assert graph.column_info("stg_uk_new_names.market")["constant"] == "'UK'"
    assert "blob's name" in graph.column_info("azure_orders.uk.file_date")["constant"]
    assert edge("azure_orders.uk.status") == {
        "source": "uk_orders_azure.status", "how": "computed",
        "expression": "nullif(trim(\"status\"), '')",
    }  # fmt: skip
    # A window over a UNION of CTEs, and SELECT * of a model: traced through.
    assert {e["source"] for e in graph.inputs("qi_executive_daily_sales.mtd_budget_gbp")} == {
        "stg_budget.budget_gbp"
    }
    assert edge("int_market_calendar.sales_date")["source"] == (
        "int_orders_summary_daily.order_date"
    )


def test_the_declared_lake_columns_are_the_columns_the_sync_writes(tmp_path: Path) -> None:
    settings = ran_flow(tmp_path, days=2)
    graph = columns.load(settings)
    lake = settings.paths.lake
    written = {
        "azure_orders.uk": next((lake / "orders" / "market=UK").rglob("*.parquet")),
        "azure.uk_products_sku": next((lake / "reference" / "uk_products_sku").glob("*.parquet")),
        "azure.uk_new_names": next((lake / "reference" / "uk_new_names").glob("*.parquet")),
        "sharepoint.budget": lake / "budget" / "daily_sales_budget_exchange.parquet",
    }
    for table, parquet in written.items():
        assert list(graph.tables[table]["columns"]) == pq.read_schema(parquet).names, table
    assert list(workbook.LINEAGE) == workbook.SCHEMA.names
    for asset, dataset in datasets.by_asset(settings.market_codes).items():
        assert [c.name for c in dataset.lake_columns()][: len(dataset.columns)] == (
            dataset.column_names
        ), asset
    # After the build the warehouse's own types are shown.
    assert graph.column_info("int_orders_summary_daily.net_sales_gbp")["type"] == "DECIMAL(18,2)"
    assert graph.column_info("summary.net_sales_gbp")["type"] == "DECIMAL(18,2)"


def test_the_answer_comes_from_the_cache_until_the_project_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    settings = load_settings(write_config(tmp_path, shipped_exports()), environ={})
    first = columns.load(settings)
    assert settings.state.column_lineage.exists()

    def no_compile(self: DbtProject) -> dict[str, Any]:
        raise AssertionError("compiled again although nothing changed")

    monkeypatch.setattr(DbtProject, "lineage_manifest", no_compile)
    again = columns.load(settings)
    assert again.tables == first.tables
    # A changed export is a changed key: computed again (here, refused by the spy).
    changed = load_settings(
        write_config(tmp_path, shipped_exports().replace("executive_daily_sales", "exec")),
        environ={},
    )
    with pytest.raises(columns.ColumnLineageUnavailable, match="compiled again"):
        columns.load(changed)
    monkeypatch.undo()
    # A failure is remembered a while (a page reloading does not compile at every reload)...
    with pytest.raises(columns.ColumnLineageUnavailable, match="compiled again"):
        columns.load(changed)
    clock.advance(dt.timedelta(seconds=columns.RETRY_FAILED_SECONDS + 1))
    assert "exec" in columns.load(changed).tables  # ...then tried again
    # A damaged cache is computed again, never trusted.
    changed.state.column_lineage.write_text("{not json", encoding="utf-8")
    assert "exec" in columns.load(changed).tables
    # A model file touched: dbt's fingerprint moves, so does the key.
    model = ROOT / "dbt" / "models" / "staging" / "sharepoint" / "stg_budget.sql"
    stat = model.stat()
    before = DbtProject(changed).lineage_fingerprint()
    try:
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert DbtProject(changed).lineage_fingerprint() != before
    finally:
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def manifest(models: dict[str, str], sources: dict[str, str]) -> dict[str, Any]:
    """A manifest of `models` (name -> compiled SQL, reading refs by name and sources by their
    relation text) in the shape dbt writes."""
    return {
        "metadata": {"adapter_type": "duckdb"},
        "sources": {
            f"source.p.{key}": {
                "source_name": key.split(".")[0], "name": key.split(".")[1],
                "relation_name": relation, "config": {},
            }
            for key, relation in sources.items()
        },
        "nodes": {
            f"model.p.{name}": {
                "name": name, "resource_type": "model", "relation_name": f'"db"."main"."{name}"',
                "compiled_code": sql, "depends_on": {"nodes": [f"model.p.{m}" for m in models
                                                               if f'"{m}"' in sql]},
            }
            for name, sql in models.items()
        },
    }  # fmt: skip


def test_stars_ctes_unions_windows_and_bad_sql_on_their_own() -> None:
    sources = {"lake.orders": "read_parquet('/x/*.parquet')"}
    models = {
        "a": "select * from read_parquet('/x/*.parquet')",
        "b": """
            with u as (
                select id, amount as value, 'x' as origin from "db"."main"."a" where kind = 'k'
                union all
                select id, -amount, 'y' from "db"."main"."a"
            )
            select id, sum(value) over (partition by origin order by id) as running, origin,
                   count(*) as n
            from u
        """,
        "broken": "select from where (",
        "lost": 'select nowhere.thing as t from "db"."main"."a" join nowhere on true',
        "reads_broken": 'select x from "db"."main"."broken"',
    }
    found = column_lineage.model_lineage(
        manifest(models, sources),
        {"lake.orders": {"id": "INT", "amount": "DECIMAL", "kind": "VARCHAR"}},
    )
    assert {c: [e.source for e in edges] for c, edges in found["a"].columns.items()} == {
        "id": ["lake.orders.id"], "amount": ["lake.orders.amount"], "kind": ["lake.orders.kind"]
    }  # fmt: skip
    b = found["b"]
    assert [(e.source, e.how) for e in b.columns["running"]] == [
        ("a.amount", "computed"),
        ("a.id", "computed"),  # a window's ORDER BY feeds it too
    ]
    assert "-a.amount" in b.columns["running"][0].expression  # the second branch negates
    assert b.constants == {"origin": "'x' | 'y'", "n": "COUNT(*)"}
    assert [(e.source, e.how) for e in b.indirect] == [("a.kind", "filtered")]
    # What cannot be traced is a named gap, never a crash nor a silent drop.
    broken = found["broken"].gaps["*"]
    assert broken.startswith("sqlglot could not trace its SQL: ParseError")
    assert "\x1b" not in broken and "\n" not in broken
    assert found["lost"].gaps == {
        "t": "no input column found for nowhere.thing (a table that is no model or source)"
    }
    assert [e.source for e in found["reads_broken"].columns["x"]] == ["broken.x"]


def test_what_sqlglot_would_get_wrong_is_a_gap_not_a_wrong_edge() -> None:
    sources = {
        "lake.orders": "read_parquet('/x/*.parquet')",
        "lake.empty": "read_parquet('/y/*.parquet')",
    }
    models = {
        "Stg_A": 'select id, amount, "a.b", "Mixed" from read_parquet(\'/x/*.parquet\')',
        # An outside table that shares a model's name is not that model.
        "outside": 'select r.amount from "db"."raw"."Stg_A" r',
        "twice": 'select id, amount as id from "db"."main"."Stg_A"',
        "by_name": 'select id from "db"."main"."Stg_A" union all by name '
        'select id from "db"."main"."Stg_A"',
        "dedup": 'select id, amount from "db"."main"."Stg_A" '
        "qualify row_number() over (partition by id order by amount desc) = 1",
        "partly": 'select a.amount + s.price as total, code from "db"."main"."Stg_A" a '
        "join my_seed s on a.id = s.id",
        "reads_empty": "select 1 as one from read_parquet('/y/*.parquet')",
    }
    columns_of = {"id": "INT", "amount": "DECIMAL", "a.b": "INT", "Mixed": "INT"}
    found = column_lineage.model_lineage(
        manifest(models, sources), {"lake.orders": columns_of, "lake.empty": {}}
    )
    a = found["Stg_A"]
    assert a.gaps == {}
    assert {c: [e.source for e in edges] for c, edges in a.columns.items()} == {
        "id": ["lake.orders.id"],
        "amount": ["lake.orders.amount"],
        "a.b": ["lake.orders.a.b"],
        # DuckDB's names are case-insensitive; sqlglot's DuckDB dialect writes them lower case.
        "mixed": ["lake.orders.mixed"],
    }
    assert found["outside"].columns == {} and "raw/" in found["outside"].gaps["amount"]
    assert "named more than once" in found["twice"].gaps["id"]
    assert "UNION BY NAME" in found["by_name"].gaps["*"]
    assert [(e.source, e.how) for e in found["dedup"].indirect] == [
        ("Stg_A.amount", "filtered"),
        ("Stg_A.id", "filtered"),
    ]
    partly = found["partly"]
    assert [e.source for e in partly.columns["total"]] == ["Stg_A.amount"]
    assert partly.gaps["total"] == (
        "traced in part: no input column found for my_seed.price "
        "(a table that is no model or source)"
    )
    assert partly.gaps["code"].startswith("no input column found for")
    assert "code" not in partly.constants
    # A source without columns leaves the others traceable.
    assert found["reads_empty"].constants == {"one": "1"}


def test_sql_compiled_for_an_incremental_build_reads_its_own_table_which_is_no_input() -> None:
    sources = {"lake.orders": "read_parquet('/x/*.parquet')"}
    models = {
        "inc": "select id, amount, synced_at from read_parquet('/x/*.parquet') "
        'where synced_at > (select max(synced_at) from "db"."main"."inc") '
        'union all select id, amount, synced_at from "db"."main"."inc" where id < 0',
    }
    data = manifest(models, sources)
    data["nodes"]["model.p.inc"]["depends_on"]["nodes"] = []
    lake = {"lake.orders": {"id": "INT", "amount": "DECIMAL", "synced_at": "TIMESTAMP"}}
    own = {"inc": {"id": "INTEGER", "amount": "DECIMAL(12,2)", "synced_at": "TIMESTAMP"}}
    found = column_lineage.model_lineage(data, lake, built=own)["inc"]
    assert found.gaps == {}
    assert {c: [(e.source, e.how) for e in edges] for c, edges in found.columns.items()} == {
        "id": [("lake.orders.id", "copied")],
        "amount": [("lake.orders.amount", "copied")],
        "synced_at": [("lake.orders.synced_at", "copied")],
    }
    assert [e.source for e in found.indirect] == ["lake.orders.synced_at"]
    # Without the table's columns the self-read cannot be placed: a named gap, not a guess.
    assert "synced_at" in column_lineage.model_lineage(data, lake)["inc"].gaps["*"]


def test_the_spark_flavour_of_the_project_traces_the_same() -> None:
    sources = {"azure_orders.uk": "read_parquet('/lake/orders/market=UK/*/*.parquet')"}
    data = manifest(
        {
            "stg": "select order_id, cast(order_ts as date) as order_date, quantity "
            "from parquet.`/lake/orders/market=UK/*/*.parquet`",
            "daily": """
                with days as (select explode(sequence(min(order_date), max(order_date),
                                             interval 1 day)) as d from `db`.`main`.`stg`)
                select s.order_date, sum(s.quantity) as units
                from `db`.`main`.`stg` s left semi join days on s.order_date = days.d
                group by s.order_date
            """,
        },
        sources,
    )
    data["metadata"]["adapter_type"] = "spark"
    for node in data["nodes"].values():
        node["relation_name"] = f"`db`.`main`.`{node['name']}`"
        node["depends_on"]["nodes"] = ["model.p.stg"] if node["name"] == "daily" else []
    data["sources"]["source.p.azure_orders.uk"]["config"]["external_location"] = sources[
        "azure_orders.uk"
    ]
    found = column_lineage.model_lineage(
        data, {"azure_orders.uk": {"order_id": "STRING", "order_ts": "TIMESTAMP",
                                   "quantity": "INT"}}, dialect="spark",
    )  # fmt: skip
    assert found["stg"].gaps == {} and found["daily"].gaps == {}
    assert [(e.source, e.how) for e in found["stg"].columns["order_date"]] == [
        ("azure_orders.uk.order_ts", "cast")
    ]
    assert [(e.source, e.how) for e in found["daily"].columns["units"]] == [
        ("stg.quantity", "aggregated")
    ]


def test_names_that_are_not_columns_are_refused_with_what_is_there(
    shipped: tuple[Settings, columns.ColumnGraph],
) -> None:
    _, graph = shipped
    for bad in ("net_sales_gbp", "", ".", "a" * 600, "x.y\n"):
        with pytest.raises(UsageError):
            graph.upstream(bad)
    with pytest.raises(UnknownNameError, match=r"its columns: .*net_sales_gbp"):
        graph.upstream("executive_daily_sales.nope")
    with pytest.raises(UnknownNameError, match="no table 'nope'"):
        graph.downstream("nope.x")
    # The export's asset name stands for its extract.
    assert graph.upstream("tableau_executive_daily_sales.net_sales_gbp")["landing"] == (
        NET_SALES_LANDING
    )


def test_the_page_data_of_an_asset_and_of_a_column(
    shipped: tuple[Settings, columns.ColumnGraph],
) -> None:
    settings, _ = shipped
    sync = asset_columns(settings, "uk_orders_azure")
    assert [t["table"] for t in sync["tables"]] == ["uk_orders_azure", "azure_orders.uk"]
    discount = next(c for c in sync["tables"][0]["columns"] if c["column"] == "discount")
    assert discount["outputs"] == [{"source": "azure_orders.uk.discount", "how": "cast",
                                    "expression": "read as DECIMAL(12,2)"}]  # fmt: skip
    export = asset_columns(settings, "tableau_executive_daily_sales")
    assert export["tables"][0]["table"] == "executive_daily_sales"
    page = column_page(columns.load(settings), "executive_daily_sales.net_sales_gbp")
    up = page["upstream"]
    assert up["landing"] == NET_SALES_LANDING
    by_name = {d["name"]: d for d in up["datasets"]}
    lineage = by_name["int_orders_summary_daily"]["facets"]["columnLineage"]
    field = lineage["fields"]["net_sales_gbp"]
    inputs = {f"{i['name']}.{i['field']}": i for i in field["inputFields"]}
    assert inputs["stg_uk_orders.quantity"]["transformations"][0]["type"] == "DIRECT"
    assert inputs["stg_uk_orders.quantity"]["transformations"][0]["subtype"] == "AGGREGATION"
    indirect = by_name["int_orders_summary_daily"]["facets"]["columnLineage"]["dataset"]
    assert {"namespace": "daybreak", "name": "stg_uk_orders", "field": "order_status"} in [
        {k: i[k] for k in ("namespace", "name", "field")} for i in indirect
    ]


def test_the_cli_prints_the_chain_the_impact_and_json(
    shipped: tuple[Settings, columns.ColumnGraph], tmp_path: Path
) -> None:
    settings, _ = shipped
    config = settings.config_path
    up = run_runner("lineage", "--column", "executive_daily_sales.net_sales_gbp", config=config,
                    check=True).stdout  # fmt: skip
    assert up.splitlines()[0].startswith("executive_daily_sales.net_sales_gbp")
    assert "<- qi_executive_daily_sales.net_sales_gbp  [copied]" in up
    assert "landing columns (17): " + ", ".join(NET_SALES_LANDING) in up
    up.encode("ascii")  # a Windows console in a legacy code page prints it as it is
    down = run_runner("lineage", "--downstream", "uk_orders_azure.discount", config=config,
                      check=True).stdout  # fmt: skip
    assert "executive_daily_sales.net_sales_gbp" in down and "stg_de_orders" not in down
    data = json.loads(run_runner("lineage", "--downstream", "uk_orders_azure.discount", "--json",
                                 config=config, check=True).stdout)  # fmt: skip
    assert data["direction"] == "downstream"
    assert "executive_daily_sales.net_sales_gbp" in data["extract_fields"]
    assert all(d["namespace"] == "daybreak" for d in data["datasets"])
    picture = tmp_path / "path.svg"
    run_runner("lineage", "--column", "executive_daily_sales.net_sales_gbp", "-o", str(picture),
               config=config, check=True)  # fmt: skip
    assert 'id="column_uk_orders_azure.discount"' in picture.read_text(encoding="utf-8")
    bad = run_runner("lineage", "--column", "executive_daily_sales.nope", config=config)
    assert bad.returncode == 2 and "its columns:" in bad.stderr
    both = run_runner("lineage", "--column", "a.b", "--downstream", "c.d", config=config)
    assert both.returncode == 2 and "one column at a time" in both.stderr


def test_an_extract_named_like_a_model_goes_by_its_asset(tmp_path: Path) -> None:
    clash = (
        '[[exports]]\nasset = "exec_export"\nname = "qi_executive_daily_sales"\n'
        'tables = ["qi_executive_daily_sales"]\nupstream = ["build_daily_sales_models"]\n'
    )
    graph = columns.load(load_settings(write_config(tmp_path, clash), environ={}))
    assert graph.tables["qi_executive_daily_sales"]["kind"] == "model"
    assert graph.tables["exec_export"]["kind"] == "extract"
    assert graph.upstream("exec_export.net_sales_gbp")["landing"] == NET_SALES_LANDING
    assert graph.gaps == []


def test_when_the_lineage_cannot_be_computed_the_pages_say_so_and_do_not_retry_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    from daybreak.views import lineage, status_page, web
    from daybreak.views.status import status_data

    settings = load_settings(write_config(tmp_path, shipped_exports(), days=2, rows=5), environ={})
    calls = []

    def broken(self: DbtProject) -> dict[str, Any]:
        calls.append(1)
        raise RuntimeError("dbt could not compile: a model is broken")

    monkeypatch.setattr(DbtProject, "lineage_manifest", broken)
    site = status_page.StatusSite(settings, status_data, lineage.svg_for)
    server = web.StatusServer(site, "127.0.0.1", 0).start()
    try:
        for _ in range(3):
            page = requests.get(server.url + "columns/executive_daily_sales.net_sales_gbp",
                                timeout=30)  # fmt: skip
            assert page.status_code == 503 and "a model is broken" in page.text
        api = requests.get(server.url + "api/columns/executive_daily_sales.net_sales_gbp",
                           timeout=30)  # fmt: skip
        assert api.status_code == 503 and "unavailable" in api.json()["error"]
        asset = requests.get(server.url + "assets/qi_executive_daily_sales", timeout=30)
        assert asset.status_code == 200 and "column lineage unavailable" in asset.text
        assert len(calls) == 1  # remembered: the page's reloads do not compile again
    finally:
        server.stop()
