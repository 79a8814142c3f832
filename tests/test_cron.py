"""Cron schedules in Europe/London across the clock changes of 2026 and 2027."""

from __future__ import annotations

import datetime as dt

import pytest

from daybreak.config import load_settings
from daybreak.runner.scheduler import schedule_of
from daybreak.runner.schedules import CronError, CronSchedule
from tests.conftest import ROOT

pytestmark = pytest.mark.dates

LONDON = "Europe/London"


def upcoming(expression: str, start: str, count: int, zone: str = LONDON) -> list[str]:
    schedule = CronSchedule.parse(expression, zone)
    moment = dt.datetime.fromisoformat(start)
    found = []
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M %Z"))
    return found


def shipped() -> dict[str, CronSchedule]:
    settings = load_settings(ROOT / "daybreak.toml", environ={})
    return {name: s for name, job in settings.jobs.items() if (s := schedule_of(job))}


def test_the_four_shipped_jobs_and_their_schedules() -> None:
    schedules = shipped()
    assert {n: (s.expression, s.timezone) for n, s in schedules.items()} == {
        "ingest_azure_qi_job": ("15 15 * * *", LONDON),
        "daily_sales_flow": ("45 15 * * *", LONDON),
        "uk_morning_refresh_with_backup": ("15 7 * * *", LONDON),
        "ingest_scv_job": ("0 16 1-3 * *", LONDON),
    }


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring 2026: clocks go forward on Sunday 29 March at 01:00 GMT.
        ("2026-03-27T12:00:00+00:00", [
            "2026-03-27 15:45 GMT", "2026-03-28 15:45 GMT", "2026-03-29 15:45 BST",
            "2026-03-30 15:45 BST"]),
        # Autumn 2026: back on Sunday 25 October at 02:00 BST.
        ("2026-10-23T12:00:00+00:00", [
            "2026-10-23 15:45 BST", "2026-10-24 15:45 BST", "2026-10-25 15:45 GMT",
            "2026-10-26 15:45 GMT"]),
        ("2027-03-27T00:00:00+00:00", [
            "2027-03-27 15:45 GMT", "2027-03-28 15:45 BST", "2027-03-29 15:45 BST"]),
        ("2027-10-30T00:00:00+00:00", [
            "2027-10-30 15:45 BST", "2027-10-31 15:45 GMT", "2027-11-01 15:45 GMT"]),
    ],
)  # fmt: skip
def test_daily_sales_flow_runs_at_1545_london_time_across_the_changes(
    start: str, expected: list[str]
) -> None:
    assert upcoming("45 15 * * *", start, len(expected)) == expected


def test_all_four_jobs_on_the_spring_change_of_2026() -> None:
    day = dt.datetime(2026, 3, 28, 23, 0, tzinfo=dt.UTC)
    table = {
        name: s.next_after(day).astimezone(s.zone).strftime("%m-%d %H:%M %Z")
        for name, s in shipped().items()
    }
    assert table == {
        "ingest_azure_qi_job": "03-29 15:15 BST",
        "daily_sales_flow": "03-29 15:45 BST",
        "uk_morning_refresh_with_backup": "03-29 07:15 BST",
        "ingest_scv_job": "04-01 16:00 BST",
    }
    # 07:15 BST is 06:15 UTC: the wall time stays, the instant moves.
    morning = shipped()["uk_morning_refresh_with_backup"].next_after(day)
    assert morning == dt.datetime(2026, 3, 29, 6, 15, tzinfo=dt.UTC)


def test_all_four_jobs_on_the_autumn_change_of_2027() -> None:
    day = dt.datetime(2027, 10, 30, 23, 0, tzinfo=dt.UTC)
    table = {
        name: s.next_after(day).astimezone(s.zone).strftime("%m-%d %H:%M %Z")
        for name, s in shipped().items()
    }
    assert table == {
        "ingest_azure_qi_job": "10-31 15:15 GMT",
        "daily_sales_flow": "10-31 15:45 GMT",
        "uk_morning_refresh_with_backup": "10-31 07:15 GMT",
        "ingest_scv_job": "11-01 16:00 GMT",
    }


def test_scv_runs_on_the_first_three_days_of_each_month() -> None:
    assert upcoming("0 16 1-3 * *", "2026-12-02T17:00:00+00:00", 5) == [
        "2026-12-03 16:00 GMT", "2027-01-01 16:00 GMT", "2027-01-02 16:00 GMT",
        "2027-01-03 16:00 GMT", "2027-02-01 16:00 GMT",
    ]  # fmt: skip


def test_a_time_that_does_not_exist_runs_once_at_the_end_of_the_gap() -> None:
    assert upcoming("30 1 * * *", "2026-03-28T12:00:00+00:00", 2) == [
        "2026-03-29 02:00 BST", "2026-03-30 01:30 BST"]  # fmt: skip
    # 01:00 and 01:30 both fall in the gap and land on the same instant: one run, not two.
    assert upcoming("0,30 1 * * *", "2026-03-28T12:00:00+00:00", 2) == [
        "2026-03-29 02:00 BST", "2026-03-30 01:00 BST"]  # fmt: skip


def test_a_time_that_occurs_twice_runs_once() -> None:
    assert upcoming("30 1 * * *", "2026-10-24T12:00:00+00:00", 2) == [
        "2026-10-25 01:30 BST", "2026-10-26 01:30 GMT"]  # fmt: skip
    # Between the two 01:30s, the next run is the next day's, not the repeat.
    assert upcoming("30 1 * * *", "2026-10-25T00:45:00+00:00", 1) == ["2026-10-26 01:30 GMT"]


def test_an_hourly_job_runs_in_both_occurrences_of_the_repeated_hour() -> None:
    # London, 2026-10-25: 01:00-02:00 happens twice. Debian cron (and cronsim) run an hourly job
    # in each: five runs between midnight and 04:00 local time, not four.
    assert upcoming("0 * * * *", "2026-10-24T22:30:00+00:00", 5) == [
        "2026-10-25 00:00 BST", "2026-10-25 01:00 BST", "2026-10-25 01:00 GMT",
        "2026-10-25 02:00 GMT", "2026-10-25 03:00 GMT"]  # fmt: skip
    assert upcoming("*/30 * * * *", "2027-10-31T00:10:00+00:00", 3) == [
        "2027-10-31 01:30 BST", "2027-10-31 01:00 GMT", "2027-10-31 01:30 GMT"]  # fmt: skip
    # In spring the hour that does not exist has no runs; the others are all there.
    assert upcoming("0 * * * *", "2027-03-27T23:30:00+00:00", 3) == [
        "2027-03-28 00:00 GMT", "2027-03-28 02:00 BST", "2027-03-28 03:00 BST"]  # fmt: skip


def test_day_of_month_or_day_of_week_and_names() -> None:
    # Both restricted: either matches (cron's rule). 1 Dec 2026 is a Tuesday.
    assert upcoming("0 9 1 * mon", "2026-11-28T00:00:00+00:00", 3) == [
        "2026-11-30 09:00 GMT", "2026-12-01 09:00 GMT", "2026-12-07 09:00 GMT"]  # fmt: skip
    assert upcoming("0 9 * jan-feb 0", "2026-12-30T00:00:00+00:00", 1) == ["2027-01-03 09:00 GMT"]
    assert upcoming("*/20 * * * *", "2026-06-01T10:05:00+00:00", 3, "UTC") == [
        "2026-06-01 10:20 UTC", "2026-06-01 10:40 UTC", "2026-06-01 11:00 UTC"]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("45 15 * *", "expected 5 fields"),
        ("61 15 * * *", "minute: '61' is not valid"),
        ("45 25 * * *", "hour: '25' is not valid"),
        ("0 16 0-3 * *", "day of month: '0-3' is not valid"),
        ("0 16 * * funday", "day of week: 'funday' is not valid"),
        ("0 16 31 2 *", "day of month: '31' is not valid"),
    ],
)
def test_bad_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression, LONDON)


def test_describe_in_words() -> None:
    assert shipped()["daily_sales_flow"].describe() == "at 15:45 every day (Europe/London)"
    assert shipped()["ingest_scv_job"].describe() == (
        "at 16:00 on day 1-3 of every month (Europe/London)"
    )
