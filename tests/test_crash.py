"""Crash injection: a real `runner.py` killed with SIGKILL (its whole process tree) at seeded
random moments of a full run and of a backfill, each followed by the next ordinary command, then
the invariants: it exits 0, nothing is left `running`, the lake holds every landing file once and
whole, the warehouse equals a recompute from the landing CSVs, the state database passes
SQLite's integrity check.

`DAYBREAK_CRASH_KILLS` (default 20: 16 in runs, 4 in a backfill) and `DAYBREAK_CRASH_SEED` set
the points; `nox -s crash -- --kills 200` is the long version. The seed is printed.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from daybreak import clock
from daybreak.config import Settings, load_settings
from daybreak.files import TMP_SUFFIX
from daybreak.ingest import datasets, demo
from daybreak.runner.history import History
from tests.conftest import FLOW, ROOT, write_config
from tests.test_dbt import hand_computed_day

pytestmark = pytest.mark.system_clock  # runner processes read the machine's clock

# The conftest flow with the warehouse backup: every stage a kill can land in.
JOB = FLOW.replace('"export"]', '"export", "warehouse_maintenance"]')
DAYS = 8
KILLS = int(os.environ.get("DAYBREAK_CRASH_KILLS", "20"))
SEED = int(os.environ.get("DAYBREAK_CRASH_SEED", "20261204"))


def runner(*args: str, config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), *args, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        start_new_session=True,  # its own process group: the kill takes the whole tree
    )  # fmt: skip


def finish(*args: str, config: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = runner(*args, config=config)
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out, time.monotonic() - started


def kill_at(seconds: float, *args: str, config: Path) -> None:
    proc = runner(*args, config=config)
    try:
        proc.wait(timeout=seconds)  # it may end before the moment comes: then nothing to kill
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def land_uk_day(settings: Settings, day: dt.date) -> None:
    """The UK order file of `day` lands (made by the demo generator aside, then copied in)."""
    scratch = settings.paths.state / "new-day"
    demo.generate(settings, days=1, end=day, root=scratch)
    name = f"{datasets.orders('UK').prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"
    (settings.paths.landing / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scratch / name, settings.paths.landing / name)


def csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def check_invariants(settings: Settings, what: str) -> None:
    with sqlite3.connect(settings.state.db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", what
        left = con.execute(
            "SELECT (SELECT count(*) FROM runs WHERE status = 'running') + (SELECT count(*) "
            "FROM asset_attempts WHERE status IN ('running', 'retrying')) + (SELECT count(*) "
            "FROM backfill_chunks WHERE status = 'running')"
        ).fetchone()[0]
    assert left == 0, f"{what}: something is still 'running'"
    # The lake: every landing order file once, whole; nothing half written left visible.
    lake = settings.paths.lake
    assert not [p for p in lake.rglob("*") if p.name.endswith(TMP_SUFFIX)], what
    con = duckdb.connect()
    try:
        for market in settings.markets:
            landing = sorted((settings.paths.landing / datasets.orders(market).prefix).rglob(
                "*.csv"))  # fmt: skip
            parquet = sorted((lake / "orders" / f"market={market}").rglob("*.parquet"))
            assert [p.stem for p in parquet] == [p.stem for p in landing], f"{what}: {market}"
            for csv_file, pq in zip(landing, parquet, strict=True):
                rows = con.execute(f"SELECT count(*) FROM read_parquet('{pq}')").fetchone()
                assert rows is not None and rows[0] == csv_rows(csv_file), f"{what}: {pq}"
    finally:
        con.close()
    # The warehouse: a recompute from the landing CSVs (Python's csv module, no DuckDB, no dbt).
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        end = clock.today() - dt.timedelta(days=1)
        for market, day in (("UK", end), ("JP", end - dt.timedelta(days=DAYS - 1)),
                            ("DE", end - dt.timedelta(days=3))):  # fmt: skip
            expected = hand_computed_day(settings, market, day)
            row = con.execute(
                "SELECT orders, order_lines, units, gross_sales_local, returns_local, "
                "net_sales_local, new_customers FROM int_orders_summary_daily "
                f"WHERE market = '{market}' AND order_date = DATE '{day}'"
            ).fetchone()
            assert row == (
                expected["orders"], expected["order_lines"], expected["units"],
                expected["gross"], expected["returns"], expected["net"],
                expected["new_customers"],
            ), f"{what}: {market} {day}"  # fmt: skip
        duplicates = con.execute(
            "SELECT count(*) FROM (SELECT market, order_date FROM int_orders_summary_daily "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        assert duplicates == (0,), what
    finally:
        con.close()
    # The read-only database: the old one or the new one, every view reading a whole snapshot.
    reader = settings.reader_copy
    if reader is not None:  # a killed publish's leftovers are swept by the next one
        stray = [p.name for p in reader.parent.rglob("*") if TMP_SUFFIX in p.name]
        assert not stray, f"{what}: {stray}"
    if reader is not None and reader.exists():
        con = duckdb.connect(str(reader), read_only=True)
        try:
            for name, rows in con.execute("SELECT model, rows FROM daybreak_refreshed").fetchall():
                assert con.execute(f'SELECT count(*) FROM "{name}"').fetchone() == (rows,), what
        finally:
            con.close()
    with sqlite3.connect(settings.state.db) as con:  # the command given after the kill
        last = con.execute("SELECT status FROM runs WHERE part_of IS NULL ORDER BY rowid DESC "
                           "LIMIT 1").fetchone()  # fmt: skip
    assert last == ("success",), what


@pytest.mark.timeout(180 + 40 * KILLS)  # each kill: a cut run, then a whole one (about 10 s)
def test_sigkill_at_random_moments_then_the_next_command_just_works(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"crash injection: seed {SEED}, {KILLS} kills (DAYBREAK_CRASH_SEED to replay)")
    config = write_config(tmp_path, JOB, days=DAYS, rows=30)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    code, out, seconds = finish("run", "flow", "--full", config=config)
    assert code == 0, out
    check_invariants(settings, "after the first run")
    in_backfill = max(KILLS // 5, 1) if KILLS > 1 else 0
    interrupted = 0
    for kill in range(KILLS - in_backfill):
        moment = rng.uniform(0.5, seconds * 1.1)
        kill_at(moment, "run", "flow", "--full", config=config)
        code, out, _ = finish("run", "flow", config=config)
        assert code == 0, f"kill {kill} at {moment:.2f} s (seed {SEED}):\n{out[-3000:]}"
        check_invariants(settings, f"kill {kill} at {moment:.2f} s (seed {SEED})")
        interrupted += sum(1 for r in History(settings.state).runs(limit=3)
                           if r.status == "interrupted")  # fmt: skip
    # A backfill killed at random points resumes with the same command and completes.
    end = clock.today() - dt.timedelta(days=1)
    backfill = ("backfill", "flow", "--start", str(end - dt.timedelta(days=DAYS - 1)),
                "--end", str(end), "--chunk-days", "2")  # fmt: skip
    code, out, seconds = finish(*backfill, config=config)
    assert code == 0, out
    for kill in range(in_backfill):
        moment = rng.uniform(0.5, seconds)
        # A range of its own each time: a backfill to kill, resumed by the same command.
        first = str(end - dt.timedelta(days=rng.randrange(DAYS)))
        backfill_range = (*backfill[:3], first, *backfill[4:])
        kill_at(moment, *backfill_range, config=config)
        code, out, _ = finish(*backfill_range, config=config)
        assert code == 0, f"backfill kill {kill} at {moment:.2f} s (seed {SEED}):\n{out[-3000:]}"
        check_invariants(settings, f"backfill kill {kill} at {moment:.2f} s (seed {SEED})")
    if KILLS >= 10:  # some kills come before a run is recorded; of ten, some land inside one
        assert interrupted > 0  # and those runs say so


def test_the_runner_killed_mid_run_recovers_and_catches_up_when_started_again(
    tmp_path: Path,
) -> None:
    """The long-lived runner (an arrival job, polled every second) killed with its whole tree
    while a run goes on; started again, it ends that run `interrupted`, runs its files again,
    and the lake and the warehouse are right."""
    config = write_config(tmp_path, JOB.replace(
        '"warehouse_maintenance"]', '"warehouse_maintenance"]\non_arrival = ["uk_orders_azure"]\n'
        'wait = "any"') + "\n[arrival]\npoll_seconds = 1\nsettle_seconds = 1\n"
        "debounce_seconds = 0\n", days=DAYS, rows=30)  # fmt: skip
    settings = load_settings(config, environ={})
    demo.generate(settings, end=clock.today() - dt.timedelta(days=2))
    code, out, _ = finish("run", "flow", config=config)
    assert code == 0, out
    history = History(settings.state)
    scheduler = runner("--no-web", config=config)
    try:
        time.sleep(3)
        land_uk_day(settings, clock.today() - dt.timedelta(days=1))
        deadline = time.monotonic() + 120
        while not [r for r in history.runs(job="flow", limit=5) if r.trigger == "arrival"]:
            assert time.monotonic() < deadline, "no arrival run started"
            time.sleep(0.1)
        time.sleep(1.5)  # inside the run: the syncs or dbt
    finally:
        os.killpg(scheduler.pid, signal.SIGKILL)
        scheduler.wait(60)
    (killed,) = [r for r in history.runs(job="flow", limit=5) if r.trigger == "arrival"]
    again = runner("--no-web", config=config)
    try:
        deadline = time.monotonic() + 180
        while not [r for r in history.runs(job="flow", limit=10)
                   if r.trigger == "arrival" and r.status == "success"]:  # fmt: skip
            assert time.monotonic() < deadline, "the killed run's files did not run again"
            time.sleep(0.2)
    finally:
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    # The kill landed inside it (dbt alone takes longer than the 1.5 s it was given).
    assert history.run(killed.run_id).status == "interrupted"  # type: ignore[union-attr]
    assert "took over the scheduler lock" in out
    check_invariants(settings, "after the runner was killed and started again")
