"""The status page a runner serves: same data as `status --json`, and read in a real Chromium."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, sync_playwright

from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.history import History
from daybreak.views import lineage, status_page, web
from daybreak.views.status import status_data
from tests.conftest import (
    DEMO_END,
    MODELS,
    ROOT,
    run_runner,
    shipped_exports,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.system_clock

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium as this machine runs it: no sandbox as root, no GPU, no calls home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
ARTIFACTS = Path(os.environ.get("DAYBREAK_TEST_ARTIFACTS", ROOT / "test-artifacts"))
BAD_PRODUCTS = "UK/raw_data/reference/products_sku/products_sku.csv"


def without_clock(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "generated_at"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    config = write_config(tmp_path, days=2, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    site = status_page.StatusSite(settings, status_data, lineage.svg_for)
    server = web.StatusServer(site,
                              "127.0.0.1", 0).start()  # fmt: skip
    yield settings, server.url
    server.stop()


def test_api_status_is_status_json_and_logs_are_served(site: tuple[Settings, str]) -> None:
    settings, url = site
    run_runner("materialize", "uk_new_names", config=settings.config_path, check=True)
    (run,) = History(settings.state).runs(limit=1)
    api = requests.get(url + "api/status", timeout=30)
    assert api.status_code == 200 and api.headers["Content-Type"] == "application/json"
    cli = run_runner("status", "--json", config=settings.config_path, check=True)
    assert without_clock(api.json()) == without_clock(json.loads(cli.stdout))
    assert api.json()["recent_runs"][0]["run_id"] == run.run_id

    logged = requests.get(f"{url}runs/{run.run_id}/log", timeout=10)
    assert logged.status_code == 200 and f"run {run.run_id} started" in logged.text
    for path in ("runs/../../etc/passwd/log", "runs/20990101T000000Z-abcdef/log", "nope"):
        assert requests.get(url + path, timeout=10).status_code == 404, path
    svg = requests.get(url + "lineage.svg", timeout=30)
    assert (
        svg.headers["Content-Type"] == "image/svg+xml" and 'id="asset&#45;uk_new_names"' in svg.text
    )
    assert requests.post(url, timeout=10).status_code == 405  # reading pages take no POST


class Runner:
    """`python runner.py` as a user leaves it running; its page's address read from its log."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "runner.py"), "--config", str(config)],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        wait_for(lambda: self.url is not None, 60, "the status page")

    @property
    def url(self) -> str | None:
        assert self.proc.poll() is None, self.log.read_text()
        found = re.search(r"status page on (http://127\.0\.0\.1:\d+/)", self.log.read_text())
        return found.group(1) if found else None

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()


def check_layout(
    page: Page, sections: tuple[str, ...] = ("#jobs", "#runs", "#assets", "#lineage")
) -> None:
    """Reads well: nothing wider than the window, every table and the picture on screen."""
    too_wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
             .map(e => `${e.tagName}#${e.id}.${e.className.baseVal ?? e.className}`)"""
    )
    assert too_wide == [], too_wide
    for section in sections:
        assert page.locator(section).is_visible(), section


def test_the_page_in_chromium_after_a_success_and_after_a_failure(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=2, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    runner = Runner(config, tmp_path / "runner.log")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        run_runner("run", "daily_sales_flow", config=config, check=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            assert runner.url is not None
            page.goto(runner.url)

            assert page.title() == "daybreak status"
            assert f"Runner alive: pid {runner.proc.pid}" in page.locator("#running").inner_text()
            job = page.locator("#jobs tr", has_text="daily_sales_flow")
            assert "success" in job.inner_text()
            for asset in (
                "uk_orders_azure",
                "jp_orders_azure",
                "daily_sales_budget_exchange_ingest",
            ):
                row = page.locator(f"#row-{asset}")
                assert "fresh" in row.inner_text(), asset
            never = page.locator("#row-qi_executive_daily_sales td:nth-child(3)").inner_text()
            assert never == "never"  # not run by this job
            assert (
                "no job runs it"
                in page.locator("#row-qi_executive_daily_sales td.why").inner_text()
            )
            assert page.locator("#failures").count() == 0
            assert page.locator("#lineage svg #asset-uk_orders_azure").count() == 1
            assert page.locator('meta[http-equiv="refresh"]').count() == 1
            check_layout(page)
            page.screenshot(path=str(ARTIFACTS / "status-page-success.png"), full_page=True)

            (settings.paths.landing / BAD_PRODUCTS).write_text("sku;name\n1;2\n")
            assert run_runner("run", "daily_sales_flow", config=config).returncode == 1
            page.reload()

            assert "failed" in page.locator("#jobs tr", has_text="daily_sales_flow").inner_text()
            assert "Failed: daily_sales_flow" in page.locator("#banner").inner_text()
            failure = page.locator("#failures")
            assert failure.is_visible()
            asset_row = failure.locator("tr.failed-asset", has_text="uk_products_sku")
            assert "products_sku.csv" in asset_row.inner_text()  # what failed and why
            assert "uk_products_sku" in failure.locator("pre.log").inner_text()  # the log tail
            assert "--from-failure" in failure.locator("code.rerun").first.inner_text()
            assert "failed" in page.locator("#lineage svg #asset-uk_products_sku").get_attribute(
                "class"
            )  # type: ignore[operator]
            # The asset that failed says why on the page, and has a page of its own.
            row = page.locator("#row-uk_products_sku")
            assert "uk_products_sku failed" in row.locator("td.why").inner_text()
            check_layout(page)
            page.screenshot(path=str(ARTIFACTS / "status-page-failure.png"), full_page=True)
            row.locator("a", has_text="uk_products_sku").click()
            page.wait_for_load_state()
            assert page.title() == "uk_products_sku - daybreak"
            assert "wrong delimiter" in page.locator("#why").inner_text()
            assert page.locator("#runs tr:has(td)").count() == 2  # the success, then the failure
            assert page.locator("#chart svg").count() == 2  # rows and seconds per day
            assert "wrong delimiter" in page.locator("#last-error").inner_text()
            check_layout(page, ("#why", "#about", "#chart", "#last-error", "#runs"))
            page.screenshot(path=str(ARTIFACTS / "asset-page.png"), full_page=True)
            browser.close()
        assert (ARTIFACTS / "status-page-failure.png").stat().st_size > 10_000
    finally:
        runner.stop()


RUN_PAGE = re.compile(r".*/runs/[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


def confirm(page: Page, button: Any, question: str) -> str:
    """Click a page's button, confirm, and land on the run's page; the run's id."""
    button.click()
    page.wait_for_load_state()
    assert question in page.locator("#confirm").inner_text()
    page.locator("#confirm-button").click()
    page.wait_for_load_state()
    assert RUN_PAGE.match(page.url), page.locator("main").inner_text()
    return page.url.rsplit("/", 1)[-1]


def test_run_now_cancel_a_backfill_and_rerun_from_failure_from_the_page_in_chromium(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, MODELS, days=5, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    history = History(settings.state)
    runner = Runner(config, tmp_path / "runner.log")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            assert runner.url is not None
            page.goto(runner.url)
            check_layout(page)

            # Run now: the run's page follows it live until it ends.
            job = page.locator("#job-models")
            run_id = confirm(page, job.locator("form.run button"), "Run models now?")
            page.wait_for_selector('#run-status[data-status="success"]', timeout=180_000)
            assert "started by page (127.0.0.1)" in page.locator("#run-status").inner_text()
            assert page.locator("#attempts tr.attempt").count() >= 5
            record = history.run(run_id)
            assert record is not None and record.origin == "page (127.0.0.1)"
            page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)

            # Backfill twelve days a day a chunk, and cancel it once the first chunk is done.
            start, end = DEMO_END - dt.timedelta(days=11), DEMO_END
            page.goto(runner.url)
            form = page.locator("#job-models form.backfill")
            form.locator("input[name=start]").fill(start.isoformat())
            form.locator("input[name=end]").fill(end.isoformat())
            form.locator("input[name=chunk_days]").fill("1")
            backfill_id = confirm(page, form.locator("button"), "Backfill models from")
            wait_for(lambda: history.chunks(backfill_id)[0]["status"] == "success", 180,
                     "the first chunk")  # fmt: skip
            page.reload()
            cancelled = confirm(page, page.locator("#controls form.cancel button"),
                                f"Cancel run {backfill_id}?")  # fmt: skip
            assert cancelled == backfill_id
            page.wait_for_selector('#run-status[data-status="cancelled"]', timeout=180_000)
            said = page.locator("#run-status").inner_text()
            assert "cancel asked by page (127.0.0.1)" in said and "cancelled by page" in said
            statuses = [c["status"] for c in history.chunks(backfill_id)]
            assert statuses[0] == "success" and statuses.count("success") < len(statuses)
            assert "running" not in statuses
            page.screenshot(path=str(ARTIFACTS / "backfill-cancelled.png"), full_page=True)
            # ... and the same command takes it up again where it stopped.
            resumed = run_runner(
                "backfill", "models", "--start", start.isoformat(), "--end", end.isoformat(),
                "--chunk-days", "1", "--json", config=config, check=True,
            )  # fmt: skip
            done = json.loads(resumed.stdout)
            assert done["run_id"] == backfill_id and done["resumed"] and done["status"] == "success"

            page.goto(runner.url)  # every action on the page, with who asked from where
            said = page.locator("#actions").inner_text()
            assert "page (127.0.0.1)" in said and "cancel asked" in said
            check_layout(page)

            # Rerun from failure after a bad file is fixed.
            products = settings.paths.landing / BAD_PRODUCTS
            good = products.read_bytes()
            products.write_text("sku;name\n1;2\n")
            assert run_runner("run", "models", config=config).returncode == 1
            (failed,) = history.runs(job="models", limit=1)
            products.write_bytes(good)
            page.goto(runner.url)
            rerun = page.locator("#failures form.rerun button").first
            rerun_id = confirm(page, rerun, f"Rerun run {failed.run_id} from its failure")
            page.wait_for_selector('#run-status[data-status="success"]', timeout=180_000)
            record = history.run(rerun_id)
            assert record is not None and record.rerun_of == failed.run_id
            ran = {a["asset"] for a in history.attempts(rerun_id)}
            assert "uk_products_sku" in ran and "uk_orders_azure" not in ran  # from the failure
            browser.close()
    finally:
        runner.stop()
    actions = [(a["action"], a["outcome"]) for a in history.actions(limit=20)]
    assert ("run", "started") in actions and ("rerun", "started") in actions
    assert any(a == "cancel" and o.startswith("cancel asked") for a, o in actions)


def test_column_lineage_on_the_asset_page_and_one_columns_path_in_chromium(tmp_path: Path) -> None:
    config = write_config(tmp_path, shipped_exports(), days=2, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    site = status_page.StatusSite(settings, status_data, lineage.svg_for)
    server = web.StatusServer(site, "127.0.0.1", 0).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "assets/qi_executive_daily_sales")
            row = page.locator('#columns tr[data-column="qi_executive_daily_sales.net_sales_gbp"]')
            assert "int_orders_summary_daily.net_sales_gbp" in row.locator("td.from").inner_text()
            assert "executive_daily_sales.net_sales_gbp" in row.locator("td.to").inner_text()
            assert "aggregated" in row.locator("td.from").inner_text()
            check_layout(page, ("#about", "#columns"))
            page.screenshot(path=str(ARTIFACTS / "asset-columns.png"), full_page=True)

            # The extract's page, then one field's path drawn, upstream to the landing columns.
            page.goto(server.url + "assets/tableau_executive_daily_sales")
            field = page.locator('#columns tr[data-column="executive_daily_sales.net_sales_gbp"]')
            assert field.locator("td").first.inner_text() == "net_sales_gbp"
            field.locator("td").first.locator("a").click()
            page.wait_for_load_state()
            assert page.title() == "executive_daily_sales.net_sales_gbp - daybreak"
            made = page.locator("#column-upstream").inner_text()
            assert "Landing columns (17)" in made and "uk_orders_azure.discount" in made
            assert "daily_sales_budget_exchange_ingest.local_per_gbp" in made
            path = page.locator("#column-path svg")
            for column in ("uk_orders_azure.discount", "stg_budget.fx_local_per_gbp",
                           "executive_daily_sales.net_sales_gbp"):  # fmt: skip
                assert path.locator(f'[id="column_{column}"]').count() == 1, column
            check_layout(page, ("#column-path", "#column-upstream", "#column-downstream"))
            page.screenshot(path=str(ARTIFACTS / "column-path.png"), full_page=True)

            # Impact analysis from a landing column's page.
            page.goto(server.url + "columns/uk_orders_azure.discount")
            used = page.locator("#column-downstream").inner_text()
            assert "executive_daily_sales.net_sales_gbp" in used
            assert "daily_sales_summary.net_sales_gbp" in used
            browser.close()
        api = requests.get(server.url + "api/columns/uk_orders_azure.discount", timeout=30)
        assert api.status_code == 200
        assert "executive_daily_sales.net_sales_gbp" in api.json()["downstream"]["extract_fields"]
        for bad in ("nope.x", "executive_daily_sales.nope", "x", "a..b", "%3Cscript%3E.x"):
            assert requests.get(server.url + f"columns/{bad}", timeout=30).status_code == 404, bad
            assert requests.get(server.url + f"api/columns/{bad}", timeout=30).status_code == 404
        assert requests.post(server.url + "columns/uk_orders_azure.discount",
                             timeout=30).status_code == 405  # fmt: skip
    finally:
        server.stop()
