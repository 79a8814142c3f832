"""Driver-level runs of the ingestion dataflow, the asset catalogue and runner.py's command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.errors import UnknownNameError
from daybreak.ingest import demo
from daybreak.runner.materialize import materialize, run_inputs
from tests.conftest import ROOT, RUN_DATE, run_runner, write_config

INGESTION = [
    "uk_orders_azure",
    "de_orders_azure",
    "it_orders_azure",
    "jp_orders_azure",
    "uk_new_names",
    "uk_products_sku",
]
PYTHON_ASSETS = [
    *INGESTION, "scv_customers_azure", "daily_sales_budget_exchange_ingest",
    "build_daily_sales_models", "warehouse_backup",
]  # fmt: skip
DBT_MODELS = [
    "stg_uk_orders", "stg_de_orders", "stg_it_orders", "stg_jp_orders", "stg_uk_products_sku",
    "stg_uk_new_names", "stg_budget", "int_customers_first_order", "int_orders_summary_daily",
    "int_market_calendar", "qi_executive_daily_sales",
]  # fmt: skip
ALL_ASSETS = PYTHON_ASSETS + DBT_MODELS
INGESTION_AND_BUDGET = [*INGESTION, "daily_sales_budget_exchange_ingest"]


def test_catalogue_lists_ingestion_assets_with_groups_and_descriptions(settings: Settings) -> None:
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    assert sorted(assets) == sorted(ALL_ASSETS)
    assert assets["jp_orders_azure"].group == "azure_ingestion_orders"
    assert assets["daily_sales_budget_exchange_ingest"].group == "budget_ingestion"
    assert assets["uk_products_sku"].group == "azure_ingestion_reference"
    assert assets["de_orders_azure"].description.startswith("Daily order lines of one market (DE)")
    # Plumbing (settings, source, state) is not an asset.
    for plumbing in ("landing_source", "sync_context", "budget_workbook", "budget_long"):
        assert plumbing not in assets


def test_markets_come_from_config(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text()
    text = text[: text.index("[markets.DE]")]  # only UK configured
    config.write_text(text)
    assets = catalogue.catalogue(catalogue.build_driver(load_settings(config, environ={})))
    assert [a for a in assets if a.endswith("_orders_azure")] == ["uk_orders_azure"]


def test_selection_by_group_and_unknown_names(settings: Settings) -> None:
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    assert catalogue.select(assets, ["azure_ingestion_reference"]) == [
        "uk_new_names",
        "uk_products_sku",
    ]
    with pytest.raises(UnknownNameError, match="unknown asset or group 'uk_order'"):
        catalogue.select(assets, ["uk_order"])


def test_driver_run_of_the_ingestion_dataflow(demo_settings: Settings) -> None:
    dr = catalogue.build_driver(demo_settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": demo_settings, **run_inputs(run_date=RUN_DATE)}
    results = materialize(dr, assets, INGESTION_AND_BUDGET, inputs)
    assert {r.name: r.status for r in results} == dict.fromkeys(INGESTION_AND_BUDGET, "success")
    by_name = {r.name: r.value for r in results}
    assert by_name["jp_orders_azure"].rows_loaded == 40 * 25
    assert by_name["uk_products_sku"].rows_loaded == 240


def test_a_failing_asset_does_not_stop_the_others(demo_settings: Settings) -> None:
    bad = next((demo_settings.paths.landing / "DE").rglob("ingest_orders_20260331.csv"))
    bad.write_text("order_id;order_line\n1;2\n")
    dr = catalogue.build_driver(demo_settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": demo_settings, **run_inputs(run_date=RUN_DATE)}
    results = {r.name: r for r in materialize(dr, assets, INGESTION_AND_BUDGET, inputs)}
    assert results["de_orders_azure"].status == "failed"
    assert "wrong delimiter" in (results["de_orders_azure"].error or "")
    assert all(results[n].status == "success" for n in INGESTION if n != "de_orders_azure")


@pytest.mark.system_clock  # compares with a runner.py process
def test_runner_materialize_prints_summary_and_reruns_sync_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=5, rows=10)
    demo.generate(load_settings(config, environ={}))
    first = run_runner(
        "materialize", "uk_orders_azure", "uk_products_sku", config=config, check=True
    )
    assert re.search(r"uk_orders_azure +success", first.stdout)
    assert "backfill: 50 rows from 5 files" in first.stdout
    assert "Synced 50 rows" in first.stderr
    assert "2 of 2 assets succeeded" in first.stdout
    again = run_runner("materialize", "uk_orders_azure", config=config, check=True)
    # Nothing new upstream: the plan says up to date, so the sync does not even run.
    assert re.search(r"uk_orders_azure +fresh +0.00  up to date: not run", again.stdout)
    assert "nothing: all up to date" in again.stderr


@pytest.mark.system_clock  # compares with a runner.py process
def test_runner_run_job_and_full_refresh(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=3, rows=1500)
    demo.generate(load_settings(config, environ={}))
    run_runner("run", "daily_sales_flow", config=config, check=True)
    full = run_runner("materialize", "jp_orders_azure", "--full", config=config, check=True)
    assert "backfill: 4,500 rows from 3 files" in full.stdout
    assert "Synced 4,500 rows" in full.stderr


@pytest.mark.system_clock  # compares with a runner.py process
def test_runner_exit_codes_for_failures_and_bad_names(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=2, rows=5)
    demo.generate(load_settings(config, environ={}))
    next((tmp_path / "landing" / "IT").rglob("*.csv")).write_bytes(b"")
    failed = run_runner("run", "daily_sales_flow", config=config)
    assert failed.returncode == 1
    assert re.search(r"it_orders_azure +failed", failed.stdout)
    assert "empty file (0 bytes)" in failed.stdout
    assert "6 of 7 assets succeeded; failed or skipped: it_orders_azure" in failed.stdout
    unknown = run_runner("materialize", "nope", config=config)
    assert unknown.returncode == 2 and "unknown asset or group 'nope'" in unknown.stderr
    no_job = run_runner("run", "nightly", config=config)
    assert no_job.returncode == 2 and "unknown job 'nightly'" in no_job.stderr


def test_runner_assets_json(config_path: Path) -> None:
    out = run_runner("assets", "--json", config=config_path, check=True).stdout
    listed = {a["name"]: a for a in json.loads(out)}
    assert sorted(listed) == sorted(ALL_ASSETS)
    assert listed["daily_sales_budget_exchange_ingest"]["group"] == "budget_ingestion"
    assert listed["uk_orders_azure"]["group"] == "azure_ingestion_orders"
    assert listed["uk_orders_azure"]["upstream"] == []
    assert "UK" in listed["uk_orders_azure"]["description"]


def test_config_error_is_one_clear_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, "\n[source]\nbakend = 'local'\n")
    proc = run_runner("assets", config=config)
    assert proc.returncode == 2
    assert "source.bakend: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runner_writes_demo_data_into_an_empty_landing_zone_first(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=3, rows=5)
    proc = run_runner(
        "materialize", "uk_orders_azure", "budget_ingestion", config=config, check=True
    )
    assert "is empty: writing demo data" in proc.stderr
    assert "backfill: 15 rows from 3 files" in proc.stdout
    assert (tmp_path / "landing" / "sharepoint" / "Budget" / "Daily Sales Budget.xlsx").is_file()
    again = run_runner("materialize", "uk_orders_azure", config=config, check=True)
    assert "writing demo data" not in again.stderr


def test_runner_with_a_python_lacking_the_dependencies_uses_the_venv(tmp_path: Path) -> None:
    # -S hides site-packages, as a system Python without daybreak's dependencies would.
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            str(ROOT / "runner.py"),
            "assets",
            "--json",
            "--config",
            str(write_config(tmp_path)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "uk_orders_azure" in proc.stdout
