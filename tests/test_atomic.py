"""A sync killed mid-write leaves no partial Parquet file visible, and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from daybreak.config import load_settings
from daybreak.files import TMP_SUFFIX
from daybreak.ingest import demo
from tests.conftest import ROOT, run_runner, write_config

DAYS, ROWS = 12, 60_000


@pytest.mark.system_clock  # compares with a runner.py process
def test_sync_killed_mid_write_leaves_old_or_new_files_only(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=DAYS, rows=ROWS)
    settings = load_settings(config, environ={})
    demo.generate(settings, days=DAYS, rows_per_day=ROWS)
    lake_uk = settings.paths.lake / "orders" / "market=UK"

    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "runner.py"),
            "materialize",
            "uk_orders_azure",
            "--config",
            str(config),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill the writer the moment a temporary file exists, i.e. in the middle of a write: a
    # file's temporary beside its target, or a batch being written (a backfill converts many
    # files per statement into lake/.batches, then renames each into place).
    batches = settings.paths.lake / ".batches"
    deadline = time.monotonic() + 120
    seen_tmp = False
    while time.monotonic() < deadline and proc.poll() is None:
        in_lake = any(lake_uk.rglob(f"*{TMP_SUFFIX}")) if lake_uk.exists() else False
        if in_lake or (batches.exists() and any(batches.rglob("*.parquet"))):
            seen_tmp = True
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert seen_tmp, "the sync finished before a temporary file was seen; raise ROWS"

    published = list(lake_uk.rglob("*.parquet"))
    assert len(published) < DAYS  # it really was interrupted
    for path in published:  # every visible file is complete and readable
        assert duckdb.sql(f"SELECT count(*) FROM '{path}'").fetchall()[0][0] == ROWS

    rerun = run_runner("materialize", "uk_orders_azure", config=config)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(lake_uk.rglob(f"*{TMP_SUFFIX}"))  # leftovers cleaned
    assert not batches.exists() or not any(batches.rglob("*.parquet"))
    total = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake_uk}/**/*.parquet')").fetchall()
    assert total[0][0] == DAYS * ROWS
