"""The plan: what a run would do and why, which the run then does (and nothing more)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daybreak.assets import catalogue
from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets, demo
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.runner.materialize import run_inputs
from daybreak.runner.plan import Step, make_plan
from tests.conftest import DEMO_END, ran_flow, write_config

pytestmark = pytest.mark.dates


def plan(settings: Settings, names: list[str] | None = None) -> dict[str, Step]:
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": settings, **run_inputs()}
    steps = make_plan(settings, dr, assets, names or settings.jobs["flow"].select,
                      History(settings.state), inputs)  # fmt: skip
    return {s.asset: s for s in steps}


@pytest.fixture
def ran(tmp_path: Path) -> Settings:
    return ran_flow(tmp_path, days=5)


def test_after_a_run_nothing_needs_to_run_and_a_run_runs_nothing(ran: Settings) -> None:
    steps = plan(ran)
    assert [s.asset for s in steps.values() if s.run] == []
    assert steps["uk_orders_azure"].reasons[0].startswith("up to date")
    again = execute_run(ran, ran.jobs["flow"].select, job="flow")
    assert again.status == "success"
    assert {r.status for r in again.results} == {"fresh"}  # no model built, no extract rewritten
    run = History(ran.state).run(again.run_id)
    assert run is not None and run.plan is not None
    assert all(not step["run"] for step in json.loads(run.plan))


def test_a_changed_landing_file_is_named_and_reaches_only_what_depends_on_it(
    ran: Settings,
) -> None:
    day = DEMO_END.strftime("%Y%m%d")
    blob = f"{datasets.orders('DE').prefix}{DEMO_END:%Y}/ingest_orders_{day}.csv"
    path = ran.paths.landing / blob
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # re-delivered with a line less
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    steps = plan(ran)
    running = {name for name, s in steps.items() if s.run}
    assert steps["de_orders_azure"].reasons == [f"1 new or changed file(s) upstream: {blob}"]
    assert {"stg_de_orders", "int_orders_summary_daily", "qi_executive_daily_sales",
            "build_daily_sales_models", "summary_export"} <= running  # fmt: skip
    assert not running & {"uk_orders_azure", "stg_uk_orders", "uk_products_sku", "stg_budget"}
    assert steps["stg_de_orders"].reasons == ["upstream will change: de_orders_azure"]

    outcome = execute_run(ran, ran.jobs["flow"].select, job="flow")
    statuses = {r.name: r.status for r in outcome.results}
    assert {name for name, status in statuses.items() if status != "fresh"} == running
    assert statuses["de_orders_azure"] == "success" and statuses["uk_orders_azure"] == "fresh"
    assert [s.asset for s in plan(ran).values() if s.run] == []  # and now it is current


def test_changed_code_and_a_changed_workbook_are_reasons_to_run(ran: Settings) -> None:
    config = ran.config_path
    config.write_text(config.read_text().replace(
        'name = "summary"', 'name = "summary"\ndescription = "the summary, described"'
    ))  # fmt: skip
    settings = load_settings(config, environ={})
    steps = plan(settings)
    assert steps["summary_export"].reasons == ["its code changed since its last success"]
    assert not steps["build_daily_sales_models"].run

    demo.write_budget_workbook(
        settings, settings.paths.landing / "sharepoint" / settings.budget.file,
        DEMO_END.replace(day=1), DEMO_END.replace(month=12, day=31),
    )  # fmt: skip
    steps = plan(settings)
    assert steps["daily_sales_budget_exchange_ingest"].reasons == [
        f"the workbook {settings.budget.file} changed since the last copy kept"
    ]
    assert steps["stg_budget"].run and not steps["stg_uk_orders"].run


def test_a_full_refresh_runs_everything(ran: Settings) -> None:
    dr = catalogue.build_driver(ran)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": ran, **run_inputs(full_refresh=True)}
    steps = make_plan(ran, dr, assets, ran.jobs["flow"].select, History(ran.state), inputs,
                      full_refresh=True)  # fmt: skip
    assert all(s.run and s.reasons == ["full refresh"] for s in steps)


def test_a_source_that_cannot_be_listed_leaves_the_sync_to_its_retry_policy(
    tmp_path: Path,
) -> None:
    from tests.conftest import DEV_ACCOUNT_KEY, azure_connection, free_port

    connection = azure_connection(f"http://127.0.0.1:{free_port()}/devstoreaccount1")
    config = write_config(
        tmp_path, '\n[source]\nbackend = "azure"\n[source.azure]\ncontainer = "qi"\n'
    )
    settings = load_settings(config, environ={"AZURE_STORAGE_CONNECTION_STRING": connection})
    history = History(settings.state)
    run_id = history.start_run(["uk_products_sku"])  # as if it had succeeded once
    history.finish_attempt(run_id, "uk_products_sku", 1, "success", seconds=0.1)
    step = plan(settings, ["uk_products_sku"])["uk_products_sku"]
    assert step.run and "could not be listed" in step.reasons[-1]
    assert DEV_ACCOUNT_KEY not in " ".join(step.reasons)


def test_what_another_run_built_since_makes_its_downstream_run(ran: Settings) -> None:
    assert execute_run(ran, ["build_daily_sales_models"]).status == "success"  # nothing new...
    steps = plan(ran)
    assert not steps["build_daily_sales_models"].run  # ...so this run built nothing,
    assert not steps["summary_export"].run  # and the export is still current
    history = History(ran.state)
    run_id = history.start_run(["stg_de_orders"])  # as if a morning job rebuilt one model
    version = history.success_versions()["stg_de_orders"]
    history.finish_attempt(run_id, "stg_de_orders", 1, "success", seconds=0.1,
                           code_version=version)  # fmt: skip
    history.finish_run(run_id, "success")
    steps = plan(ran)
    assert steps["int_customers_first_order"].reasons == [
        "upstream changed since its last success: stg_de_orders"
    ]
    assert "upstream changed since its last success: stg_de_orders" in (
        steps["int_orders_summary_daily"].reasons)  # fmt: skip
    assert steps["summary_export"].run and not steps["stg_uk_orders"].run
