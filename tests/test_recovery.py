"""Recovery from what a crash leaves: a reused pid, a warehouse or state file that no longer
opens, a full disk, a lake file deleted by hand, a lock record whose owner died. Real files,
real processes, a real tmpfs for the full disk."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from daybreak import processes
from daybreak.config import Settings, load_settings
from daybreak.files import TMP_SUFFIX
from daybreak.ingest import demo
from daybreak.runner import recovery
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.state import StateDb
from daybreak.views import cli
from daybreak.warehouse import lock
from daybreak.warehouse.backup import damaged
from tests.conftest import DEMO_END, ran_flow, write_config


def alerts_to(monkeypatch: pytest.MonkeyPatch, receiver: list) -> None:
    monkeypatch.setenv("DAYBREAK_ALERT_URLS", receiver.url.replace("http://", "json://"))  # type: ignore[attr-defined]


def test_a_run_whose_pid_now_belongs_to_another_program_is_interrupted(
    settings: Settings, http_receiver: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts_to(monkeypatch, http_receiver)
    history = History(settings.state)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = history.start_run(["uk_orders_azure"], job="daily_sales_flow")
        alive = history.start_run(["uk_orders_azure"], job="daily_sales_flow")
        with sqlite3.connect(settings.state.db) as con:
            # The pid is alive, but the process behind it is not the one that recorded the run
            # (as after a reboot: another program got the pid).
            con.execute("UPDATE runs SET pid = ?, process_key = ? WHERE run_id = ?",
                        (other.pid, "another-boot:12345", reused))  # fmt: skip
            con.execute("UPDATE runs SET pid = ?, process_key = ? WHERE run_id = ?",
                        (other.pid, processes.key(other.pid), alive))  # fmt: skip
            con.execute("INSERT INTO asset_attempts (run_id, asset, attempt, status, started_at) "
                        "VALUES (?, 'uk_orders_azure', 1, 'running', '2026-04-01T06:00:00+00:00')",
                        (reused,))  # fmt: skip
        assert cli.main(["history", "--config", str(settings.config_path)]) == 0  # reads: reaps
        assert history.run(reused).status == "interrupted"  # type: ignore[union-attr]
        assert history.run(alive).status == "running"  # type: ignore[union-attr]
        assert history.attempts(reused)[0]["status"] == "interrupted"
        recovery.reap(settings)  # again: nothing new, and no second alert
        said = [b for _, _, b in http_receiver if "interrupted" in b]
        assert len(said) == 1 and reused in said[0]
    finally:
        other.kill()
        other.wait()


def test_a_run_from_before_start_times_were_kept_is_judged_by_its_pid(settings: Settings) -> None:
    history = History(settings.state)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = history.start_run(["uk_orders_azure"])
    with sqlite3.connect(settings.state.db) as con:
        con.execute("UPDATE runs SET pid = ?, process_key = NULL WHERE run_id = ?",
                    (gone.pid, run))  # fmt: skip
    assert history.mark_interrupted() == [run]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return ran_flow(tmp_path_factory.mktemp("flow"), days=6)


def summary(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT market, order_date, orders, order_lines, units, gross_sales_local, "
            "returns_local, net_sales_local, net_sales_gbp, new_customers "
            "FROM int_orders_summary_daily ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def copy_project(flow: Settings, folder: Path) -> Settings:
    """A copy of the built project (landing, lake, warehouse, state) to break on purpose."""
    import shutil

    shutil.copytree(flow.config_path.parent, folder)
    return load_settings(folder / "daybreak.toml", environ={})


@pytest.mark.parametrize("with_backup", [True, False])
def test_a_truncated_warehouse_is_kept_aside_and_restored_or_rebuilt(
    flow: Settings, tmp_path: Path, with_backup: bool, http_receiver: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    alerts_to(monkeypatch, http_receiver)
    settings = copy_project(flow, tmp_path / "project")
    expected = summary(settings)
    if with_backup:
        assert execute_run(settings, ["warehouse_backup"], full_refresh=True).status == "success"
    warehouse = settings.paths.warehouse
    data = warehouse.read_bytes()
    warehouse.write_bytes(data[: len(data) // 3])  # cut short, as a crash on a copy would
    outcome = execute_run(settings, settings.jobs["flow"].select, job="flow")
    assert outcome.status == "success", outcome.error
    assert summary(settings) == expected  # the same numbers as before the damage
    (kept,) = [p for p in settings.state.broken.iterdir() if p.name.endswith("-warehouse")]
    assert (kept / warehouse.name).stat().st_size == len(data) // 3  # the broken file, kept
    note = json.loads(settings.state.warehouse_recovered.read_text(encoding="utf-8"))
    assert (note["restored_from"] is not None) == with_backup
    plan = {s["asset"]: s for s in json.loads(History(settings.state).run(outcome.run_id).plan)}  # type: ignore[union-attr, arg-type]
    assert any(
        "the warehouse did not open" in r for r in plan["int_orders_summary_daily"]["reasons"]
    )
    said = [b for _, _, b in http_receiver if "recovered from a damaged file" in b]
    assert len(said) == 1 and "did not open" in said[0]
    # The next run: nothing to recover, nothing to rebuild for it.
    again = execute_run(settings, settings.jobs["flow"].select, job="flow")
    assert again.status == "success"
    assert len([b for _, _, b in http_receiver if "recovered from a damaged file" in b]) == 1


def test_a_corrupt_state_database_is_kept_aside_and_a_new_one_started(
    flow: Settings, tmp_path: Path, http_receiver: list, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    alerts_to(monkeypatch, http_receiver)
    settings = copy_project(flow, tmp_path / "project")
    db = settings.state.db
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    db.write_bytes(data[:4096] + os.urandom(len(data) - 4096))  # a torn write past the header
    with caplog.at_level(logging.ERROR):
        assert cli.main(["status", "--config", str(settings.config_path)]) == 0
    assert "could not be used" in caplog.text and "kept aside" in caplog.text
    (kept,) = [p for p in settings.state.broken.iterdir() if p.name.endswith("-state-db")]
    assert "run history" in (kept / "RECOVERED.txt").read_text(encoding="utf-8")
    assert [b for _, _, b in http_receiver if "recovered from a damaged file" in b]
    # The next run re-syncs every file (the sync state went with the old database), and the
    # warehouse stays right: nothing duplicated.
    expected = summary(settings)
    outcome = execute_run(settings, settings.jobs["flow"].select, job="flow")
    assert outcome.status == "success", outcome.error
    assert summary(settings) == expected
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_runner_checks_the_state_database_at_start(settings: Settings) -> None:
    db = StateDb(settings.state)
    assert db.check() is None  # sound: nothing done
    with sqlite3.connect(settings.state.db) as con:  # some history, then on disk
        con.executemany("INSERT INTO alert_incidents VALUES (?, '2026-04-01', NULL)",
                        [(f"incident-{i}",) for i in range(3000)])  # fmt: skip
        con.commit()
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with settings.state.db.open("r+b") as fh:  # pages 3 to 6 torn: the header still reads
        fh.seek(2 * 4096)
        fh.write(os.urandom(4 * 4096))
    kept = db.check()
    assert kept is not None and (kept / "daybreak.sqlite").exists()
    assert db.check() is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 128 KiB filesystem (tmpfs), as a full disk; CI runs as root, which may mount."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(where)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        raise RuntimeError(f"the full-disk test mounts a small tmpfs (root only): {mounted.stderr}")
    try:
        yield where
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_names_the_path_and_the_free_space_and_the_next_run_succeeds(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_config(tmp_path / "p", days=8, rows=600)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('lake = "lake"', f'lake = "{small_disk.as_posix()}"', 1),
                      encoding="utf-8")  # the lake on the small disk  # fmt: skip
    settings = load_settings(config, environ={})
    assert settings.paths.lake == small_disk
    demo.generate(settings, end=DEMO_END)
    outcome = execute_run(settings, ["azure_ingestion_orders"])
    assert outcome.status == "failed"
    errors = [r.error or "" for r in outcome.results if r.status == "failed"]
    assert any("disk full writing" in e and "MB free on that disk" in e for e in errors), errors
    assert any(str(small_disk) in e for e in errors), errors
    assert not [p for p in small_disk.rglob("*") if p.name.endswith(TMP_SUFFIX)]
    hidden = lambda p: any(x.startswith(".") for x in p.relative_to(small_disk).parts)  # noqa: E731
    published = [p for p in small_disk.rglob("*.parquet") if not hidden(p)]
    con = duckdb.connect()
    for path in published:  # whatever is in the lake is whole
        assert con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone() == (600,)
    con.close()
    # Space freed (the disk made larger): the next ordinary run takes every file, once.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = execute_run(settings, ["azure_ingestion_orders"])
    assert again.status == "success", again.error
    with sqlite3.connect(settings.state.db) as con:
        synced = con.execute("SELECT count(*) FROM synced_blobs").fetchone()[0]
    assert synced == 4 * 8
    assert len(list(small_disk.rglob("*.parquet"))) == 4 * 8


def test_a_lake_file_deleted_by_hand_is_synced_again_and_named_in_the_plan(
    flow: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = copy_project(flow, tmp_path / "project")
    victim = next((settings.paths.lake / "orders" / "market=DE").rglob("*.parquet"))
    victim.unlink()
    assert cli.main(["plan", "flow", "--config", str(settings.config_path)]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("de_orders_azure ")]
    assert f"missing from the lake: DE/raw_data/DWH/Oracle/ingest_orders/{victim.stem[-8:-4]}/" \
        f"ingest_orders_{victim.stem[-8:]}.csv" in line, line  # fmt: skip
    assert line.split()[1] == "run", line
    assert execute_run(settings, settings.jobs["flow"].select, job="flow").status == "success"
    assert victim.exists()


def test_a_lock_record_left_by_a_dead_holder_is_ignored_and_its_takeover_said(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    settings.state.locks.mkdir(parents=True, exist_ok=True)
    record = {"pid": gone.pid, "process_key": "another-boot:1", "host": socket.gethostname(),
              "what": "build_daily_sales_models", "since": "2026-04-01T06:00:00+00:00"}  # fmt: skip
    (settings.state.locks / "warehouse.holder.json").write_text(json.dumps(record))
    assert lock.holder(settings.state) is None  # status does not claim a dead holder
    with caplog.at_level(logging.WARNING), lock.warehouse_lock(settings.state, "test") as held:
        assert held
    assert "took over the warehouse lock left by build_daily_sales_models" in caplog.text


def test_a_sound_warehouse_with_free_blocks_is_not_taken_for_a_damaged_one(tmp_path: Path) -> None:
    """DuckDB cuts free blocks off the end of its file, while total_blocks still counts them: a
    sound file is then shorter than total_blocks take (the check once moved such a file aside),
    and a file cut by a single block is still caught."""
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE keep AS SELECT range AS id, 'x' || range AS name FROM range(200000)")
    con.execute("CHECKPOINT")
    con.execute("CREATE TABLE big AS SELECT range AS id, random() AS v FROM range(2000000)")
    con.execute("CHECKPOINT")
    con.execute("DROP TABLE big")
    con.execute("CHECKPOINT")  # the file is cut to the blocks in use ...
    con.close()
    con = duckdb.connect(str(path))  # ... and opened again, the dropped ones count as free
    size, total, free = con.execute(
        "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()"
    ).fetchone()
    con.close()
    assert free > 0 and path.stat().st_size < 3 * 4096 + size * total  # the old check's trap
    assert damaged(path) is None
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - size])  # one block short
    assert damaged(path) is not None  # cut short, or a block it needs cannot be read


def test_the_warehouse_check_opens_the_file_only_when_it_changed(
    flow: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the warehouse to check it took 3 s at 7 GB before every writer of every run; it
    is skipped while the file is as daybreak last found or left it, never once it changed."""
    from daybreak.warehouse import backup
    from daybreak.warehouse.dbt_project import DbtProject

    settings = copy_project(flow, tmp_path / "project")
    warehouse = settings.paths.warehouse
    opened: list[Path] = []
    real = backup.damaged
    monkeypatch.setattr(backup, "damaged", lambda path: opened.append(path) or real(path))
    assert backup.recover_warehouse(settings) is None
    assert len(opened) == 1  # a copied project: another file than the one checked before
    assert backup.recover_warehouse(settings) is None
    assert len(opened) == 1  # unchanged: not opened again
    DbtProject(settings).build(["int_orders_summary_daily"])
    assert backup.recover_warehouse(settings) is None
    assert len(opened) == 1  # as daybreak's own build left it
    st = warehouse.stat()
    os.utime(warehouse, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # written by someone else
    assert backup.recover_warehouse(settings) is None
    assert len(opened) == 2
    data = warehouse.read_bytes()
    warehouse.write_bytes(data[: len(data) // 3])
    assert backup.recover_warehouse(settings) is not None  # cut short: found
    assert len(opened) == 3
