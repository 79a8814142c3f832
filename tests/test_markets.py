"""Markets are configuration: [markets] in daybreak.toml is the one place a market is declared."""

from __future__ import annotations

import shutil
from pathlib import Path

from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.materialize import materialize, run_inputs
from daybreak.warehouse.dbt_project import DbtProject
from daybreak.warehouse.markets import FOLDER, market_files
from tests.conftest import DEMO_END, ROOT, RUN_DATE, write_config

FRANCE = """
[markets.FR]
currency = "EUR"
timezone = "Europe/Paris"
"""


def test_the_committed_market_files_are_the_ones_daybreak_writes_for_the_shipped_markets() -> None:
    settings = load_settings(ROOT / "daybreak.toml", environ={})
    written = market_files(settings.market_codes)
    assert {p.name for p in (ROOT / "dbt" / FOLDER).iterdir()} == {p.name for p in written}
    for relative, text in written.items():
        assert (ROOT / "dbt" / relative).read_text(encoding="utf-8") == text


def _settings(folder: Path, extra: str) -> Settings:
    config = write_config(folder, extra, days=20, rows=20)
    config.write_text(
        config.read_text().replace('state = "state"', 'state = "state"\ndbt_project = "dbt"')
    )
    return load_settings(config, environ={})


def test_a_fifth_market_added_in_the_config_is_synced_built_and_reported(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "dbt", tmp_path / "dbt", ignore=shutil.ignore_patterns("target", "logs"))
    settings = _settings(tmp_path, FRANCE)
    assert settings.market_codes == ["UK", "DE", "IT", "JP", "FR"]
    demo.generate(settings, end=DEMO_END)

    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    assert assets["stg_fr_orders"].upstream == ("fr_orders_azure",)
    assert assets["stg_fr_orders"].group == "dbt_staging_fr_azure"
    assert "stg_fr_orders" in assets["int_orders_summary_daily"].upstream
    plan = catalogue.with_upstream(assets, catalogue.select(assets, ["build_daily_sales_models"]))
    inputs = {"settings": settings, **run_inputs(run_date=RUN_DATE)}
    results = {r.name: r for r in materialize(dr, assets, plan, inputs)}
    assert all(r.ok for r in results.values()), [r.error for r in results.values() if not r.ok]
    report = results["build_daily_sales_models"].value
    assert {"stg_fr_orders", "qi_executive_daily_sales"} <= {m.name for m in report.models}
    # The accepted-values tests took FR from the config, not from a list in a YAML file.
    tests = {t.name for t in report.tests}
    assert any(name.startswith("accepted_values_qi_executive_daily_sales_market") for name in tests)

    import duckdb

    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM stg_fr_orders").fetchall() == [(20 * 20,)]
        markets = con.execute(
            "SELECT DISTINCT market FROM qi_executive_daily_sales ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert [m for (m,) in markets] == ["ALL", "DE", "FR", "IT", "JP", "UK"]

    # Taking the market out of the config takes its generated files out of the project.
    without = _settings(tmp_path, "")
    DbtProject(without).graph_manifest()
    assert not (tmp_path / "dbt" / FOLDER / "stg_fr_orders.sql").exists()
    assert "stg_fr_orders" not in catalogue.catalogue(catalogue.build_driver(without))


def test_the_parsed_vars_are_the_markets_only(tmp_path: Path) -> None:
    """What changes per build (the tests' high-water marks) is passed at run time, so a new day
    never makes dbt parse the project again (dbt/macros/touched.sql)."""
    settings = _settings(tmp_path, "\n[ingestion]\ndays_back = 12\n")
    assert DbtProject(settings).vars == {"markets": ["uk", "de", "it", "jp"]}
