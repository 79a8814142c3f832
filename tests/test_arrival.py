"""Arrival-driven jobs: files dropped into the landing zone (a local folder and Azurite) with
daybreak's clock moved by hand; real syncs, real runs, the real scheduler's decisions."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daybreak import clock as daybreak_clock
from daybreak.clock import FixedClock, SystemClock
from daybreak.config import Settings, load_settings
from daybreak.errors import ConfigError
from daybreak.ingest import datasets, demo
from daybreak.ingest.sources import BlobInfo, LocalSource
from daybreak.runner.arrival import ArrivalLog, cycle
from daybreak.runner.eta import job_eta
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History, RunRecord
from daybreak.runner.scheduler import Scheduler
from daybreak.views import cli
from tests.conftest import DEMO_END, ROOT, write_config

pytestmark = pytest.mark.dates

MARKETS = ["UK", "DE", "IT", "JP"]
INPUTS = [f"{m.lower()}_orders_azure" for m in MARKETS]
LONDON = dt.timezone(dt.timedelta(hours=1))  # BST: the test days are in April 2026
NEW_DAY = DEMO_END + dt.timedelta(days=1)  # the files that land on the morning after

ALL = """
[arrival]
poll_seconds = 60
settle_seconds = 30
debounce_seconds = 120
late_minutes = 30

[jobs.morning]
select = ["azure_ingestion_orders"]
on_arrival = ["uk_orders_azure", "de_orders_azure", "it_orders_azure", "jp_orders_azure"]
wait = "all"
window = "00:00-07:15"
latest = "07:15"
timezone = "Europe/London"

[freshness.jp_orders_azure]
deadline = "07:30"
timezone = "Europe/London"
"""

ANY = """
[arrival]
poll_seconds = 10
settle_seconds = 30
debounce_seconds = 0

[jobs.quick]
select = ["azure_ingestion_orders"]
on_arrival = ["uk_orders_azure", "de_orders_azure"]
wait = "any"
"""


def local(hour: int, minute: int = 0, day: dt.date | None = None) -> dt.datetime:
    """A wall time in London on the morning the new files land."""
    on = day or NEW_DAY + dt.timedelta(days=1)
    return dt.datetime(on.year, on.month, on.day, hour, minute, tzinfo=LONDON)


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Iterator[FixedClock]:
    """A clock that stands still between the moves the test makes (the machine's for a test
    marked system_clock, which compares with a runner process)."""
    if request.node.get_closest_marker("system_clock"):
        with daybreak_clock.using(SystemClock()):
            yield None  # type: ignore[misc]
        return
    with daybreak_clock.using(FixedClock(local(0, 5), tick=False)) as fixed:
        yield fixed  # type: ignore[misc]


def project(folder: Path, extra: str, environ: dict[str, str] | None = None) -> Settings:
    """A demo landing zone up to DEMO_END, synced once by the first arrival job of `extra`."""
    settings = load_settings(write_config(folder, extra, days=10, rows=5), environ=environ or {})
    demo.generate(settings, end=DEMO_END)
    job = next(n for n, j in settings.jobs.items() if j.on_arrival)
    assert execute_run(settings, settings.jobs[job].select, job=job).status == "success"
    return settings


@pytest.fixture
def morning(tmp_path: Path, clock: FixedClock) -> Settings:
    clock.set(local(0, 1, DEMO_END + dt.timedelta(days=1)))
    return project(tmp_path, ALL)


def new_file(settings: Settings, market: str, day: dt.date = NEW_DAY) -> tuple[str, Path]:
    """The blob name and the content of `market`'s order file for `day` (not in the landing)."""
    scratch = settings.paths.state / "new-files" / day.isoformat()
    if not scratch.exists():
        demo.generate(settings, days=1, rows_per_day=7, end=day, root=scratch)
    name = f"{datasets.orders(market).prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"
    return name, scratch / name


def drop(settings: Settings, market: str, at: dt.datetime, day: dt.date = NEW_DAY) -> Path:
    """Land `market`'s file in the local landing zone, last written at `at`."""
    name, content = new_file(settings, market, day)
    target = settings.paths.landing / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(content, target)
    os.utime(target, (at.timestamp(), at.timestamp()))
    return target


def step(scheduler: Scheduler, clock: FixedClock, minutes: float = 1) -> list[str]:
    """Move the clock, let the scheduler poll and start what it decides; wait for the runs."""
    clock.advance(dt.timedelta(minutes=minutes))
    started = scheduler.arrived(clock.now())
    for s in started:
        if s.thread is not None:
            s.thread.join(60)
    return [s.job for s in started if s.thread is not None]


def watching(settings: Settings, clock: FixedClock, at: dt.datetime) -> Scheduler:
    """A runner's scheduler started at `at` (recovery and catch-up done), polled by `step`."""
    clock.set(at)
    scheduler = Scheduler(settings, run_job=execute_run)
    scheduler.start()
    return scheduler


def arrival_runs(settings: Settings, job: str) -> list[RunRecord]:
    return [r for r in History(settings.state).runs(job=job, limit=50) if r.trigger == "arrival"]


def test_four_markets_landing_at_different_times_make_one_run_after_the_last(
    morning: Settings, clock: FixedClock
) -> None:
    scheduler = watching(morning, clock, local(3, 0))
    landed = {"UK": local(3, 10), "DE": local(4, 12), "IT": local(4, 40), "JP": local(5, 20)}
    started: list[str] = []
    for market, at in landed.items():
        clock.set(at)
        drop(morning, market, at)
        for _ in range(4):  # a few polls after each landing
            started += step(scheduler, clock)
    assert started == ["morning"]  # one run, after the last market, never before it
    (run,) = arrival_runs(morning, "morning")
    assert run.status == "success"
    started_at = dt.datetime.fromisoformat(run.started_at)
    assert started_at >= landed["JP"] + dt.timedelta(seconds=120)  # the debounce after the last
    detail = run.detail
    assert detail["reason"] == "all arrived" and detail["missing"] == []
    assert sorted(detail["inputs"]) == sorted(INPUTS)
    assert len(detail["files"]) == 4
    # The lake has the new day of every market, and more polls run nothing.
    for _ in range(5):
        assert step(scheduler, clock, 3) == []
    synced = (
        sqlite3.connect(morning.state.db)
        .execute("SELECT count(*) FROM synced_blobs WHERE blob LIKE ?", (f"%{NEW_DAY:%Y%m%d}.csv",))
        .fetchone()[0]
    )
    assert synced == 4
    # history and the status data show the trigger and its files
    assert cli.main(["history", "--job", "morning", "--config", str(morning.config_path)]) == 0


def test_a_late_market_at_latest_runs_with_what_arrived_and_names_it(
    morning: Settings, clock: FixedClock, http_receiver: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", http_receiver.url.replace("http://", "json://"))  # type: ignore[attr-defined]
    scheduler = watching(morning, clock, local(4, 0))
    for market in ("UK", "DE", "IT"):
        drop(morning, market, clock.now())
    started = []
    for _ in range(20):
        started += step(scheduler, clock, 10)  # to 07:20
    assert started == ["morning"]
    (run,) = arrival_runs(morning, "morning")
    assert run.detail["reason"] == "latest"
    assert run.detail["missing"] == ["jp_orders_azure"]
    assert dt.datetime.fromisoformat(run.started_at) >= local(7, 15)
    missing_alerts = [b for _, _, b in http_receiver if "without jp_orders_azure" in b]
    assert len(missing_alerts) == 1
    # JP lands late, at 07:40: its own run, the same morning.
    clock.set(local(7, 40))
    drop(morning, "JP", clock.now())
    for _ in range(6):
        started += step(scheduler, clock)
    assert started == ["morning", "morning"]
    late = arrival_runs(morning, "morning")[0]
    assert late.detail["reason"] == "late arrival"
    assert late.detail["inputs"] == ["jp_orders_azure"]
    assert [b for _, _, b in http_receiver if "without jp_orders_azure" in b] == missing_alerts


def test_a_file_written_in_two_parts_runs_once_after_it_settles(
    tmp_path: Path, clock: FixedClock
) -> None:
    clock.set(local(5, 0))
    settings = project(tmp_path, ANY)
    scheduler = watching(settings, clock, clock.now())
    name, content = new_file(settings, "UK")
    lines = content.read_text(encoding="utf-8").splitlines(keepends=True)
    target = settings.paths.landing / name
    target.parent.mkdir(parents=True, exist_ok=True)
    # The first half: a CSV that would sync on its own, but is still being written.
    target.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    os.utime(target, (clock.now().timestamp(),) * 2)
    assert step(scheduler, clock, 10 / 60) == []  # seen: 10 s old, not settled
    clock.advance(dt.timedelta(seconds=10))
    with target.open("a", encoding="utf-8") as out:
        out.write("".join(lines[len(lines) // 2 :]))
    os.utime(target, (clock.now().timestamp(),) * 2)
    assert step(scheduler, clock, 10 / 60) == []  # it grew: settling again
    assert step(scheduler, clock, 10 / 60) == []
    started = []
    for _ in range(4):
        started += step(scheduler, clock, 10 / 60)
    assert started == ["quick"]
    (run,) = arrival_runs(settings, "quick")
    assert [f["blob"] for f in run.detail["files"]] == [name]
    rows = (
        sqlite3.connect(settings.state.db)
        .execute("SELECT rows FROM synced_blobs WHERE blob = ?", (name,))
        .fetchone()[0]
    )
    assert rows == len(lines) - 1  # every line of the whole file, once


def test_a_runner_restarted_between_two_arrivals_runs_once(
    morning: Settings, clock: FixedClock
) -> None:
    first = watching(morning, clock, local(3, 0))
    for market in ("UK", "DE"):
        drop(morning, market, clock.now())
    assert [*step(first, clock), *step(first, clock)] == []
    assert {a.asset for a in ArrivalLog(morning.state).after(0, INPUTS)} == {
        "uk_orders_azure", "de_orders_azure"}  # fmt: skip
    # The desktop restarts: a new runner, the same state folder.
    second = watching(morning, clock, local(4, 30))
    for market in ("IT", "JP"):
        drop(morning, market, clock.now())
    started = []
    for _ in range(6):
        started += step(second, clock)
    assert started == ["morning"]
    (run,) = arrival_runs(morning, "morning")
    assert sorted(run.detail["inputs"]) == sorted(INPUTS)
    assert len(run.detail["files"]) == 4  # the two seen before the restart too, once each


def test_an_arrival_while_the_job_runs_makes_exactly_one_follow_up(
    tmp_path: Path, clock: FixedClock
) -> None:
    clock.set(local(5, 0))
    settings = project(tmp_path, ANY)
    history = History(settings.state)
    scheduler = watching(settings, clock, local(5, 0))
    # The job runs in another process (a `runner.py run quick`): arrivals wait for it.
    other = history.start_run(settings.jobs["quick"].select, job="quick", trigger="manual")
    drop(settings, "UK", clock.now() - dt.timedelta(minutes=5))
    assert step(scheduler, clock) == []
    drop(settings, "DE", clock.now() - dt.timedelta(minutes=5))
    assert step(scheduler, clock) == []
    assert step(scheduler, clock) == []
    history.finish_run(other, "success")
    assert step(scheduler, clock) == ["quick"]
    assert [step(scheduler, clock) for _ in range(3)] == [[], [], []]
    (run,) = arrival_runs(settings, "quick")
    assert sorted(run.detail["inputs"]) == ["de_orders_azure", "uk_orders_azure"]


def test_the_early_warning_fires_once_before_the_deadline_with_the_eta(
    morning: Settings, clock: FixedClock, http_receiver: list, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", http_receiver.url.replace("http://", "json://"))  # type: ignore[attr-defined]
    log = ArrivalLog(morning.state)
    # Three earlier mornings: every market landed between 04:50 and 05:10 (JP: 04:50, 05:00
    # and 05:10, so it usually lands 04:55-05:05, the quartiles).
    for back in (3, 2, 1):
        day = NEW_DAY + dt.timedelta(days=1 - back)
        for market in MARKETS:
            at = local(4, 50, day) + dt.timedelta(minutes=10 * (3 - back))
            name = f"{datasets.orders(market).prefix}{day:%Y}/ingest_orders_" \
                   f"{day - dt.timedelta(days=1):%Y%m%d}.csv"  # fmt: skip
            seen = at + dt.timedelta(minutes=1)  # by the poll after it landed
            blob = BlobInfo(name, f"e{back}", 10, at)
            log.observe(f"{market.lower()}_orders_azure", [blob], seen, dt.timedelta(seconds=30))
    scheduler = watching(morning, clock, local(4, 55))
    for market in ("UK", "DE", "IT"):
        drop(morning, market, clock.now())
    late_alerts = lambda: [b for _, _, b in http_receiver if "is late" in b]  # noqa: E731
    for _ in range(9):  # to 05:40: past 05:05 + 30 min
        step(scheduler, clock, 5)
    assert len(late_alerts()) == 1
    body = json.loads(late_alerts()[0])
    text = body.get("title", "") + body.get("message", "")
    assert "jp_orders_azure" in text
    assert f"ingest_orders_{NEW_DAY:%Y%m%d}.csv" in text  # the file expected
    assert "07:30" in text  # the deadline at risk
    assert clock.now() < local(7, 30)
    for _ in range(6):
        step(scheduler, clock, 5)
    assert len(late_alerts()) == 1  # once
    eta = job_eta(morning, History(morning.state), "morning")
    states = {i.asset: i.state for i in eta.inputs}
    assert states == {"uk_orders_azure": "landed", "de_orders_azure": "landed",
                      "it_orders_azure": "landed", "jp_orders_azure": "late"}  # fmt: skip
    jp = eta.inputs[-1]
    assert (jp.usual_from, jp.usual_to) == ("04:55", "05:05")
    assert eta.at_risk and eta.deadline is not None
    assert "jp_orders_azure missing" in eta.sentence
    # The command line says the same, and plan names what it waits for.
    assert cli.main(["eta", "morning", "--config", str(morning.config_path)]) == 0
    out = capsys.readouterr().out
    assert "uk_orders_azure landed" in out and "min late" in out
    assert cli.main(["plan", "morning", "--config", str(morning.config_path)]) == 0
    assert "waiting for jp_orders_azure (usually lands by 05:05;" in capsys.readouterr().out
    # JP lands: expected current a few minutes later, before the deadline.
    drop(morning, "JP", clock.now())
    step(scheduler, clock)
    eta = job_eta(morning, History(morning.state), "morning")
    assert all(i.state == "landed" for i in eta.inputs)
    assert eta.expected_current_at is not None and not eta.at_risk


def test_a_backfill_never_triggers_an_arrival_run(morning: Settings, clock: FixedClock) -> None:
    from daybreak.runner.backfill import backfill

    scheduler = watching(morning, clock, local(3, 0))
    for market in MARKETS:
        drop(morning, market, clock.now() - dt.timedelta(hours=1))
    assert backfill(morning, "morning", NEW_DAY, NEW_DAY).status == "success"
    started = []
    for _ in range(5):
        started += step(scheduler, clock)
    assert started == []
    assert ArrivalLog(morning.state).after(0, INPUTS) == []


@pytest.mark.azurite
def test_blobs_uploaded_to_azurite_make_one_run(
    tmp_path: Path, clock: FixedClock, azurite: tuple[str, str]
) -> None:
    from azure.storage.blob import ContainerClient

    from tests.conftest import AZURITE_API_VERSION

    connection, container = azurite
    client = ContainerClient.from_connection_string(
        connection, container, api_version=AZURITE_API_VERSION
    )
    source = (f'\n[source]\nbackend = "azure"\n[source.azure]\ncontainer = "{container}"\n'
              f'api_version = "{AZURITE_API_VERSION}"\n')  # fmt: skip
    scratch = load_settings(write_config(tmp_path / "scratch", days=10, rows=5), environ={})
    demo.generate(scratch, end=DEMO_END)
    for path in sorted(scratch.paths.landing.rglob("*.csv")):
        client.upload_blob(path.relative_to(scratch.paths.landing).as_posix(), path.read_bytes())
    clock.set(local(5, 0))
    settings = load_settings(write_config(tmp_path / "azure", ANY + source, days=10, rows=5),
                             environ={"AZURE_STORAGE_CONNECTION_STRING": connection})  # fmt: skip
    assert execute_run(settings, settings.jobs["quick"].select, job="quick").status == "success"
    scheduler = watching(settings, clock, clock.now())
    name, content = new_file(scratch, "UK")
    client.upload_blob(name, content.read_bytes())
    started = []
    for _ in range(6):  # Azurite's clock is not daybreak's: settled by two quiet looks
        started += step(scheduler, clock, 10 / 60)
    assert started == ["quick"]
    (run,) = arrival_runs(settings, "quick")
    assert [f["blob"] for f in run.detail["files"]] == [name]
    assert [step(scheduler, clock, 10 / 60) for _ in range(3)] == [[], [], []]


def test_fresh_but_behind_names_the_upstream_that_failed_or_has_newer_files(
    tmp_path: Path,
) -> None:
    from daybreak.assets import catalogue
    from daybreak.runner.why import explain
    from daybreak.views.status import asset_states
    from tests.conftest import ran_flow

    settings = ran_flow(tmp_path, days=5)
    history = History(settings.state)
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    assert explain(settings, history, assets, "qi_executive_daily_sales").state == "fresh"
    # The afternoon's ingestion alone (as ingest_azure_qi_job runs it) takes a bad UK file.
    bad = drop(settings, "UK", dt.datetime(2026, 4, 1, 5, 0, tzinfo=dt.UTC))
    bad.write_text(bad.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    assert execute_run(settings, ["uk_orders_azure"]).status == "failed"
    found = explain(settings, history, assets, "qi_executive_daily_sales")
    assert found.state == "behind"
    assert found.sentence.startswith("qi_executive_daily_sales is fresh, but behind: "
                                     "uk_orders_azure failed at ")  # fmt: skip
    assert f"(ingest_orders_{NEW_DAY:%Y%m%d}.csv quarantined: " in found.sentence
    assert "wrong delimiter" in found.sentence and "lacks it" in found.sentence
    states = asset_states(settings, history, assets)
    assert states["qi_executive_daily_sales"]["status"] == "behind"
    assert states["de_orders_azure"]["status"] == "success"  # not below the failure
    assert states["uk_products_sku"]["status"] == "success"
    # Fixed upstream and synced again: the new rows are in the lake, not yet in the mart.
    drop(settings, "UK", dt.datetime(2026, 4, 1, 5, 30, tzinfo=dt.UTC))
    assert execute_run(settings, ["uk_orders_azure"]).status == "success"
    found = explain(settings, history, assets, "qi_executive_daily_sales")
    assert found.state == "behind"
    assert "uk_orders_azure took new files since qi_executive_daily_sales was last built" in (
        found.sentence)  # fmt: skip
    # The flow builds it: current again.
    assert execute_run(settings, settings.jobs["flow"].select, job="flow").status == "success"
    assert explain(settings, history, assets, "qi_executive_daily_sales").state == "fresh"


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ('[jobs.j]\nselect = ["uk_orders_azure"]\nwait = "any"\n', "go with on_arrival"),
        ('[jobs.j]\nselect = ["uk_orders_azure"]\non_arrival = ["uk_orders_azure"]\n'
         'window = "05:00-07:00"\nlatest = "08:00"\n', "not inside window"),
        ('[jobs.j]\nselect = ["uk_orders_azure"]\non_arrival = ["uk_orders_azure"]\n'
         'window = "5-7"\n', "HH:MM-HH:MM"),
        ('[jobs.j]\nselect = ["uk_orders_azure"]\non_arrival = ["uk_orders_azure"]\n'
         'wait = "most"\n', "jobs.j.wait"),
        ('[arrival]\npoll_seconds = 0\n', "arrival.poll_seconds"),
    ],
)  # fmt: skip
def test_bad_arrival_settings_name_the_key(tmp_path: Path, jobs: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write_config(tmp_path, jobs), environ={})


def test_check_names_an_input_that_is_not_a_sync(tmp_path: Path) -> None:
    from daybreak.runner.check import check

    settings = load_settings(write_config(tmp_path, """
[jobs.j]
select = ["azure_ingestion_orders"]
on_arrival = ["uk_orders_azure", "build_daily_sales_models", "uk_new_names"]
"""), environ={})  # fmt: skip
    problems, _ = check(settings)
    said = [str(p) for p in problems]
    assert any("'build_daily_sales_models' is not an asset that syncs files" in p for p in said)
    assert any("'uk_new_names' is not run by the job" in p for p in said)
    assert not any("uk_orders_azure" in p.split("on_arrival: ")[-1][:20] for p in said)


def test_a_window_over_midnight_and_a_clock_change() -> None:
    from daybreak.config import JobConfig

    job = JobConfig(select=["a"], on_arrival=["a"], window="22:00-06:00", latest="05:00",
                    timezone="Europe/London")  # fmt: skip
    # 01:30 on the night the clocks go forward (29 March 2026): the window opened at 22:00.
    span = cycle(job, dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC))
    assert span.start.isoformat() == "2026-03-28T22:00:00+00:00"
    assert span.latest.isoformat() == "2026-03-29T05:00:00+01:00"
    assert span.end.isoformat() == "2026-03-29T06:00:00+01:00"


@pytest.mark.system_clock
def test_the_runner_builds_when_a_file_lands(tmp_path: Path) -> None:
    """The real runner process, the system clock: a dropped file is taken within poll + run."""
    config = write_config(tmp_path, """
[arrival]
poll_seconds = 1
settle_seconds = 1
debounce_seconds = 0

[jobs.quick]
select = ["azure_ingestion_orders"]
on_arrival = ["uk_orders_azure"]
wait = "any"
""", days=5, rows=5)  # fmt: skip
    settings = load_settings(config, environ={})
    demo.generate(settings)
    assert execute_run(settings, settings.jobs["quick"].select, job="quick").status == "success"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    log = tmp_path / "runner.out"
    with log.open("ab") as out:
        runner = subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), "--config", str(config), "--no-web"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        time.sleep(3)
        today = daybreak_clock.today()  # the runner's clock: the system's
        name, content = new_file(settings, "UK", today)
        target = settings.paths.landing / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(content, target)
        dropped = time.monotonic()
        deadline = dropped + 90
        while not [r for r in arrival_runs(settings, "quick") if r.status == "success"]:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        (run,) = arrival_runs(settings, "quick")
        assert [f["blob"] for f in run.detail["files"]] == [name]
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(60)
    assert runner.returncode == 0, log.read_text()


def test_an_arrival_run_killed_half_way_runs_again_after_a_restart(
    tmp_path: Path, clock: FixedClock
) -> None:
    from daybreak.runner.arrival import Trigger

    clock.set(local(5, 0))
    settings = project(tmp_path, ANY)
    history = History(settings.state)
    drop(settings, "UK", clock.now() - dt.timedelta(minutes=5))
    log = ArrivalLog(settings.state)
    name, _ = new_file(settings, "UK")
    (blob,) = LocalSource(settings.paths.landing).list(name)
    (arrival,) = log.observe("uk_orders_azure", [blob], clock.now(), dt.timedelta(seconds=30))
    # A runner took it and was killed before the run ended: its record says running, its pid
    # is gone.
    killed = history.start_run(
        ["uk_orders_azure"],
        job="quick",
        trigger="arrival",
        trigger_detail=Trigger("quick", "arrived", [arrival]).detail(),
    )
    assert log.cursor("quick")[0] == arrival.seq  # taken in the same transaction as the run
    with sqlite3.connect(settings.state.db) as con:
        con.execute("UPDATE runs SET pid = 2147483000 WHERE run_id = ?", (killed,))
    # The next runner: the run is interrupted and gives its file back.
    scheduler = watching(settings, clock, clock.now())
    assert history.run(killed).status == "interrupted"  # type: ignore[union-attr]
    assert step(scheduler, clock) == ["quick"]
    assert [step(scheduler, clock) for _ in range(3)] == [[], [], []]
    again = arrival_runs(settings, "quick")[0]
    assert again.status == "success" and [f["blob"] for f in again.detail["files"]] == [name]


def test_the_page_shows_the_arrivals_and_what_started_each_run(
    morning: Settings, clock: FixedClock
) -> None:
    from daybreak.views.status import status_data
    from daybreak.views.status_page import Page

    scheduler = watching(morning, clock, local(3, 0))
    for market in ("UK", "DE", "IT"):
        drop(morning, market, clock.now())
    for _ in range(3):
        step(scheduler, clock)
    data = status_data(morning)
    eta = data["arrivals"]["morning"]
    assert [i["state"] for i in eta["inputs"]] == ["landed", "landed", "landed", "missing"]
    assert "jobs" in data and "on arrival of all" in data["jobs"]["morning"]["schedule"]
    page = Page("Europe/London", 30).render(data, None, {})
    assert 'id="arrivals"' in page and 'id="eta-morning"' in page
    assert "jp_orders_azure" in page
    drop(morning, "JP", clock.now())
    for _ in range(4):
        step(scheduler, clock)
    data = status_data(morning)
    page = Page("Europe/London", 30).render(data, None, {})
    assert "trigger-detail" in page and "all arrived: ingest_orders_" in page
    assert data["recent_runs"][0]["trigger_detail"]["reason"] == "all arrived"
