"""What an operator asks: why is it stale, rerun from the failure, each asset's own history."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.history import History
from daybreak.runner.why import explain
from daybreak.views import lineage, status_page, web
from daybreak.views.status import status_data
from tests.conftest import run_runner, write_config

# runner.py processes compare freshness with the machine's clock.
pytestmark = pytest.mark.system_clock

JOB = """
[jobs.flow]
select = ["azure_ingestion_reference", "uk_orders_azure", "build_daily_sales_models"]
"""


def reference_file(settings: Settings) -> Path:
    return settings.paths.landing / "UK/raw_data/reference/products_sku/products_sku.csv"


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Settings, str, str]:
    """A flow that succeeded, then failed on a bad reference file: (settings, good, bad run)."""
    config = write_config(tmp_path, JOB, days=3, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    good = run_runner("run", "flow", config=config, check=True)
    (tmp_path / "products_sku.good").write_bytes(reference_file(settings).read_bytes())
    reference_file(settings).write_text("sku;name\n1;2\n")
    bad = run_runner("run", "flow", config=config)
    assert bad.returncode == 1
    ids = [r.run_id for r in History(settings.state).runs()]
    assert good.stdout and len(ids) == 2
    return settings, ids[1], ids[0]


def test_why_walks_to_the_failing_upstream_and_its_bad_file(
    broken: tuple[Settings, str, str],
) -> None:
    settings, _, bad_run = broken
    history = History(settings.state)
    assets = catalogue.catalogue(catalogue.build_driver(settings))

    model = explain(settings, history, assets, "stg_uk_products_sku")
    assert model.state == "blocked"
    assert model.sentence.startswith("stg_uk_products_sku is blocked: blocked by uk_products_sku")
    blocked = next(c for c in model.chain if c.kind == "blocked")
    assert blocked.asset == "uk_products_sku" and blocked.run_id == bad_run
    assert "wrong delimiter" in (blocked.error or "")
    assert blocked.log_line and " ERROR " in blocked.log_line
    bad_file = next(c for c in model.chain if c.kind == "quarantined")
    assert bad_file.files[0]["blob"].endswith("products_sku.csv")
    assert any("wrong delimiter" in p for p in bad_file.files[0]["problems"])

    own = explain(settings, history, assets, "uk_products_sku")
    assert own.state == "failed" and own.chain[0].kind == "failed"
    assert own.chain[0].run_id == bad_run

    fresh = explain(settings, history, assets, "uk_orders_azure")
    good_run = History(settings.state).runs()[-1].run_id
    assert fresh.state == "fresh" and good_run in fresh.sentence  # the bad run had nothing to do

    never = explain(settings, history, assets, "scv_customers_azure")
    assert never.state == "never" and "no job runs it" in never.sentence

    cli = json.loads(
        run_runner("why", "build_daily_sales_models", "--json", config=settings.config_path).stdout
    )
    assert cli["state"] == "failed"
    assert any(c["kind"] == "blocked" and c["asset"] == "uk_products_sku" for c in cli["chain"])
    text = run_runner("why", "tableau_x", config=settings.config_path)
    assert text.returncode == 2 and "unknown asset 'tableau_x'" in text.stderr
    # The page says it too, on each asset that is not current.
    data = status_data(settings)
    assert data["assets"]["stg_uk_products_sku"]["why"].startswith("stg_uk_products_sku is blocked")
    assert "why" not in data["assets"]["uk_orders_azure"]


def test_rerun_from_the_failure_runs_only_what_failed_and_links_the_runs(
    broken: tuple[Settings, str, str],
) -> None:
    settings, good_run, bad_run = broken
    good = settings.config_path.parent / "products_sku.good"
    reference_file(settings).write_bytes(good.read_bytes())  # fixed upstream
    done = run_runner("rerun", bad_run, "--from-failure", "--json", config=settings.config_path)
    assert done.returncode == 0, done.stderr
    rerun = json.loads(done.stdout)
    assert rerun["rerun_of"] == bad_run and rerun["status"] == "success"
    assert "uk_products_sku" in rerun["selection"] and "stg_uk_products_sku" in rerun["selection"]
    assert "uk_orders_azure" not in rerun["selection"]  # it succeeded: not run again
    statuses = {r["asset"]: r["status"] for r in rerun["results"]}
    assert statuses["uk_products_sku"] == "success" and statuses["uk_orders_azure"] == "fresh"
    run = History(settings.state).run(rerun["run_id"])
    assert run is not None and run.rerun_of == bad_run and run.trigger == "rerun"

    nothing = run_runner("rerun", good_run, "--from-failure", config=settings.config_path)
    assert nothing.returncode == 0 and "nothing to rerun" in nothing.stdout
    unknown = run_runner("rerun", "20260101T000000Z-abcdef", config=settings.config_path)
    assert unknown.returncode == 2 and "unknown run" in unknown.stderr


def test_an_assets_own_history_checks_and_page(
    broken: tuple[Settings, str, str],
) -> None:
    settings = broken[0]
    page = json.loads(
        run_runner(
            "history", "--asset", "int_orders_summary_daily", "--json", config=settings.config_path
        ).stdout
    )
    assert page["asset"] == "int_orders_summary_daily"
    assert "qi_executive_daily_sales" in page["downstream"] and "stg_uk_orders" in page["upstream"]
    assert page["runs"][0]["rows"] == 3 * 4  # one row per market and day
    checks = {c["check"]: c for c in page["checks"]}
    unique = checks["unique_columns_int_orders_summary_daily_market__order_date"]
    assert unique["status"] == "pass" and unique["failing_rows"] == 0
    in_status = status_data(settings)["assets"]["int_orders_summary_daily"]["checks"]
    assert in_status["pass"] == len(checks) and in_status["not_passing"] == []
    asked = run_runner(
        "history", "--asset", "uk_products_sku", "--json", config=settings.config_path
    )
    sync = json.loads(asked.stdout)
    assert [r["status"] for r in sync["runs"]] == ["failed", "success"]
    assert sync["runs"][1]["rows"] == 240 and "wrong delimiter" in sync["last_error"]["error"]

    site = status_page.StatusSite(settings, status_data, lineage.svg_for)
    server = web.StatusServer(site, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(f"{server.url}/assets/int_orders_summary_daily") as response:
            html = response.read().decode()
        assert (
            'id="why"' in html
            and "<svg" in html
            and "unique_columns_int_orders_summary_daily" in html
        )
        assert "<script" not in html
        with urllib.request.urlopen(f"{server.url}/api/assets/uk_products_sku") as response:
            assert json.loads(response.read())["runs"] == sync["runs"]
        for missing in ("/assets/no_such_asset", "/assets/..%2Fetc", "/api/assets/nope"):
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(server.url + missing)
            assert caught.value.code == 404
    finally:
        server.stop()
