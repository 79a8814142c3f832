"""Cancelling runs, and starting and stopping work from the page, with its access rules.

Real runs, a real dbt build and a real uvicorn server; the attacks are real HTTP requests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from daybreak import progress
from daybreak.config import Settings, load_settings
from daybreak.errors import ConfigError, UnknownRunError
from daybreak.ingest import demo
from daybreak.runner.actions import Launcher
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.views import status_page
from daybreak.views import web as web_module
from daybreak.views.status import status_data
from tests.conftest import DEMO_END, MODELS, ROOT, run_runner, wait_for, write_config

FLOW = [
    "azure_ingestion_orders",
    "azure_ingestion_reference",
    "budget_ingestion",
    "build_daily_sales_models",
]


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


# -- the page's access rules ----------------------------------------------------------------

TOKEN = "s3cret-token-for-the-team-lan"
TINY = """
[jobs.tiny]
select = ["uk_new_names"]
"""


class Page:
    """A page server in this process, as `python runner.py` serves it, and its history."""

    def __init__(self, folder: Path, environ: dict[str, str], web: str = "") -> None:
        config = write_config(folder, TINY, days=2, rows=5)
        config.write_text(config.read_text().replace("[web]\nport = 0", f"[web]\nport = 0\n{web}"))
        self.settings = load_settings(config, environ=environ)
        demo.generate(self.settings)
        site = status_page.StatusSite(self.settings, status_data)
        self.launcher = Launcher(self.settings)
        self.server = web_module.StatusServer(site, "127.0.0.1", 0, self.launcher).start()
        self.url = self.server.url.rstrip("/")
        self.history = History(self.settings.state)

    def runs(self) -> list[str]:
        return [r.run_id for r in self.history.runs(limit=50)]

    def refused(self) -> list[dict[str, Any]]:
        return [a for a in self.history.actions(limit=200) if a["outcome"].startswith("refused")]

    def close(self) -> None:
        self.launcher.join(120)
        self.server.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    served = Page(tmp_path, {"DAYBREAK_WEB_TOKEN": TOKEN})
    yield served
    served.close()


def csrf_from(html: str) -> str:
    found = re.search(r'name="?csrf"? value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def signed_in(page: Page) -> requests.Session:
    """A browser's session: signed in through the form, as a person would."""
    browser = requests.Session()
    form = browser.get(page.url + "/login", timeout=10)
    answer = browser.post(page.url + "/login", data={"csrf": csrf_from(form.text), "token": TOKEN},
                          allow_redirects=False, timeout=10)  # fmt: skip
    assert answer.status_code == 303 and "daybreak_session" in browser.cookies
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return browser


def confirm_token(browser: requests.Session, page: Page, query: str) -> str:
    confirm = browser.get(f"{page.url}/confirm/{query}", timeout=10)
    assert confirm.status_code == 200, confirm.text
    return csrf_from(confirm.text)


def test_every_attack_on_the_actions_gets_a_clear_4xx_and_changes_nothing(page: Page) -> None:
    url = page.url
    before = page.runs()
    browser = signed_in(page)
    token = confirm_token(browser, page, "run?job=tiny")
    form = {"job": "tiny", "csrf": token}
    attacks: list[tuple[str, requests.Response, int]] = [
        ("no token at all", requests.post(f"{url}/actions/run", data={"job": "tiny"},
                                          timeout=10), 401),
        ("a wrong bearer token", requests.post(
            f"{url}/actions/run", json={"job": "tiny"},
            headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"}, timeout=10), 401),
        ("an action over GET", browser.get(f"{url}/actions/run?job=tiny", timeout=10), 405),
        ("an action over GET with the token", requests.get(
            f"{url}/actions/cancel?run_id=x", headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10), 405),
        ("a forged Host (DNS rebinding)", requests.post(
            f"{url}/actions/run", json={"job": "tiny"},
            headers={"Authorization": f"Bearer {TOKEN}", "Host": "evil.example:8250"},
            timeout=10), 421),
        ("a cross-site form POST with the session cookie", browser.post(
            f"{url}/actions/run", data=form, headers={"Origin": "http://evil.example"},
            timeout=10, allow_redirects=False), 403),
        ("a cross-site POST a browser marks", browser.post(
            f"{url}/actions/run", data=form, headers={"Sec-Fetch-Site": "cross-site"},
            timeout=10, allow_redirects=False), 403),
        ("a POST without its CSRF token", browser.post(
            f"{url}/actions/run", data={"job": "tiny"}, timeout=10, allow_redirects=False), 403),
        ("a CSRF token of another session", requests.post(
            f"{url}/actions/run", data=form, cookies={"daybreak_session": "1.forged"},
            timeout=10, allow_redirects=False), 401),
        ("a huge body", requests.post(
            f"{url}/actions/run", data="job=" + "x" * 100_000,
            headers={"Authorization": f"Bearer {TOKEN}",
                     "Content-Type": "application/x-www-form-urlencoded"}, timeout=10), 413),
        ("malformed JSON", requests.post(
            f"{url}/actions/run", data="{job: tiny",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10), 400),
        ("a JSON list", requests.post(
            f"{url}/actions/run", json=["tiny"], headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10), 400),
        ("XML", requests.post(
            f"{url}/actions/run", data="<job>tiny</job>",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/xml"},
            timeout=10), 415),
        ("a job name with SQL in it", requests.post(
            f"{url}/actions/run", json={"job": "tiny'; DROP TABLE runs; --"},
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10), 400),
        ("an unknown job", requests.post(
            f"{url}/actions/run", json={"job": "nope"},
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10), 404),
        ("a backfill ending before it starts", requests.post(
            f"{url}/actions/backfill", json={"job": "tiny", "start": "2026-03-31",
                                             "end": "2026-03-01"},
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10), 400),
        ("a cancel of a run that is not there", requests.post(
            f"{url}/actions/cancel", json={"run_id": "20260101T000000Z-abcdef"},
            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10), 404),
        ("an action that does not exist", requests.post(
            f"{url}/actions/drop", json={}, headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10), 404),
    ]  # fmt: skip
    for what, answer, status in attacks:
        assert answer.status_code == status, (what, answer.status_code, answer.text[:300])
        assert "Traceback" not in answer.text, what
    assert page.runs() == before, "no attack started anything"
    assert len(page.refused()) >= len(attacks) - 1  # each recorded (a Host refusal too)
    assert all(a["origin"].startswith("page (127.0.0.1)") for a in page.refused())

    # The real thing works, once: the replayed token is refused.
    done = browser.post(f"{url}/actions/run", data=form, allow_redirects=False, timeout=30)
    assert done.status_code == 303 and done.headers["location"].startswith("/runs/")
    run_id = done.headers["location"].rsplit("/", 1)[-1]
    replay = browser.post(f"{url}/actions/run", data=form, allow_redirects=False, timeout=30)
    assert replay.status_code == 403 and "already used" in replay.text
    assert page.runs() == [run_id, *before]
    record = page.history.run(run_id)
    assert record is not None and record.origin == "page (127.0.0.1)"
    started = [a for a in page.history.actions() if a["run_id"] == run_id]
    assert [(a["action"], a["outcome"]) for a in started] == [("run", "started")]


def test_reading_needs_the_token_unless_public_read_and_acting_always_does(
    page: Page, tmp_path: Path
) -> None:
    for path in ("/", "/api/status", "/lineage.svg", "/assets/uk_new_names", "/confirm/run"):
        assert requests.get(page.url + path, timeout=10).status_code == 401, path
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(page.url + "/api/status", headers=bearer, timeout=30).status_code == 200
    home = signed_in(page).get(page.url + "/", timeout=30)
    assert home.status_code == 200 and "Run now" in home.text
    for header in ("X-Frame-Options", "Content-Security-Policy", "X-Content-Type-Options"):
        assert header in home.headers
    # Wrong tokens at the sign-in: refused, recorded, and after five a minute, 429.
    form = requests.Session()
    statuses = []
    for _ in range(7):
        csrf = csrf_from(form.get(page.url + "/login", timeout=10).text)
        statuses.append(form.post(page.url + "/login", data={"csrf": csrf, "token": "guess"},
                                  timeout=10).status_code)  # fmt: skip
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert TOKEN not in json.dumps(page.history.actions(limit=50))

    public = Page(tmp_path / "public", {"DAYBREAK_WEB_TOKEN": TOKEN}, "public_read = true")
    try:
        open_page = requests.get(public.url + "/", timeout=30)
        assert open_page.status_code == 200 and "Run now" not in open_page.text  # read, not act
        assert requests.get(public.url + "/api/status", timeout=30).status_code == 200
        assert requests.get(public.url + "/confirm/run?job=tiny", timeout=10).status_code == 401
        act = requests.post(public.url + "/actions/run", data={"job": "tiny"}, timeout=10)
        assert act.status_code == 401 and public.runs() == []
    finally:
        public.close()


def test_a_page_beyond_this_machine_needs_a_token_or_does_not_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=2, rows=5)
    text = config.read_text().replace("[web]\nport = 0", '[web]\nport = 0\nhost = "0.0.0.0"')
    config.write_text(text)
    settings = load_settings(config, environ={})
    site = status_page.StatusSite(settings, status_data)
    with pytest.raises(ConfigError, match="DAYBREAK_WEB_TOKEN"):
        web_module.StatusServer(site, "0.0.0.0", 0)
    short = load_settings(config, environ={"DAYBREAK_WEB_TOKEN": "short"})
    with pytest.raises(ConfigError, match="at least 16"):
        web_module.StatusServer(status_page.StatusSite(short, status_data), "0.0.0.0", 0)
    # The runner itself says why and exits 2, before it schedules anything.
    refused = run_runner(config=config)
    assert refused.returncode == 2 and "DAYBREAK_WEB_TOKEN" in refused.stderr
    # With the token it serves the LAN; the machine's own name is a Host it answers to.
    lan = load_settings(config, environ={"DAYBREAK_WEB_TOKEN": TOKEN})
    server = web_module.StatusServer(status_page.StatusSite(lan, status_data), "0.0.0.0", 0)
    server.start()
    try:
        port = server.sock.getsockname()[1]
        named = requests.get(f"http://127.0.0.1:{port}/api/status",
                             headers={"Host": f"{socket.gethostname()}:{port}",
                                      "Authorization": f"Bearer {TOKEN}"}, timeout=30)  # fmt: skip
        assert named.status_code == 200
        other = requests.get(f"http://127.0.0.1:{port}/", headers={"Host": "attacker.example"},
                             timeout=10)  # fmt: skip
        assert other.status_code == 421
    finally:
        server.stop()


def test_on_this_desktop_with_no_token_the_buttons_work_but_still_need_csrf(
    tmp_path: Path,
) -> None:
    page = Page(tmp_path, {})
    try:
        home = requests.get(page.url + "/", timeout=30)
        assert home.status_code == 200 and "Run now" in home.text
        blind = requests.post(page.url + "/actions/run", data={"job": "tiny"}, timeout=10)
        assert blind.status_code == 403 and "CSRF" in blind.text
        cross = requests.post(page.url + "/actions/run", data={"job": "tiny"},
                              headers={"Origin": "http://evil.example"}, timeout=10)  # fmt: skip
        assert cross.status_code == 403
        assert page.runs() == []
        browser = requests.Session()
        token = confirm_token(browser, page, "run?job=tiny")
        done = browser.post(page.url + "/actions/run", data={"job": "tiny", "csrf": token},
                            headers={"Accept": "application/json"}, timeout=30)  # fmt: skip
        assert done.status_code == 202 and done.json()["run_id"] in page.runs()
        page.launcher.join(120)
        # Everything the CLI starts, the page starts: materialize an asset, with --full.
        asset_page = browser.get(page.url + "/assets/uk_new_names", timeout=30)
        assert "/confirm/materialize" in asset_page.text
        token = confirm_token(browser, page, "materialize?assets=uk_new_names")
        full = browser.post(page.url + "/actions/materialize",
                            data={"assets": "uk_new_names", "full": "true", "csrf": token},
                            headers={"Accept": "application/json"}, timeout=30)  # fmt: skip
        assert full.status_code == 202, full.text
        page.launcher.join(120)
        record = page.history.run(full.json()["run_id"])
        assert record is not None and record.status == "success" and record.job is None
        assert "full refresh" in (record.plan or "") and record.origin == "page (127.0.0.1)"
        unknown = browser.post(page.url + "/actions/materialize",
                               data={"assets": "nope", "csrf": confirm_token(
                                   browser, page, "materialize?assets=nope")},
                               timeout=30, allow_redirects=False)  # fmt: skip
        assert unknown.status_code == 404
    finally:
        page.close()


# -- cancel ---------------------------------------------------------------------------------


def test_a_cancel_is_asked_once_and_a_run_that_ended_is_not_cancelled(
    flow_settings: Settings,
) -> None:
    history = History(flow_settings.state)
    run_id = history.start_run(["uk_new_names"], job="daily_sales_flow")
    outcome, run = history.request_cancel(run_id, "cli (ana on desk-7)")
    assert outcome == "requested" and run.cancel_requested_by == "cli (ana on desk-7)"
    assert history.request_cancel(run_id, "page (10.0.0.5)")[0] == "already"
    assert history.run(run_id).cancel_requested_by == "cli (ana on desk-7)"  # type: ignore[union-attr]
    history.finish_run(run_id, "cancelled", "cancelled by cli (ana on desk-7)")
    assert history.request_cancel(run_id, "page (10.0.0.5)")[0] == "ended"
    with pytest.raises(UnknownRunError):
        history.request_cancel("20260101T000000Z-abcdef", "cli")


@pytest.mark.system_clock
def test_runner_cancel_stops_a_backfill_in_another_process_and_the_same_command_resumes_it(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, MODELS, days=12, rows=4)
    settings = load_settings(config, environ={})
    demo.generate(settings, end=DEMO_END)
    start = DEMO_END - dt.timedelta(days=11)  # twelve chunks: the cancel lands before the end
    command = ["backfill", "models", "--start", start.isoformat(), "--end", DEMO_END.isoformat(),
               "--chunk-days", "1", "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    log = tmp_path / "backfill.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), *command, "--config", str(config)],
            stdout=subprocess.PIPE, stderr=out, env=env, cwd=ROOT,
        )  # fmt: skip
    history = History(settings.state)

    def first_chunk_done() -> bool:
        assert proc.poll() is None, log.read_text()
        found = history.backfills(limit=1)
        return bool(found) and history.chunks(found[0].run_id)[0]["status"] == "success"

    wait_for(first_chunk_done, 120, "the first chunk")
    (backfill_run,) = history.backfills(limit=1)
    asked = run_runner("cancel", backfill_run.run_id, config=config)
    assert asked.returncode == 0 and "it stops at its next safe point" in asked.stdout
    again = run_runner("cancel", backfill_run.run_id, config=config)
    assert "already stopping" in again.stdout or "ended cancelled" in again.stdout, again.stdout
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, log.read_text()
    ended = json.loads(stdout)
    assert ended["status"] == "cancelled" and "cancelled by cli (" in ended["error"]
    chunks = history.chunks(backfill_run.run_id)
    statuses = [c["status"] for c in chunks]
    assert statuses[0] == "success" and "running" not in statuses
    assert statuses.count("success") < len(chunks), "it stopped before the end"
    shown = run_runner("history", config=config, check=True).stdout
    assert "cancelled by cli (" in shown and "started by cli (" in shown
    audit = run_runner("history", "--actions", config=config, check=True).stdout
    assert "cancel" in audit and ("already stopping" in audit or "ended cancelled" in audit)

    resumed = run_runner(*command, config=config, check=True)
    again_ended = json.loads(resumed.stdout)
    assert again_ended["run_id"] == backfill_run.run_id and again_ended["resumed"] is True
    assert again_ended["status"] == "success"
    assert {c["status"] for c in history.chunks(backfill_run.run_id)} == {"success"}
    recorded = [(a["action"], a["outcome"][:10]) for a in history.actions(limit=10)]
    assert ("cancel", "cancel ask") in recorded and ("backfill", "started") in recorded


def test_hostile_cookies_tokens_and_numbers_get_a_4xx_never_a_500(page: Page) -> None:
    url, bearer = page.url, {"Authorization": f"Bearer {TOKEN}"}
    for cookie in ("²².x.y", "9999999999.é.x", "1" * 5000 + ".a.b", "...", "a.b"):
        got = requests.get(url + "/", cookies={"daybreak_session": cookie}, timeout=10)
        assert got.status_code == 401, cookie[:40]  # not signed in, and no crash
    browser = signed_in(page)
    for csrf in ("²³.x.y", "a.9999999999.é", "a." + "9" * 5000 + ".b", ""):
        got = browser.post(url + "/actions/run", data={"job": "tiny", "csrf": csrf},
                           allow_redirects=False, timeout=10)  # fmt: skip
        assert got.status_code in (400, 403), csrf[:40]  # too long, or not a token
    for days in ("²", "0", "367", "-1", "1e3"):
        got = requests.post(
            url + "/actions/backfill",
            headers=bearer,
            timeout=10,
            json={"job": "tiny", "start": "2026-03-30", "end": "2026-03-31", "chunk_days": days},
        )
        assert got.status_code == 400, days
        confirm = browser.get(f"{url}/confirm/backfill?job=tiny&start=2026-03-30&end=2026-03-31"
                              f"&chunk_days={days}", timeout=10)  # fmt: skip
        assert confirm.status_code == 400, days
    assert page.runs() == []
    # Signing out ends the session on the server: the old cookie no longer works.
    cookie = browser.cookies["daybreak_session"]
    browser.post(url + "/logout", timeout=10)
    stolen = requests.get(url + "/api/status", cookies={"daybreak_session": cookie}, timeout=10)
    assert stolen.status_code == 401
    # A wrong bearer token counts as a failed sign-in: guessing is throttled there too.
    wrong = [requests.get(url + "/api/status", headers={"Authorization": "Bearer nope"},
                          timeout=10).status_code for _ in range(7)]  # fmt: skip
    assert wrong[:5] == [401] * 5 and wrong[-1] == 429


def test_two_clicks_at_once_start_one_run(page: Page) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    answers: list[int] = []

    def click() -> None:
        answers.append(requests.post(page.url + "/actions/run", json={"job": "tiny"},
                                     headers=bearer, timeout=60).status_code)  # fmt: skip

    both = [threading.Thread(target=click) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()
    assert sorted(answers) == [202, 409]
    assert len(page.runs()) == 1
