"""Backfill: a range of days re-synced and rebuilt in chunks, one history entry, resumable."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from daybreak.config import Settings, load_settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.ingest import datasets, demo
from daybreak.ingest.sync_state import SyncState
from daybreak.runner.backfill import backfill, chunk_days
from daybreak.runner.history import History
from daybreak.views.status import status_data
from daybreak.views.status_page import StatusSite
from tests.conftest import DEMO_END, FLOW, ROOT, ran_flow, run_runner, wait_for, write_config


@pytest.fixture
def ran(tmp_path: Path) -> Settings:
    return ran_flow(tmp_path, days=20)


def _summary(settings: Settings) -> dict[tuple[str, dt.date], tuple[object, ...]]:
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT market, order_date, orders, net_sales_local, last_synced_at "
            "FROM int_orders_summary_daily"
        ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_chunks_cover_the_range_once_in_order() -> None:
    start, end = dt.date(2026, 2, 26), dt.date(2026, 3, 10)
    chunks = chunk_days(start, end, 4)
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(b - a == dt.timedelta(days=3) for a, b in chunks[:-1])
    assert all(n[0] - p[1] == dt.timedelta(days=1) for p, n in itertools.pairwise(chunks))
    assert chunk_days(start, start, 7) == [(start, start)]


def test_a_backfill_resyncs_its_days_and_rebuilds_only_their_market_days(
    ran: Settings, clock: object
) -> None:
    before = _summary(ran)
    sync = SyncState(ran.state)
    known = sync.synced_blobs("uk_orders_azure")
    start, end = DEMO_END - dt.timedelta(days=9), DEMO_END - dt.timedelta(days=2)
    lake_mtimes = {p: p.stat().st_mtime_ns for p in ran.paths.lake.rglob("*.parquet")}
    clock.advance(dt.timedelta(minutes=5))  # type: ignore[attr-defined]

    outcome = backfill(ran, "flow", start, end, chunk_size=3)

    assert outcome.status == "success", outcome.error
    assert not outcome.resumed
    p = outcome.progress
    assert (p.days_total, p.days_done, p.chunks_total, p.chunks_done) == (8, 8, 3, 3)
    assert p.rows == 8 * 4 * 5  # days x markets x rows per day, re-synced
    # One entry in the history; its chunks are runs of their own under it.
    history = History(ran.state)
    top = history.runs(limit=10)
    assert top[0].run_id == outcome.run_id and top[0].trigger == "backfill"
    assert all(r.part_of is None for r in top)
    parts = history.runs(part_of=outcome.run_id)
    assert len(parts) == 4  # three chunks and what publishes after them
    # Only the files of those days were converted again.
    changed = {p for p, t in lake_mtimes.items() if p.stat().st_mtime_ns != t}
    days_changed = {dt.date.fromisoformat(f"{p.stem[-8:-4]}-{p.stem[-4:-2]}-{p.stem[-2:]}")
                    for p in changed}  # fmt: skip
    assert days_changed == {start + dt.timedelta(days=i) for i in range(8)}
    assert len(changed) == 8 * 4
    assert sync.synced_blobs("uk_orders_azure").keys() == known.keys()
    # Only those market-days were recomputed downstream, to the same numbers.
    after = _summary(ran)
    assert after.keys() == before.keys()
    for key, row in after.items():
        recomputed = row[2] != before[key][2]
        assert recomputed == (start <= key[1] <= end), key
        assert row[:2] == before[key][:2], key
    # What publishes ran once, after the last chunk.
    exported = [a for r in parts for a in history.attempts(r.run_id)
                if a["asset"] == "summary_export"]  # fmt: skip
    assert [a["status"] for a in exported] == ["success"]


def test_a_failed_chunk_stops_the_backfill_and_the_same_command_resumes_from_it(
    ran: Settings,
) -> None:
    bad_day = DEMO_END - dt.timedelta(days=4)
    blob = ran.paths.landing / (
        f"{datasets.orders('IT').prefix}{bad_day:%Y}/ingest_orders_{bad_day:%Y%m%d}.csv"
    )
    good = blob.read_text()
    blob.write_text(good.replace("\n", "\nnot,a,row\n", 1))
    start, end = DEMO_END - dt.timedelta(days=8), DEMO_END - dt.timedelta(days=1)

    first = backfill(ran, "flow", start, end, chunk_size=2)
    assert first.status == "failed"
    assert first.progress.chunks_done == 2 and first.progress.failed_chunk == (
        f"{bad_day}..{bad_day + dt.timedelta(days=1)}")  # fmt: skip
    assert "it_orders_azure" in (first.error or "")
    history = History(ran.state)
    done_runs = [c["run_id"] for c in history.chunks(first.run_id)[:2]]
    entry = status_data(ran)
    [shown] = [b for b in entry["backfills"] if b["backfill_id"] == first.run_id]
    assert shown["status"] == "failed" and shown["days_done"] == 4
    page = StatusSite(ran, status_data).html()
    assert f"--start {start} --end {end}</code>" in page and "<progress" in page

    blob.write_text(good)
    again = backfill(ran, "flow", start, end, chunk_size=2)
    assert again.status == "success" and again.resumed and again.run_id == first.run_id
    chunks = history.chunks(first.run_id)
    assert [c["run_id"] for c in chunks[:2]] == done_runs  # the done chunks were not run again
    assert [c["status"] for c in chunks] == ["success"] * 4
    assert [r.run_id for r in history.runs(limit=50)].count(first.run_id) == 1


def test_bad_arguments_are_refused_before_anything_is_recorded(ran: Settings) -> None:
    count = len(History(ran.state).runs(limit=100))
    with pytest.raises(UnknownNameError, match="unknown job 'nope'"):
        backfill(ran, "nope", DEMO_END, DEMO_END)
    with pytest.raises(UsageError, match="is after"):
        backfill(ran, "flow", DEMO_END, DEMO_END - dt.timedelta(days=1))
    with pytest.raises(UsageError, match="at most"):
        backfill(ran, "flow", dt.date(2000, 1, 1), DEMO_END)
    with pytest.raises(UsageError, match="chunk-days"):
        backfill(ran, "flow", DEMO_END, DEMO_END, chunk_size=0)
    assert len(History(ran.state).runs(limit=100)) == count
    proc = run_runner("backfill", "flow", "--start", "2026-02-30", "--end", "2026-03-01",
                      config=ran.config_path)  # fmt: skip
    assert proc.returncode == 2 and "'2026-02-30' is not a date" in proc.stderr


@pytest.mark.system_clock
def test_a_backfill_killed_mid_way_resumes_in_the_same_entry(tmp_path: Path) -> None:
    config = write_config(tmp_path, FLOW, days=12, rows=5)
    settings = load_settings(config, environ={})
    demo.generate(settings, end=DEMO_END)
    start, end = DEMO_END - dt.timedelta(days=9), DEMO_END
    args = ["backfill", "flow", "--start", str(start), "--end", str(end), "--chunk-days", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), *args, "--config", str(config)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    history = History(settings.state)

    def first_chunk_done() -> bool:
        runs = history.backfills(limit=1)
        return bool(runs) and history.chunks(runs[0].run_id)[0]["status"] == "success"

    try:
        wait_for(first_chunk_done, 240, "the backfill's first chunk")
        proc.send_signal(signal.SIGKILL)  # no goodbye: as a power cut or Task Manager would
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    [killed] = history.backfills(limit=5)
    kept = history.chunks(killed.run_id)
    assert kept[-1]["status"] == "pending"  # it was killed before the end

    resumed = run_runner(*args, "--json", config=config)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    said = json.loads(resumed.stdout)
    assert said["resumed"] and said["run_id"] == killed.run_id and said["status"] == "success"
    assert said["progress"]["days_done"] == 10 and said["progress"]["chunks_done"] == 5
    chunks = history.chunks(killed.run_id)
    assert chunks[0]["run_id"] == kept[0]["run_id"]  # not run again
    assert [b.run_id for b in history.backfills(limit=5)] == [killed.run_id]
    interrupted = [r for r in history.runs(part_of=killed.run_id, limit=50)
                   if r.status == "interrupted"]  # fmt: skip
    assert len(interrupted) <= 1  # the chunk the kill cut off, recorded as such


def test_a_backfill_waits_for_the_warehouse_while_another_run_writes_it(ran: Settings) -> None:
    from daybreak.warehouse import lock

    outcome: list[object] = []
    day = DEMO_END - dt.timedelta(days=1)
    with lock.warehouse_lock(ran.state, "a scheduled run's dbt build"):
        worker = threading.Thread(
            target=lambda: outcome.append(backfill(ran, "flow", day, day)), daemon=True
        )
        worker.start()
        wait_for(lambda: any("stg_uk_orders" in str(w.get("what"))
                             for w in lock.waiting(ran.state)),
                 120, "the backfill's models to wait for the warehouse")  # fmt: skip
        assert not outcome  # it cannot build while the other writer holds the warehouse
    worker.join(180)
    assert outcome and outcome[0].status == "success"  # type: ignore[attr-defined]


def test_live_progress_shows_dbt_nodes_as_they_finish_and_files_of_a_sync(ran: Settings) -> None:
    import io

    from rich.console import Console

    from daybreak import progress
    from daybreak.views import live

    view = live.LiveProgress()
    events: list[progress.Event] = []
    start = DEMO_END - dt.timedelta(days=2)
    with progress.listening(view), progress.listening(events.append):
        assert backfill(ran, "flow", start, DEMO_END).status == "success"
    kinds = [e.kind for e in events]
    first_node = kinds.index("node")
    model_done = next(
        i
        for i, e in enumerate(events)
        if e.kind == "asset" and e.name == "stg_uk_orders" and e.status != "running"
    )
    assert first_node < model_done  # dbt's callbacks, during the build, not after it
    assert {e.name for e in events if e.kind == "node"} >= {
        "stg_uk_orders",
        "int_orders_summary_daily",
    }
    files = [e for e in events if e.kind == "files" and e.name == "uk_orders_azure"]
    assert files[-1].done == files[-1].total == 3
    assert events[-1].kind == "backfill" and events[-1].done == events[-1].total == 3
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(view)
    text = out.getvalue()
    assert "uk_orders_azure" in text and "dbt:" in text and "3/3 days" in text
    with live.shown(Console(file=io.StringIO(), force_terminal=False)) as shown:
        assert shown is None  # not a terminal: the plain log lines say it


def test_live_progress_draws_any_text_as_text() -> None:
    import io

    from rich.console import Console

    from daybreak import progress
    from daybreak.views import live

    view = live.LiveProgress()
    view(progress.Event("asset", "uk_orders_azure", "failed", detail="bad [/b] markup [red]"))
    view(progress.Event("node", "stg_uk_orders", "runtime error", detail="model"))
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=160).print(view)
    assert "bad [/b] markup [red]" in out.getvalue()
    assert "stg_uk_orders runtime error" in out.getvalue()
