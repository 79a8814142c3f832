"""The daily sales flow end to end, as `make daily-sales` runs it, on a small demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_runner, write_config

pytestmark = [pytest.mark.system_clock, pytest.mark.dates]

FLOW = """
[jobs.end_to_end]
select = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion",
          "build_daily_sales_models", "export"]

[[exports]]
asset = "daily_sales_tableau_export"
name = "daily_sales_summary"
tables = ["int_orders_summary_daily"]
upstream = ["build_daily_sales_models"]

[[exports]]
asset = "tableau_executive_daily_sales"
name = "executive_daily_sales"
tables = ["qi_executive_daily_sales"]
upstream = ["build_daily_sales_models"]
"""


def test_daily_flow_from_an_empty_landing_zone_to_tableau_extracts(tmp_path: Path) -> None:
    config = write_config(tmp_path, FLOW, days=20, rows=30)
    first = run_runner("run", "end_to_end", config=config, check=True)
    assert "is empty: writing demo data" in first.stderr
    assert "10 of 10 assets succeeded" in first.stdout  # 7 ingest, 1 dbt build, 2 exports
    assert "not published: no Tableau server configured" in first.stderr
    exports = tmp_path / "exports"
    for name in ("daily_sales_summary", "executive_daily_sales"):
        assert (exports / f"{name}.hyper").stat().st_size > 0
        assert len(list((exports / "backups").glob(f"{name}__*.hyper"))) == 1

    status = json.loads(run_runner("status", "--json", config=config, check=True).stdout)
    ran = [a for a, s in status["assets"].items() if s["last_success"]]
    assert len(ran) >= 10 + 10  # ten assets ran, and the ten dbt models the build made
    assert {status["assets"][a]["freshness"] for a in ran} == {"fresh"}
    assert status["jobs"]["end_to_end"]["last_status"] == "success"

    again = run_runner("run", "end_to_end", config=config, check=True)
    # Nothing new: nothing is synced, no model is built, no extract is rewritten.
    assert "nothing: all up to date" in again.stderr
    assert "10 of 10 assets succeeded" in again.stdout
    rows = [line.split() for line in again.stdout.splitlines()[1:11]]
    assert {row[1] for row in rows} == {"fresh"}  # every asset: up to date, not run
    assert len(list((exports / "backups").glob("daily_sales_summary__*.hyper"))) == 1


def test_materialize_runs_only_the_upstream_that_is_not_fresh(tmp_path: Path) -> None:
    config = write_config(tmp_path, FLOW, days=5, rows=10)
    run_runner("run", "end_to_end", config=config, check=True)
    again = run_runner("materialize", "qi_executive_daily_sales", config=config, check=True)
    lines = {line.split()[0]: line for line in again.stdout.splitlines() if line.strip()}
    assert "fresh" in lines["uk_orders_azure"].split()[1]
    assert "up to date: not run" in lines["daily_sales_budget_exchange_ingest"]
    assert "up to date: not run" in lines["qi_executive_daily_sales"]  # nothing it needs changed
    assert "Synced" not in again.stderr  # no ingestion ran
    full = run_runner(
        "materialize", "qi_executive_daily_sales", "--full", config=config, check=True
    )
    assert "backfill: 50 rows from 5 files" in full.stdout  # --full needs everything again
