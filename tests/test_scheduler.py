"""The scheduler's policies with a clock the test controls: catch-up, skips, missed ticks."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daybreak import clock as daybreak_clock
from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.runner.history import History, iso
from daybreak.runner.scheduler import Scheduler
from tests.conftest import write_config

pytestmark = pytest.mark.dates

JOBS = """
[jobs.flow]
select = ["uk_orders_azure"]
cron = "45 15 * * *"
timezone = "Europe/London"

[jobs.monthly]
select = ["uk_products_sku"]
cron = "0 16 1-3 * *"
timezone = "Europe/London"
catch_up_hours = 0
"""


class FakeRuns:
    """Stands in for execute_run: records calls; a run can be held open with `hold`."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.fail = False

    def __call__(self, settings: Settings, selection: list[str], **kwargs: Any) -> Any:
        self.calls.append({"selection": selection, **kwargs})
        self.hold.wait(10)
        if self.fail:
            raise RuntimeError("the job blew up")
        return type("Outcome", (), {"run_id": f"run-{len(self.calls)}"})()


@pytest.fixture(autouse=True)
def clock() -> Iterator[FixedClock]:
    """These tests move daybreak's clock by hand: one that stands still between moves."""
    with daybreak_clock.using(FixedClock(at("2026-11-24T15:00:00+00:00"), tick=False)) as fixed:
        yield fixed  # type: ignore[misc]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Only the jobs above: the conftest job has no schedule, so it is never due.
    return load_settings(write_config(tmp_path, JOBS), environ={})


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def wait_for(scheduler: Scheduler) -> None:
    for thread in list(scheduler._running.values()):
        thread.join(10)


def test_a_due_tick_runs_the_job_once(settings: Settings, clock: FixedClock) -> None:
    clock.set(at("2026-11-24T15:00:00+00:00"))
    runs = FakeRuns()
    scheduler = Scheduler(settings, run_job=runs)
    assert scheduler.start() == []
    assert scheduler.due(clock.now()) == []
    assert scheduler.next_wakeup(clock.now()) == at("2026-11-24T15:05:00+00:00")  # 5 min cap
    clock.set(at("2026-11-24T15:45:00+00:00"))
    (started,) = scheduler.due(clock.now())
    wait_for(scheduler)
    assert (started.job, started.trigger) == ("flow", "schedule")
    assert runs.calls[0]["selection"] == ["uk_orders_azure"]
    assert runs.calls[0]["scheduled_for"] == at("2026-11-24T15:45:00+00:00")
    assert scheduler.due(clock.now()) == []  # not twice
    assert History(settings.state).ticks("flow")[0]["outcome"] == "ran"


def test_a_tick_while_the_job_still_runs_is_skipped_not_stacked(
    settings: Settings, clock: FixedClock
) -> None:
    clock.set(at("2026-11-24T15:40:00+00:00"))
    runs = FakeRuns()
    scheduler = Scheduler(settings, run_job=runs)
    scheduler.start()
    runs.hold.clear()
    clock.set(at("2026-11-24T15:45:00+00:00"))
    scheduler.due(clock.now())
    clock.set(at("2026-11-25T15:45:00+00:00"))  # a day later, the first run still going
    (second,) = scheduler.due(clock.now())
    assert second.trigger == "skipped" and len(runs.calls) == 1
    runs.hold.set()
    wait_for(scheduler)
    outcomes = {t["scheduled_for"]: t["outcome"] for t in History(settings.state).ticks("flow")}
    assert outcomes[iso(at("2026-11-25T15:45:00+00:00"))] == "skipped"


def test_catch_up_after_downtime_runs_the_latest_missed_tick_once(
    settings: Settings, clock: FixedClock
) -> None:
    history = History(settings.state)
    history.record_tick("flow", at("2026-11-22T15:45:00+00:00"), "ran")
    # Down from before the 23rd's and 24th's ticks until 17:00 on the 24th (75 min after).
    clock.set(at("2026-11-24T17:00:00+00:00"))
    runs = FakeRuns()
    scheduler = Scheduler(settings, run_job=runs)
    started = scheduler.start()
    wait_for(scheduler)
    assert [(s.job, s.trigger, s.tick) for s in started] == [
        ("flow", "catch-up", at("2026-11-24T15:45:00+00:00"))
    ]
    assert runs.calls[0]["trigger"] == "catch-up"
    outcomes = {t["scheduled_for"]: t["outcome"] for t in history.ticks("flow")}
    assert outcomes[iso(at("2026-11-23T15:45:00+00:00"))] == "missed"  # recorded, not replayed


def test_misses_older_than_the_window_are_recorded_not_replayed(
    settings: Settings, clock: FixedClock
) -> None:
    history = History(settings.state)
    history.record_tick("flow", at("2026-11-23T15:45:00+00:00"), "ran")
    history.record_tick("monthly", at("2026-11-03T16:00:00+00:00"), "ran")
    clock.set(at("2026-11-24T23:00:00+00:00"))
    runs = FakeRuns()  # 7h15 after the tick
    assert Scheduler(settings, run_job=runs).start() == []
    assert runs.calls == []
    assert history.ticks("flow")[0]["outcome"] == "missed"
    # catch_up_hours = 0 turns it off even for a fresh miss (flow, 25 min late, catches up).
    clock.set(at("2026-12-01T16:10:00+00:00"))
    started = Scheduler(settings, run_job=runs).start()
    assert [s.job for s in started] == ["flow"]
    latest = history.ticks("monthly")[0]
    assert (latest["scheduled_for"], latest["outcome"]) == (
        iso(at("2026-12-01T16:00:00+00:00")), "missed")  # fmt: skip


def test_a_job_never_scheduled_before_starts_from_now(
    settings: Settings, clock: FixedClock
) -> None:
    clock.set(at("2026-11-24T16:00:00+00:00"))
    runs = FakeRuns()
    assert Scheduler(settings, run_job=runs).start() == []
    assert History(settings.state).ticks("flow") == []


def test_several_ticks_passed_at_once_run_the_latest_only(
    settings: Settings, clock: FixedClock
) -> None:
    clock.set(at("2026-11-24T15:00:00+00:00"))
    runs = FakeRuns()
    scheduler = Scheduler(settings, run_job=runs)
    scheduler.start()
    clock.set(at("2026-11-27T16:00:00+00:00"))  # the machine slept for three days
    (started,) = scheduler.due(clock.now())
    wait_for(scheduler)
    assert started.tick == at("2026-11-27T15:45:00+00:00") and len(runs.calls) == 1
    outcomes = [t["outcome"] for t in History(settings.state).ticks("flow")]
    assert outcomes == ["ran", "missed", "missed", "missed"]


def test_a_crashing_job_does_not_stop_the_scheduler(settings: Settings, clock: FixedClock) -> None:
    clock.set(at("2026-11-24T15:00:00+00:00"))
    runs = FakeRuns()
    runs.fail = True
    scheduler = Scheduler(settings, run_job=runs)
    scheduler.start()
    clock.set(at("2026-11-24T15:45:00+00:00"))
    scheduler.due(clock.now())
    wait_for(scheduler)
    runs.fail = False
    clock.set(at("2026-11-25T15:45:00+00:00"))
    assert len(scheduler.due(clock.now())) == 1
    wait_for(scheduler)
    assert len(runs.calls) == 2


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(settings: Settings) -> None:
    history = History(settings.state)
    run_id = history.start_run(["uk_orders_azure"], job="flow")
    history.start_attempt(run_id, "uk_orders_azure", 1)
    with history._connect() as con:  # as if written by a process that no longer exists
        con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", (run_id,))
    Scheduler(settings, run_job=FakeRuns()).start()
    run = history.run(run_id)
    assert run is not None and run.status == "interrupted"
    assert history.attempts(run_id)[0]["status"] == "interrupted"
