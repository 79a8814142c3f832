"""The high-water marks that scope dbt's tests (daybreak/warehouse/test_scope.py), on their own:
what a build is told to test, whatever the file says."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from daybreak.warehouse.test_scope import ChangeMarks

NOW = dt.datetime(2026, 3, 31, 6, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)
MODELS = {"stg_uk_orders": "synced_at"}


def marks_file(tmp_path: Path, whole_at: str, through: str = "2026-03-30 06:00:00") -> Path:
    path = tmp_path / "tests.json"
    body = {"models": {"stg_uk_orders": {"through": through, "whole_at": whole_at}}}
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_a_recent_whole_run_scopes_the_tests_to_the_rows_past_the_mark(tmp_path: Path) -> None:
    marks = ChangeMarks(marks_file(tmp_path, (NOW - dt.timedelta(days=2)).isoformat()))
    assert marks.since(MODELS, NOW, WEEK) == {"stg_uk_orders": "2026-03-30 06:00:00"}
    assert marks.since(MODELS, NOW, WEEK, full=True) == {}  # --full: every row
    assert marks.since(MODELS, NOW, None) == {}  # scoping switched off


@pytest.mark.parametrize(
    "whole_at",
    [
        (NOW - WEEK).isoformat(),  # a week ago: the weekly whole run is due
        (NOW + dt.timedelta(days=30)).isoformat(),  # in the future: a clock set back, a forgery
        "2026-03-31T07:00:00",  # naive: read as UTC, still an hour ahead
    ],
)
def test_a_whole_run_that_is_due_or_cannot_be_trusted_reads_every_row(
    tmp_path: Path, whole_at: str
) -> None:
    assert ChangeMarks(marks_file(tmp_path, whole_at)).since(MODELS, NOW, WEEK) == {}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"models": {"stg_uk_orders": {"through": "1\' or 1=1 --", "whole_at": "2026-03-30"}}}',
        '{"models": {"stg_uk_orders": {"through": "2026-03-30"}}}',
        '{"models": []}',
        "[]",
    ],
)
def test_a_damaged_or_forged_marks_file_means_every_row_is_tested(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "tests.json"
    path.write_text(text, encoding="utf-8")
    marks = ChangeMarks(path)
    assert marks.marks == {}
    assert marks.since(MODELS, NOW, WEEK) == {}
