"""The volume check: a day far below its usual size is flagged (and alerted once), or fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daybreak.config import Settings, load_settings
from daybreak.ingest import datasets, demo
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.views.status import checks_of
from tests.conftest import DEMO_END, Received, write_config

pytestmark = pytest.mark.dates


def partial(settings: Settings, keep: int = 5) -> str:
    """Re-deliver the last UK day with only `keep` lines; its blob name."""
    blob = f"{datasets.orders('UK').prefix}{DEMO_END:%Y}/ingest_orders_{DEMO_END:%Y%m%d}.csv"
    path = settings.paths.landing / blob
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[: keep + 1]) + "\n")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 60))
    return blob


@pytest.fixture
def synced(tmp_path: Path) -> Settings:
    settings = load_settings(write_config(tmp_path, days=40, rows=25), environ={})
    demo.generate(settings, end=DEMO_END)
    assert execute_run(settings, ["uk_orders_azure"]).status == "success"
    return settings


def test_a_partial_day_is_flagged_shown_as_a_check_and_alerted_once(
    synced: Settings, monkeypatch: pytest.MonkeyPatch, http_receiver: Received
) -> None:
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", http_receiver.url.replace("http://", "json://"))
    blob = partial(synced)
    outcome = execute_run(synced, ["uk_orders_azure"])
    assert outcome.status == "success"  # a warning, not a failure
    (result,) = [r for r in outcome.results if r.name == "uk_orders_azure"]
    (warning,) = result.value.volume_warnings
    assert warning.startswith(f"{blob}: 5 rows, 20% of the usual 25 for a Tuesday")
    attempt = History(synced.state).asset_attempts("uk_orders_azure")[0]
    (check,) = checks_of(json.loads(attempt["report"]), "uk_orders_azure")
    assert check["check"] == "volume" and check["status"] == "warn"
    (alert,) = [json.loads(body) for _, _, body in http_receiver]
    assert alert["title"] == "daybreak: uk_orders_azure received a probable partial export"

    partial(synced, keep=4)  # the same file again, still partial: no second alert
    execute_run(synced, ["uk_orders_azure"])
    assert len(http_receiver) == 1


def test_a_day_below_the_configured_minimum_fails_the_asset(synced: Settings) -> None:
    config = synced.config_path
    config.write_text(config.read_text() + "\n[ingestion]\nmin_rows = 10\n")
    settings = load_settings(config, environ={})
    blob = partial(settings)
    outcome = execute_run(settings, ["uk_orders_azure"])
    assert outcome.status == "failed"
    assert f"{blob}: 5 rows, fewer than [ingestion] min_rows (10)" in (outcome.error or "")


def test_a_steady_history_flags_nothing(synced: Settings) -> None:
    blob_dir = synced.paths.landing / datasets.orders("UK").prefix
    newest = sorted(blob_dir.rglob("*.csv"))[-1]
    os.utime(newest, (newest.stat().st_atime, newest.stat().st_mtime + 60))  # same rows again
    outcome = execute_run(synced, ["uk_orders_azure"])
    (result,) = [r for r in outcome.results if r.name == "uk_orders_azure"]
    assert result.status == "success" and result.value.volume_warnings == []
