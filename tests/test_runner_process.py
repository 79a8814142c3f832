"""The long-lived runner as a real process: scheduled runs, SIGTERM, and a SIGKILL survived."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daybreak import clock
from daybreak.config import load_settings
from daybreak.ingest import demo
from daybreak.runner.history import History
from daybreak.runner.schedules import CronSchedule
from tests.conftest import ROOT, write_config

pytestmark = [pytest.mark.system_clock, pytest.mark.dates]


def start_runner(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), "--config", str(config), "--grace", "20"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip


def wait_until(check: Callable[[], bool], seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.25)


def test_a_job_due_within_the_minute_runs_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
[jobs.every_minute]
select = ["uk_products_sku"]
cron = "* * * * *"
timezone = "Europe/London"
catch_up_hours = 0
""", days=2, rows=5)  # fmt: skip
    settings = load_settings(config, environ={})
    demo.generate(settings)
    history = History(settings.state)
    log = tmp_path / "runner.log"
    runner = start_runner(config, log)
    try:
        wait_until(lambda: any(r.status == "success" for r in history.runs(job="every_minute")),
                   90, log)  # fmt: skip
        (run,) = [r for r in history.runs(job="every_minute") if r.status == "success"]
        assert run.trigger == "schedule" and run.scheduled_for is not None
        assert dt.datetime.fromisoformat(run.scheduled_for).second == 0
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 0, log.read_text()
    finally:
        if runner.poll() is None:
            runner.kill()
    text = log.read_text()
    assert "scheduler started with 1 scheduled job(s): every_minute cron '* * * * *'" in text
    assert "received signal" in text and "scheduler stopped" in text


def test_a_sigkilled_runners_run_is_marked_interrupted_on_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
[jobs.nightly]
select = ["uk_orders_azure"]
cron = "0 3 * * *"
timezone = "Europe/London"
catch_up_hours = 30
""", days=12, rows=60_000)  # fmt: skip
    settings = load_settings(config, environ={})
    demo.generate(settings)
    history = History(settings.state)
    # The tick before last ran; the last one was missed and is within the window: catch-up.
    schedule = CronSchedule.parse("0 3 * * *", "Europe/London")
    ticks = schedule.previous_before(clock.now(), dt.timedelta(days=3))
    history.record_tick("nightly", ticks[-2], "ran")
    log = tmp_path / "runner.log"
    runner = start_runner(config, log)
    try:
        lake = settings.paths.lake / "orders" / "market=UK"
        wait_until(
            lambda: any(r.status == "running" for r in history.runs(job="nightly"))
            and ((settings.paths.lake / ".batches").exists()  # a backfill batch under way
                 or (lake.exists() and any(lake.rglob("*.parquet")))),
            120, log,
        )  # fmt: skip
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    (killed,) = history.runs(job="nightly")
    assert killed.status == "running" and killed.trigger == "catch-up"

    restarted = start_runner(config, log)
    try:
        wait_until(lambda: history.run(killed.run_id).status == "interrupted", 60, log)  # type: ignore[union-attr]
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(timeout=60) == 0
    finally:
        if restarted.poll() is None:
            restarted.kill()
    run = history.run(killed.run_id)
    assert run is not None and run.error and "interrupted" in run.error
    # The tick the killed run had started is recorded, so the restart did not run it again.
    assert len(history.runs(job="nightly")) == 1
