"""Cancelling runs, and starting and stopping work from the page, with its access rules.

Real runs, a real dbt build and a real uvicorn server; the attacks are real HTTP requests.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from daybreak import progress
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from tests.conftest import DEMO_END, write_config

FLOW = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion",
        "build_daily_sales_models"]


def tables(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the warehouse, its rows sorted."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()
        return {
            name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
            for (name,) in names
        }
    finally:
        con.close()


def cancel_at_first_model(settings: Settings, seen: list[str]) -> progress.Listener:
    """A listener that asks the run to cancel when dbt finishes its first model, and holds that
    dbt thread a moment, so the cancel lands inside the build."""
    history = History(settings.state)
    asked = threading.Event()

    def listen(event: progress.Event) -> None:
        if event.kind == "node" and event.detail == "model":
            seen.append(event.name)
            if not asked.is_set():
                asked.set()
                (run,) = [r for r in history.runs(limit=5) if r.status == "running"]
                history.request_cancel(run.run_id, "test (a person at the page)")
                time.sleep(2.0)  # the watch reads it, dbt is told; this node then ends

    return listen


def test_a_cancel_inside_dbt_leaves_every_table_as_before_or_as_a_complete_build(
    tmp_path: Path,
) -> None:
    first = tmp_path / "cancelled"
    settings = load_settings(write_config(first, days=3, rows=8), environ={})
    demo.generate(settings, days=2, end=DEMO_END - dt.timedelta(days=1))
    assert execute_run(settings, FLOW, job="daily_sales_flow").status == "success"
    before = tables(settings.paths.warehouse)
    demo.generate(settings, days=1, end=DEMO_END)  # a new day for every market
    assert execute_run(settings, FLOW[:3]).status == "success"  # synced: the lake holds it
    # The same state, built to the end without a cancel: what "after" means.
    whole = tmp_path / "whole"
    shutil.copytree(first, whole)
    complete = load_settings(whole / "daybreak.toml", environ={})
    assert execute_run(complete, FLOW, job="daily_sales_flow").status == "success"
    after = tables(complete.paths.warehouse)
    changed = {t for t in before if before[t] != after.get(t)}
    assert len(changed) >= 3, "the new day must change several tables"

    seen: list[str] = []
    with progress.listening(cancel_at_first_model(settings, seen)):
        outcome = execute_run(settings, FLOW, job="daily_sales_flow")
    assert outcome.status == "cancelled", outcome.error
    assert outcome.error and "cancelled by test (a person at the page)" in outcome.error
    cancelled = [r.name for r in outcome.results if r.status == "cancelled"]
    assert cancelled, "some models were never built: the cancel landed inside dbt"
    now = tables(settings.paths.warehouse)
    assert set(now) == set(before)
    kept = {t for t in changed if now[t] == before[t]}
    made = {t for t in changed if now[t] == after[t]}
    assert kept | made == changed, f"tables in between: {sorted(changed - kept - made)}"
    assert kept, "some tables are as before"
    record = History(settings.state).run(outcome.run_id)
    assert record is not None and record.status == "cancelled"
    assert record.cancel_requested_by == "test (a person at the page)"

    # The next ordinary run finishes the job: every table as the complete build made it.
    assert execute_run(settings, FLOW, job="daily_sales_flow").status == "success"
    assert tables(settings.paths.warehouse) == after


@pytest.fixture
def flow_settings(tmp_path: Path) -> Settings:
    settings = load_settings(write_config(tmp_path, days=2, rows=5), environ={})
    demo.generate(settings)
    return settings
