"""The runner on a desktop: Windows paths, service definitions, one scheduler per state folder,
its own log file, heartbeats, and a stop that is seen within a second."""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from daybreak.clock import FixedClock
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.runner import service
from daybreak.runner.heartbeat import Heartbeat
from daybreak.runner.scheduler import SLEEP_SLICE, Scheduler
from daybreak.state import StateLayout
from daybreak.venv import bootstrap_commands, venv_python
from tests.conftest import ROOT, Received, run_runner, wait_for, write_config

NS = {"t": service.TASK_XMLNS}


def make_dry(*args: str) -> str:
    """`make -n ARGS` as a user would type it (not as a sub-make of `make test`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return done.stdout


def test_make_on_windows_uses_the_scripts_folder_and_py() -> None:
    out = make_dry("OS=Windows_NT", "daily-sales", "test", "runner")
    assert ".venv\\Scripts\\python.exe runner.py run daily_sales_flow" in out
    assert ".venv\\Scripts\\nox.exe -s tests" in out
    assert ".venv/bin" not in out
    # A changed lock re-bootstraps through daybreak/venv.py with the Windows launcher.
    again = make_dry("OS=Windows_NT", "-W", "requirements.lock", "bootstrap")
    assert again.strip() == "py -3 daybreak/venv.py"
    # And on Linux, the same targets use .venv/bin.
    assert ".venv/bin/python runner.py run daily_sales_flow" in make_dry("daily-sales")


def test_bootstrap_commands_on_windows_and_linux(tmp_path: Path) -> None:
    windows = bootstrap_commands(tmp_path, "py", windows=True)
    assert windows[0] == ["py", "-m", "venv", str(tmp_path / ".venv")]
    scripts = tmp_path / ".venv" / "Scripts"
    assert windows[1][0] == str(scripts / "python.exe")
    assert windows[2][:3] == [str(scripts / "uv.exe"), "pip", "sync"]
    assert windows[3][-2:] == ["-e", str(tmp_path)]
    assert venv_python(tmp_path, windows=False) == tmp_path / ".venv" / "bin" / "python"
    linux = bootstrap_commands(tmp_path, sys.executable, windows=False)
    assert linux[2][:3] == [str(tmp_path / ".venv" / "bin" / "uv"), "pip", "sync"]


def target(tmp_path: Path) -> service.Target:
    return service.Target(
        python=Path("C:/daybreak/.venv/Scripts/python.exe"),
        runner=Path("C:/daybreak/runner.py"),
        config=Path("C:/daybreak/my config/daybreak.toml"),
        workdir=Path("C:/daybreak"),
        user="OFFICE\\analytics",
    )


def test_the_windows_task_starts_at_boot_restarts_and_has_no_time_limit(tmp_path: Path) -> None:
    task = ET.fromstring(service.windows_task_xml(target(tmp_path)).split("\n", 1)[1])
    settings = task.find("t:Settings", NS)
    assert settings is not None
    assert settings.findtext("t:StartWhenAvailable", namespaces=NS) == "true"
    assert settings.findtext("t:ExecutionTimeLimit", namespaces=NS) == "PT0S"
    assert settings.findtext("t:RestartOnFailure/t:Count", namespaces=NS) == "999"
    assert settings.findtext("t:RestartOnFailure/t:Interval", namespaces=NS) == "PT1M"
    assert settings.findtext("t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert settings.findtext("t:DisallowStartIfOnBatteries", namespaces=NS) == "false"
    assert task.find("t:Triggers/t:BootTrigger", NS) is not None
    assert task.find("t:Triggers/t:LogonTrigger", NS) is not None
    # "Run whether the user is logged on or not" is a password logon.
    assert task.findtext("t:Principals/t:Principal/t:LogonType", namespaces=NS) == "Password"
    assert task.findtext("t:Principals/t:Principal/t:UserId", namespaces=NS) == "OFFICE\\analytics"
    exec_ = task.find("t:Actions/t:Exec", NS)
    assert exec_ is not None
    assert exec_.findtext("t:Command", namespaces=NS) == "C:/daybreak/.venv/Scripts/python.exe"
    assert exec_.findtext("t:Arguments", namespaces=NS) == (
        'C:/daybreak/runner.py --config "C:/daybreak/my config/daybreak.toml"'
    )
    assert exec_.findtext("t:WorkingDirectory", namespaces=NS) == "C:/daybreak"


def test_the_systemd_unit_and_launchd_agent_keep_the_runner_up(tmp_path: Path) -> None:
    t = service.Target(Path("/opt/db/.venv/bin/python"), Path("/opt/db/runner.py"),
                       Path("/opt/db/daybreak.toml"), Path("/opt/db"))  # fmt: skip
    unit = configparser.ConfigParser(interpolation=None)
    unit.read_string(service.systemd_unit(t))
    assert unit["Service"]["ExecStart"] == (
        "/opt/db/.venv/bin/python /opt/db/runner.py --config /opt/db/daybreak.toml"
    )
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["WorkingDirectory"] == "/opt/db"
    assert unit["Install"]["WantedBy"] == "default.target"
    path = tmp_path / service.UNIT_NAME
    path.write_text(service.systemd_unit(t))
    if shutil.which("systemd-analyze"):  # where the machine has systemd, it must agree too
        done = subprocess.run(["systemd-analyze", "verify", "--user", str(path)],
                              capture_output=True, text=True)  # fmt: skip
        assert "Unknown" not in done.stderr and "Invalid" not in done.stderr, done.stderr
    agent = plistlib.loads(service.launchd_plist(t, tmp_path).encode())
    assert agent["ProgramArguments"] == [str(t.python), *t.arguments]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}


def test_service_install_dry_run_prints_both_definitions(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    linux = run_runner("service", "install", "--dry-run", config=config, check=True)
    assert "[Service]" in linux.stdout and "Restart=on-failure" in linux.stdout
    assert "would run: systemctl --user enable --now daybreak-runner.service" in linux.stdout
    assert "<StartWhenAvailable>true</StartWhenAvailable>" in linux.stdout  # and the desktop's
    windows = run_runner("service", "install", "--dry-run", "--platform", "windows",
                         config=config, check=True)  # fmt: skip
    assert "<StartWhenAvailable>true</StartWhenAvailable>" in windows.stdout
    assert "would run: schtasks /Create /TN daybreak-runner /XML" in windows.stdout
    refused = run_runner("service", "install", "--platform", "windows", config=config)
    assert refused.returncode == 2 and "only with --dry-run" in refused.stderr


def test_service_install_writes_the_unit_and_runs_the_commands(tmp_path: Path) -> None:
    t = service.Target(Path("/p/python"), Path("/p/runner.py"), Path("/p/d.toml"), Path("/p"))
    plan = service.plan(t, "linux", tmp_path, StateLayout(tmp_path / "state"))
    ran: list[list[str]] = []
    said = service.apply("install", plan, dry_run=False, run=lambda c: ran.append(c) or 0)
    assert plan.path == tmp_path / ".config" / "systemd" / "user" / service.UNIT_NAME
    assert plan.path.read_text() == service.systemd_unit(t)
    assert ran == plan.install and any("enable-linger" in line for line in said)
    service.apply("uninstall", plan, dry_run=False, run=lambda c: ran.append(c) or 0)
    assert not plan.path.exists() and ran[-1] == plan.uninstall[-1]


@pytest.fixture
def runner_config(tmp_path: Path) -> Path:
    config = write_config(tmp_path, days=2, rows=5)
    demo.generate(load_settings(config, environ={}))
    return config


def start(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), "--config", str(config), "--grace", "10"],
            stdout=out, stderr=subprocess.STDOUT, env={**base, **(env or {})}, cwd=ROOT,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.system_clock
def test_a_second_scheduler_is_refused_naming_the_first_and_logs_go_to_a_file(
    runner_config: Path, tmp_path: Path
) -> None:
    settings = load_settings(runner_config, environ={})
    first = start(runner_config, tmp_path / "first.log")
    try:
        wait_for(lambda: "scheduler started" in (tmp_path / "first.log").read_text(), 60,
                 "the first runner")  # fmt: skip
        second = run_runner("--no-web", config=runner_config)
        assert second.returncode == 2
        assert f"another runner is already running on {settings.paths.state}" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "started 20" in second.stderr
        status = json.loads(run_runner("status", "--json", config=runner_config).stdout)
        assert status["runner"]["alive"] is True and status["runner"]["pid"] == first.pid
    finally:
        stop(first)
    assert first.returncode == 0
    own_log = settings.state.runner_log.read_text()
    assert f"runner pid {first.pid} started" in own_log and "scheduler stopped" in own_log
    assert "check: the config, jobs, dbt project and exports are in order" in own_log
    status = json.loads(run_runner("status", "--json", config=runner_config).stdout)
    assert status["runner"]["alive"] is False and status["runner"]["last_seen"]
    # Once the first is gone, a new one may start.
    again = start(runner_config, tmp_path / "again.log")
    try:
        wait_for(lambda: "scheduler started" in (tmp_path / "again.log").read_text(), 60,
                 "the next runner")  # fmt: skip
    finally:
        stop(again)
    assert again.returncode == 0


@pytest.mark.system_clock
def test_the_runner_pings_the_heartbeat_and_status_shows_it_alive(
    runner_config: Path, tmp_path: Path, http_receiver: Received
) -> None:
    with runner_config.open("a") as fh:
        fh.write("\n[heartbeat]\ninterval_minutes = 0.02\n")  # every 1.2 s
    url = f"{http_receiver.url}/ping/abc-token-123456"
    proc = start(runner_config, tmp_path / "runner.log", {"DAYBREAK_HEARTBEAT_URL": url})
    try:
        wait_for(lambda: len(http_receiver) >= 3, 60, "three heartbeat pings")
        status = json.loads(run_runner("status", "--json", config=runner_config).stdout)
        assert status["runner"]["alive"] is True and status["runner"]["last_heartbeat"]
    finally:
        stop(proc)
    assert {(method, path) for method, path, _ in http_receiver} == {
        ("POST", "/ping/abc-token-123456")
    }
    assert "abc-token-123456" not in (tmp_path / "runner.log").read_text()  # a secret


def test_a_jobs_start_and_failure_are_signalled(
    tmp_path: Path, http_receiver: Received, clock: FixedClock
) -> None:
    config = write_config(tmp_path, """
[jobs.flow]
select = ["uk_orders_azure"]
cron = "45 15 * * *"
timezone = "Europe/London"
""")  # fmt: skip
    settings = load_settings(config, environ={})
    clock.set(dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC))

    def failing(*args: Any, **kwargs: Any) -> Any:
        return type("Outcome", (), {"run_id": "r1", "status": "failed", "error": "boom"})()

    beat = Heartbeat(http_receiver.url + "/check", dt.timedelta(minutes=5))
    scheduler = Scheduler(settings, run_job=failing, heartbeat=beat)
    scheduler.start()
    clock.set(dt.datetime(2026, 11, 24, 15, 45, tzinfo=dt.UTC))
    (started,) = scheduler.due(clock.now())
    assert started.thread is not None
    started.thread.join(10)
    assert [(p, body) for _, p, body in http_receiver] == [
        ("/check/start", "flow started"), ("/check/fail", "flow failed: boom")]  # fmt: skip
    assert beat.beat_if_due(clock.now()) is True and http_receiver[-1][1] == "/check"
    assert beat.beat_if_due(clock.now() + dt.timedelta(minutes=1)) is False  # not due yet


def test_a_broken_heartbeat_never_stops_anything(caplog: pytest.LogCaptureFixture) -> None:
    beat = Heartbeat("http://127.0.0.1:9/nobody", dt.timedelta(minutes=1))
    assert beat.ping() is False and beat.ping() is False
    assert sum("heartbeat ping failed" in r.message for r in caplog.records) == 1  # said once


def test_the_scheduler_sleeps_in_slices_so_a_stop_is_seen_within_a_second(
    settings: Settings,
) -> None:
    scheduler = Scheduler(settings, run_job=lambda *a, **k: None)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(min(seconds, 0.01))

    scheduler._sleep(0.05, sleep)  # short sleeps are one slice
    scheduler._sleep(3.5, sleep)  # long ones are cut into slices of at most a second
    assert max(slept) <= SLEEP_SLICE and len(slept) >= 4
    threading.Timer(0.2, scheduler.stop.set).start()
    began = time.monotonic()
    scheduler._sleep(600)
    assert time.monotonic() - began < 5  # it saw the stop within a slice, not after 600 s
