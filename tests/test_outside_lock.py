"""A program outside daybreak holding the warehouse makes a build wait, not fail; readers have a
copy of their own that never holds a build up."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner.history import History
from daybreak.warehouse.lock import WarehouseBusy, lock_conflict, wait_until_free
from tests.conftest import ROOT, run_runner, wait_for, write_config

pytestmark = pytest.mark.system_clock  # runner.py processes read the machine's clock

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM qi_executive_daily_sales").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(path: Path, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=out)
    wait_for(lambda: "holding" in log.read_text(), 30, "the outside session to open the file")
    return proc


@pytest.fixture
def built(tmp_path: Path) -> Settings:
    config = write_config(tmp_path, days=10, rows=20)
    settings = load_settings(config, environ={})
    demo.generate(settings)
    run_runner("materialize", "qi_executive_daily_sales", config=config, check=True)
    return settings


def rebuild(settings: Settings) -> list[str]:
    """`runner.py materialize qi_executive_daily_sales --full`: a build with work to do."""
    return [sys.executable, str(ROOT / "runner.py"), "materialize", "qi_executive_daily_sales",
            "--full", "--config", str(settings.config_path)]  # fmt: skip


def test_an_outside_read_only_session_makes_the_build_wait_then_succeed(
    built: Settings, tmp_path: Path
) -> None:
    holder = hold(built.paths.warehouse, 25, tmp_path / "holder.log")
    log = tmp_path / "build.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    try:
        with log.open("wb") as out:
            build = subprocess.Popen(
                rebuild(built), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )
        wait_for(lambda: "outside daybreak" in log.read_text(), 60, "the build to say it waits")
        said = log.read_text()
        assert f"pid {holder.pid}" in said and "close it there" in said
        status = json.loads(run_runner("status", "--json", config=built.config_path).stdout)
        held = status["warehouse_held_outside"]
        assert held["pid"] == holder.pid and "python" in held["program"]
        assert "qi_executive_daily_sales" in held["waiting"]
        assert build.poll() is None  # still waiting, not failed
        assert build.wait(timeout=180) == 0, log.read_text()
        assert holder.poll() is not None  # it went on only after the session closed
    finally:
        holder.kill()
    (run,) = History(built.state).runs(limit=1)
    assert run.status == "success"
    assert "the warehouse is free after" in log.read_text()
    after = json.loads(run_runner("status", "--json", config=built.config_path).stdout)
    assert after["warehouse_held_outside"] is None


def test_a_reader_on_the_published_copy_never_delays_a_build(
    built: Settings, tmp_path: Path
) -> None:
    reader = built.reader_copy
    assert reader is not None and reader.exists()
    before = reader.stat().st_ino
    holder = hold(reader, 120, tmp_path / "reader.log")
    try:
        done = run_runner("materialize", "qi_executive_daily_sales", "--full",
                          config=built.config_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "outside daybreak" not in done.stderr  # no wait at all
        assert holder.poll() is None  # the reader still has its (old) copy open
    finally:
        holder.kill()
    assert reader.stat().st_ino != before  # replaced by the new build's copy
    con = duckdb.connect(str(reader), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM qi_executive_daily_sales").fetchall()[0][0] > 0
    finally:
        con.close()


def test_the_wait_alerts_once_and_gives_up_naming_the_holder(
    built: Settings, tmp_path: Path
) -> None:
    holder = hold(built.paths.warehouse, 60, tmp_path / "holder.log")
    alerts: list[tuple[dict[str, object], dt.timedelta]] = []
    try:
        with pytest.raises(WarehouseBusy, match=rf"held by .*python.* \(pid {holder.pid}\)"):
            wait_until_free(
                built.paths.warehouse, built.state, "a test build",
                alert_after=dt.timedelta(seconds=1), timeout=dt.timedelta(seconds=4),
                on_long_wait=lambda h, w: alerts.append((h, w)),
            )  # fmt: skip
    finally:
        holder.kill()
    assert len(alerts) == 1 and alerts[0][0]["pid"] == holder.pid


def test_duckdbs_lock_messages_name_the_holder_on_linux_and_not_on_windows() -> None:
    linux = (
        'IO Error: Could not set lock on file "/d/daybreak.duckdb": Conflicting lock is held in '
        "/usr/bin/dbeaver (PID 4242). See also https://duckdb.org/docs/connect/concurrency"
    )
    assert lock_conflict(linux)["pid"] == 4242  # type: ignore[index]
    windows = (
        'IO Error: Cannot open file "C:\\d\\daybreak.duckdb": The process cannot access the '
        "file because it is being used by another process."
    )
    assert lock_conflict(windows) == {"pid": None, "program": None}
    assert lock_conflict("Catalog Error: Table with name x does not exist!") is None
