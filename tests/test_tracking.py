"""Runs mirrored into a real Hamilton UI (apache-hamilton-ui, started by `runner.py ui`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from daybreak.config import load_settings
from daybreak.ingest import demo
from daybreak.runner.history import History
from tests.conftest import ROOT, free_port, run_runner, wait_for, write_config

pytestmark = [pytest.mark.system_clock, pytest.mark.dates]

USER = "daybreak@localhost"
HEADERS = {"x-api-user": USER, "x-api-key": ""}
BAD_PRODUCTS = "UK/raw_data/reference/products_sku/products_sku.csv"


def tracked_config(folder: Path, port: int, timeout: float = 2.0) -> Path:
    config = write_config(folder, f"""
[ui]
port = {port}

[tracking]
project = "daybreak-test"
timeout_seconds = {timeout}
""", days=3, rows=5)  # fmt: skip
    demo.generate(load_settings(config, environ={}))
    return config


class HamiltonUi:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "runner.py"), "ui", "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        self.log = log
        wait_for(self.up, 90, f"the Hamilton UI ({log.read_text()[-2000:]})")

    def up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return requests.get(f"{self.url}/api/v1/phone_home", headers=HEADERS, timeout=2).ok
        except requests.RequestException:
            return False

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1{path}", headers=HEADERS, params=params,
                                timeout=10)  # fmt: skip
        response.raise_for_status()
        return response.json()

    def run_for(self, run_id: str) -> dict[str, Any] | None:
        """The UI's run tagged with daybreak's run id, with its nodes and attributes."""
        projects = [p for p in self.get("/projects") if p["name"] == "daybreak-test"]
        if not projects:
            return None
        for run in self.get("/dag_runs/latest/", project_id=projects[0]["id"]):
            if run["tags"].get("run_id") == run_id:
                (full,) = self.get(f"/dag_runs/{run['id']}", attr=["dict", "error"])
                return full  # type: ignore[no-any-return]
        return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def ui_port() -> int:
    return free_port()


@pytest.fixture
def config(tmp_path: Path, ui_port: int) -> Path:
    return tracked_config(tmp_path, ui_port)


@pytest.fixture
def hamilton_ui(tmp_path: Path, config: Path, ui_port: int) -> Iterator[HamiltonUi]:
    ui = HamiltonUi(config, ui_port, tmp_path / "ui.log")
    yield ui
    ui.stop()


def last_run_id(config: Path) -> str:
    (run,) = History(load_settings(config, environ={}).state).runs(limit=1)
    return run.run_id


def test_a_tracked_run_lands_in_the_ui_with_its_nodes_and_errors(
    hamilton_ui: HamiltonUi, config: Path
) -> None:
    run_runner("run", "daily_sales_flow", config=config, check=True)
    run_id = last_run_id(config)
    run = hamilton_ui.run_for(run_id)
    assert run is not None, "the run is not in the UI"
    assert run["run_status"] == "SUCCESS"
    assert run["tags"] == {"run_id": run_id, "job": "daily_sales_flow", "trigger": "manual"}
    nodes = {n["node_name"]: n for n in run["node_runs"]}
    expected = {"uk_orders_azure", "de_orders_azure", "it_orders_azure", "jp_orders_azure",
                "uk_products_sku", "uk_new_names",
                "daily_sales_budget_exchange_ingest"}  # fmt: skip
    assert set(nodes) == expected
    assert {n["status"] for n in nodes.values()} == {"SUCCESS"}
    # The report the history keeps rides along: counts, never rows.
    summary = nodes["uk_orders_azure"]["attributes"][0]
    assert summary["name"] == "result_summary"
    assert summary["value"]["value"]["rows_loaded"] > 0
    # The DAG is named after the job and carries the whole asset graph (lineage in the UI).
    templates = hamilton_ui.get("/dag_templates/latest/", project_id=project_id(hamilton_ui))
    (template,) = [t for t in templates if t["name"] == "daily_sales_flow"]
    (full,) = hamilton_ui.get(f"/dag_templates/{template['id']}")
    graph_nodes = {n["name"] for n in full["nodes"]}
    assert {"build_daily_sales_models", "qi_executive_daily_sales"} <= graph_nodes
    assert expected <= graph_nodes
    # Each node's documentation carries its columns' lineage (the UI shows it on the node).
    docs = {n["name"]: n.get("documentation") or "" for n in full["nodes"]}
    assert (
        "net_sales_gbp <- int_orders_summary_daily.net_sales_gbp (aggregated)"
        in docs["qi_executive_daily_sales"]
    )
    assert "discount <- azure_orders.uk.discount (renamed)" not in docs["uk_orders_azure"]
    assert "discount <- uk_orders_azure.discount (cast)" in docs["uk_orders_azure"]

    # A failure: the UI shows which asset failed and why.
    landing = load_settings(config, environ={}).paths.landing
    (landing / BAD_PRODUCTS).write_text("sku;name\n1;2\n")
    assert run_runner("run", "daily_sales_flow", config=config).returncode == 1
    failed = hamilton_ui.run_for(last_run_id(config))
    assert failed is not None and failed["run_status"] == "FAILURE"
    bad = {n["node_name"]: n for n in failed["node_runs"]}["uk_products_sku"]
    assert bad["status"] == "FAILURE"
    (error,) = [a for a in bad["attributes"] if a["type"] == "error"]
    assert "products_sku.csv" in "".join(error["value"]["stack_trace"])


def project_id(ui: HamiltonUi) -> int:
    return int(next(p["id"] for p in ui.get("/projects") if p["name"] == "daybreak-test"))


def test_with_the_ui_down_runs_go_on_warn_once_and_are_sent_when_it_is_up(
    tmp_path: Path, config: Path, ui_port: int
) -> None:
    done = run_runner("run", "daily_sales_flow", config=config)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "Hamilton UI" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], done.stderr
    assert "cannot connect" in warnings[0] and "sent to the UI when" in warnings[0]
    history = History(load_settings(config, environ={}).state)
    (run,) = history.runs(limit=1)
    assert run.status == "success" and len(history.attempts(run.run_id)) == 7

    # `make ui` (runner.py ui) sends the runs the UI missed once it is up.
    ui = HamiltonUi(config, ui_port, tmp_path / "ui.log")
    try:
        # Sent in three calls (start, tasks, end): wait for the last, not the first.
        wait_for(
            lambda: (ui.run_for(run.run_id) or {}).get("run_status") == "SUCCESS",
            60,
            "the missed run in the UI, ended",
        )
        sent = ui.run_for(run.run_id)
        assert sent is not None and sent["run_status"] == "SUCCESS"
        assert len(sent["node_runs"]) == 7
    finally:
        ui.stop()


def test_a_ui_that_never_answers_costs_one_timeout_not_the_run(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never answers
    try:
        config = tracked_config(tmp_path, silent.getsockname()[1], timeout=0.5)
        done = run_runner("materialize", "uk_products_sku", config=config)
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "Hamilton UI" in line]
        assert len(warnings) == 1 and "no answer within 0.5 s" in warnings[0], done.stderr
    finally:
        silent.close()
