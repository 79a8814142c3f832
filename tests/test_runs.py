"""Retries and run history on a real Hamilton driver over small test assets."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from hamilton import ad_hoc_utils, driver

from daybreak.assets import catalogue
from daybreak.assets.tags import RetryPolicy
from daybreak.config import RetriesConfig, RetryOverride
from daybreak.errors import TransientError, is_transient
from daybreak.runner.history import History
from daybreak.runner.materialize import RunContext, materialize, run_inputs
from daybreak.state import StateLayout
from tests.conftest import run_runner, write_config

pytestmark = pytest.mark.dates

SOURCE = '''
from hamilton.function_modifiers import tag
from daybreak.errors import TransientError
from daybreak.assets.tags import retry_policy

CALLS = {"flaky": 0, "bad": 0, "throttled": 0}

@retry_policy(max_retries=2, delay=60, backoff="exponential")
@tag(group="test")
def throttled() -> int:
    """Throttled once, with the server asking for 5 s."""
    CALLS["throttled"] += 1
    if CALLS["throttled"] == 1:
        raise TransientError("429 Too Many Requests", retry_after=5.0)
    return 1

@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="test")
def flaky() -> dict:
    """Fails twice with a transient error, then succeeds."""
    CALLS["flaky"] += 1
    if CALLS["flaky"] <= 2:
        raise TransientError(f"Graph answered 503 (call {CALLS['flaky']})")
    return {"rows": 3}

@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="test")
def bad_input() -> dict:
    """Fails on bad input: never retried."""
    CALLS["bad"] += 1
    raise ValueError("sheet 'Budget 2026'!F14: budget is not a number")

@tag(group="test")
def downstream(flaky: dict) -> int:
    """Uses flaky's value."""
    return flaky["rows"] * 2
'''


def assets_module() -> types.ModuleType:
    return ad_hoc_utils.module_from_source(SOURCE, "daybreak_test_assets")


def run(module: types.ModuleType, names: list[str], ctx: RunContext) -> dict[str, object]:
    dr = driver.Builder().with_modules(module).build()
    assets = catalogue.catalogue(dr)
    return {r.name: r for r in materialize(dr, assets, names, run_inputs(), ctx)}


def test_policy_waits_follow_the_original_schedule() -> None:
    policy = RetryPolicy(max_retries=5, delay=60, backoff="exponential")
    assert [policy.wait(n) for n in range(1, 6)] == [60, 120, 240, 480, 960]
    assert [RetryPolicy(3, 10, "linear").wait(n) for n in (1, 2, 3)] == [10, 20, 30]
    assert RetryPolicy(3, 10, "constant", max_delay=5).wait(3) == 5
    jittered = RetryPolicy(1, 10, "constant", jitter=0.5).wait(1, rand=lambda: 1.0)
    assert jittered == 15


def test_transient_errors_are_told_from_bad_input() -> None:
    assert is_transient(TransientError("503"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    wrapped = RuntimeError("while syncing")
    wrapped.__cause__ = ConnectionError("reset")
    assert is_transient(wrapped)
    assert not is_transient(ValueError("bad cell"))
    assert not is_transient(FileNotFoundError("no such file"))


def test_transient_failures_are_retried_and_every_attempt_recorded(tmp_path: Path) -> None:
    module = assets_module()
    history = History(StateLayout(tmp_path / "state"))
    run_id = history.start_run(["flaky", "downstream"])
    waits: list[float] = []

    seen: list[list[dict[str, object]]] = []

    class Stop:  # records the waits instead of sleeping them, and what status shows meanwhile
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            seen.append(history.retrying())
            return False

    ctx = RunContext(history, run_id, RetriesConfig(delay_scale=0.001), Stop())  # type: ignore[arg-type]
    results = run(module, ["flaky", "downstream"], ctx)
    # While it waited, the history said: attempt n of 6 failed, with the error and the next try.
    assert [(r["asset"], r["attempt"], r["max_attempts"]) for (r,) in seen] == [
        ("flaky", 1, 6), ("flaky", 2, 6)]  # fmt: skip
    assert "503 (call 1)" in str(seen[0][0]["error"]) and seen[0][0]["next_try_at"]
    assert results["flaky"].status == "success" and results["flaky"].attempts == 3
    assert results["downstream"].value == 6
    assert module.CALLS["flaky"] == 3  # downstream did not make flaky run again
    assert waits == [0.06, 0.12]  # 60 s and 120 s, scaled by the config
    attempts = [(a["asset"], a["attempt"], a["status"]) for a in history.attempts(run_id)]
    assert attempts == [
        ("flaky", 1, "retrying"), ("flaky", 2, "retrying"), ("flaky", 3, "success"),
        ("downstream", 1, "success"),
    ]  # fmt: skip
    assert "503 (call 1)" in history.attempts(run_id)[0]["error"]


def test_a_server_that_says_when_to_come_back_is_not_asked_sooner() -> None:
    module = assets_module()
    waits: list[float] = []

    class Stop:
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    ctx = RunContext(retries=RetriesConfig(delay_scale=0.001), stop=Stop())  # type: ignore[arg-type]
    assert run(module, ["throttled"], ctx)["throttled"].status == "success"
    assert waits == [5.0]  # Retry-After, not the policy's 0.06


def test_bad_input_is_not_retried(tmp_path: Path) -> None:
    module = assets_module()
    history = History(StateLayout(tmp_path / "state"))
    run_id = history.start_run(["bad_input"])
    ctx = RunContext(history, run_id, RetriesConfig(delay_scale=0))
    results = run(module, ["bad_input"], ctx)
    assert results["bad_input"].status == "failed" and module.CALLS["bad"] == 1
    (attempt,) = history.attempts(run_id)
    assert attempt["status"] == "failed" and "F14" in attempt["error"]
    assert "ValueError" in attempt["traceback"]


def test_config_overrides_the_declared_policy(tmp_path: Path) -> None:
    module = assets_module()
    retries = RetriesConfig(delay_scale=0, assets={"flaky": RetryOverride(max_retries=1)})
    results = run(module, ["flaky"], RunContext(retries=retries))
    assert results["flaky"].status == "failed" and results["flaky"].attempts == 2


def test_runs_are_recorded_with_logs_and_shown_by_history_and_logs(tmp_path: Path) -> None:
    config = write_config(tmp_path, days=2, rows=5)
    ok = run_runner("materialize", "uk_products_sku", config=config, check=True)
    run_id = ok.stdout.strip().splitlines()[-1].split()[1].rstrip(":")
    failed_config = tmp_path / "landing" / "UK" / "raw_data" / "reference" / "products_sku"
    (failed_config / "products_sku.csv").write_text("sku;name\n1;2\n")
    bad = run_runner("run", "daily_sales_flow", config=config)
    assert bad.returncode == 1

    listed = [line for line in run_runner("history", config=config, check=True).stdout.splitlines()
              if not line.startswith(" ")]  # a run's line, not the lines under it  # fmt: skip
    assert listed[0].split()[1:4] == ["daily_sales_flow", "manual", "failed"]
    assert run_id in listed[1] and "success" in listed[1]
    shown = run_runner("logs", run_id, config=config, check=True).stdout
    assert f"run {run_id}: success (manual)" in shown
    assert "uk_products_sku" in shown and "Synced 240 rows" in shown
    status = run_runner("status", "--json", config=config, check=True).stdout
    assert '"last_status": "failed"' in status and '"uk_products_sku"' in status
    unknown = run_runner("logs", "nope", config=config)
    assert unknown.returncode == 2 and "unknown run 'nope'" in unknown.stderr


def test_history_is_pruned_after_the_retention(tmp_path: Path) -> None:
    history = History(StateLayout(tmp_path))
    old = history.start_run(["a"])
    history.finish_run(old, "success")
    Path(history.run(old).log_path).write_text("old log")  # type: ignore[union-attr]
    with history._connect() as con:
        con.execute(
            "UPDATE runs SET started_at = '2020-01-01T00:00:00+00:00' WHERE run_id = ?", (old,)
        )
    new = history.start_run(["a"])
    assert history.prune(365) == 1
    assert [r.run_id for r in history.runs()] == [new]
    assert not (tmp_path / "logs" / f"{old}.log").exists()


PARALLEL = """
import time
from hamilton.function_modifiers import tag

SPANS = {}

def _span(name: str) -> str:
    start = time.monotonic()
    time.sleep(0.4)
    SPANS[name] = (start, time.monotonic())
    return name

@tag(group="test", heavy="true")
def first() -> str:
    \"\"\"Independent of second.\"\"\"
    return _span("first")

@tag(group="test", heavy="true")
def second() -> str:
    \"\"\"Independent of first.\"\"\"
    return _span("second")
"""


def test_independent_assets_run_in_parallel_unless_a_tag_limit_says_otherwise(
    tmp_path: Path,
) -> None:
    def overlap(ctx: RunContext) -> bool:
        module = ad_hoc_utils.module_from_source(PARALLEL, "daybreak_parallel_assets")
        results = run(module, ["first", "second"], ctx)
        assert all(r.status == "success" for r in results.values())
        (a0, a1), (b0, b1) = module.SPANS["first"], module.SPANS["second"]
        return a0 < b1 and b0 < a1

    assert overlap(RunContext())  # two threads: side by side
    limited = RunContext(concurrency={"heavy": 1}, layout=StateLayout(tmp_path))
    assert not overlap(limited)  # [concurrency] heavy = 1: one after the other


def test_many_threads_open_and_write_a_fresh_state_database_at_once(tmp_path: Path) -> None:
    import threading

    from daybreak.ingest.sync_state import SyncedBlob, SyncState

    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            history, store = History(StateLayout(tmp_path)), SyncState(StateLayout(tmp_path))
            for n in range(20):
                run_id = history.start_run([f"a{i}"])
                history.finish_attempt(run_id, f"a{i}", 1, "success", seconds=0.0)
                history.finish_run(run_id, "success")
                store.record_synced(f"a{i}", SyncedBlob(f"b{n}", "e", 1, 1, "p"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(History(StateLayout(tmp_path)).runs(limit=1000)) == 160
