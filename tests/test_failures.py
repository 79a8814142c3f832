"""Every failure is a recorded, alerted run, and `runner.py check` finds them before a tick does."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.runner.scheduler import Scheduler
from tests.conftest import ROOT, Received, run_runner, write_config

BAD_JOB = """
[jobs.broken]
select = ["uk_orders_azure", "no_such_asset"]
cron = "45 15 * * *"
timezone = "Europe/London"
"""


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch, http_receiver: Received) -> Received:
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", http_receiver.url.replace("http://", "json://"))
    return http_receiver


def test_check_names_a_job_with_an_unknown_asset_and_where_it_is(tmp_path: Path) -> None:
    config = write_config(tmp_path, BAD_JOB)
    done = run_runner("check", config=config)
    assert done.returncode == 2
    line = next(i for i, t in enumerate(config.read_text().splitlines(), 1) if "[jobs.broken]" in t)
    assert f"{config}:{line}: jobs.broken.select: unknown asset or group 'no_such_asset'" in (
        done.stderr
    )
    report = json.loads(run_runner("check", "--json", config=config).stdout)
    assert report["ok"] is False
    assert report["problems"] == [{
        "where": f"{config}:{line}", "key": "jobs.broken.select",
        "message": "unknown asset or group 'no_such_asset'",
    }]  # fmt: skip
    good = run_runner("check", config=write_config(tmp_path / "good"))
    assert good.returncode == 0 and good.stdout.startswith("ok: ") and "dbt models" in good.stdout


def test_check_names_an_export_of_a_table_no_model_builds(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
[[exports]]
asset = "typo_export"
name = "typo"
tables = ["qi_executive_daily_sale"]
""")  # fmt: skip
    done = run_runner("check", config=config)
    assert done.returncode == 2
    assert "exports[0].tables: 'qi_executive_daily_sale' is not a dbt model" in done.stderr


def test_check_names_a_bad_config_and_a_dbt_project_that_does_not_parse(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad", "\n[heartbeat]\ninterval_minutes = -1\n")
    done = run_runner("check", config=bad)
    assert done.returncode == 2 and "heartbeat.interval_minutes" in done.stderr
    project = tmp_path / "dbt"
    shutil.copytree(ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "broken.sql").write_text("select {{ ref('nowhere') }}\n")
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            'state = "state"', f'state = "state"\ndbt_project = "{project.as_posix()}"'
        )
    )
    done = run_runner("check", config=config)
    assert done.returncode == 2 and "dbt project" in done.stderr and "nowhere" in done.stderr


def test_a_scheduled_job_naming_an_unknown_asset_is_a_failed_run_with_an_alert(
    tmp_path: Path, alerts: Received, clock: FixedClock
) -> None:
    settings = load_settings(write_config(tmp_path, BAD_JOB), environ={})
    clock.set(dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC))
    scheduler = Scheduler(settings, run_job=execute_run)
    scheduler.start()
    clock.set(dt.datetime(2026, 11, 24, 15, 45, tzinfo=dt.UTC))
    (started,) = scheduler.due(clock.now())
    assert started.thread is not None
    started.thread.join(60)
    history = History(settings.state)
    (run,) = history.runs(job="broken")
    assert run.status == "failed" and run.trigger == "schedule"
    assert run.error is not None and "UnknownNameError: unknown asset or group 'no_such_asset'" in (
        run.error
    )
    assert run.traceback and "catalogue.py" in run.traceback
    assert history.ticks("broken")[0]["outcome"] == "ran"
    (alert,) = [json.loads(body) for _, _, body in alerts]
    assert alert["title"] == "daybreak: broken failed" and "no_such_asset" in alert["message"]


def test_the_cli_prints_one_line_and_records_the_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, BAD_JOB)
    done = run_runner("run", "broken", config=config)
    assert done.returncode == 2
    assert done.stderr.count("Traceback") == 0
    assert "error: UnknownNameError: unknown asset or group 'no_such_asset'" in done.stderr
    (run,) = History(load_settings(config, environ={}).state).runs()
    assert run.status == "failed" and f"runner.py logs {run.run_id}" in done.stdout


def test_a_dbt_project_that_does_not_parse_fails_the_run_it_was_needed_for(
    tmp_path: Path, settings: Settings
) -> None:
    project = tmp_path / "dbt-broken"
    shutil.copytree(ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "broken.yml").write_text("version: 2\nmodels: [\n")
    config = write_config(tmp_path / "cfg")
    config.write_text(
        config.read_text().replace(
            'state = "state"', f'state = "state"\ndbt_project = "{project.as_posix()}"'
        )
    )
    broken = load_settings(config, environ={})
    outcome = execute_run(broken, ["uk_products_sku"], job="reference")
    assert outcome.status == "failed" and outcome.exception is not None
    (run,) = History(broken.state).runs()
    assert run.status == "failed" and "could not parse" in (run.error or "")
    assert run.selection == ["uk_products_sku"]  # what was asked, since no plan could be made
