"""[engine]: the same asset graph on a real Dask cluster (a scheduler and two workers, separate
processes on 127.0.0.1), its checks at a run's start, and its faults."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from daybreak.config import Settings, load_settings
from daybreak.ingest import demo
from daybreak.ingest.sync_state import SyncState
from daybreak.runner.engine import EngineUnavailable, open_engine
from daybreak.runner.execute import execute_run
from daybreak.runner.history import History
from daybreak.views.status import asset_page
from tests.conftest import DEMO_END, FLOW, ROOT, free_port, run_runner, wait_for, write_config

DASK = str(Path(sys.executable).with_name("dask"))


class Cluster:
    """`dask scheduler` and `dask worker` processes on loopback, as an operator starts them."""

    def __init__(self, workers: int = 2) -> None:
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        # A dead worker fails the task at once, so daybreak's retry policy decides (and counts).
        self.env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
                    "PYTHONPATH": str(ROOT)}  # fmt: skip
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port",
                                     str(self.port), "--no-dashboard")  # fmt: skip
        self.workers = [
            self._start("worker", self.address, "--nthreads", "1", "--no-nanny",
                        "--no-dashboard", "--name", f"w{i}", "--host", "127.0.0.1")
            for i in range(workers)
        ]  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([DASK, *args], cwd=ROOT, env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    running = Cluster()
    try:
        yield running
    finally:
        running.stop()


def _on(address: str) -> str:
    return f'\n[engine]\nkind = "dask"\naddress = "{address}"\n'


def _project(folder: Path, extra: str = "") -> Settings:
    return load_settings(write_config(folder, FLOW + extra, days=10, rows=5), environ={})


def _lake(settings: Settings) -> dict[str, str]:
    """Each lake file's rows (sync time aside, which is when, not what), as a digest."""
    found = {}
    with duckdb.connect() as con:
        for path in sorted(settings.paths.lake.rglob("*.parquet")):
            columns = [c[0] for c in con.execute(f"DESCRIBE FROM '{path}'").fetchall()]
            kept = ", ".join(f'"{c}"' for c in columns if c != "synced_at")
            rows = con.execute(f"SELECT {kept} FROM '{path}' ORDER BY ALL").fetchall()
            found[path.relative_to(settings.paths.lake).as_posix()] = hashlib.sha256(
                repr(rows).encode()).hexdigest()  # fmt: skip
    return found


def _marts(settings: Settings) -> dict[str, object]:
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        return {
            "summary": con.execute(
                "SELECT market, count(*), sum(orders), sum(net_sales_local), sum(net_sales_gbp) "
                "FROM int_orders_summary_daily GROUP BY ALL ORDER BY ALL").fetchall(),
            "executive": con.execute(
                "SELECT market, count(*), sum(net_sales_gbp), sum(budget_gbp) "
                "FROM qi_executive_daily_sales GROUP BY ALL ORDER BY ALL").fetchall(),
        }  # fmt: skip


def test_the_flow_on_a_dask_cluster_equals_the_local_engine(
    tmp_path: Path, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    local = _project(tmp_path / "local")
    demo.generate(local, end=DEMO_END)
    dask = _project(tmp_path / "dask", _on(cluster.address))
    shutil.copytree(local.paths.landing, dask.paths.landing)

    ran_local = execute_run(local, local.jobs["flow"].select, job="flow")
    ran_dask = execute_run(dask, dask.jobs["flow"].select, job="flow")

    assert ran_local.status == ran_dask.status == "success", ran_dask.error
    assert _lake(dask) == _lake(local) and len(_lake(local)) >= 4 * 10 + 2
    assert _marts(dask) == _marts(local)
    for asset in ("uk_orders_azure", "jp_orders_azure", "uk_products_sku"):  # recorded here
        assert SyncState(dask.state).synced_blobs(asset) == SyncState(local.state).synced_blobs(
            asset)  # fmt: skip
    rows = {r.name: getattr(r.value, "rows", None) for r in ran_local.results}
    assert {r.name: getattr(r.value, "rows", None) for r in ran_dask.results} == rows
    # Which worker ran what: the syncs on the cluster, both workers used, the warehouse here.
    attempts = {a["asset"]: a["worker"] for a in History(dask.state).attempts(ran_dask.run_id)}
    syncs = [a for a in attempts if a.endswith("_azure")]
    assert {attempts[a] for a in syncs} <= set(_workers(cluster)) and len(syncs) == 4
    assert attempts["stg_uk_orders"] is None and attempts["summary_export"] is None
    page = asset_page(dask, "uk_orders_azure")
    assert page["runs"][0]["worker"] == attempts["uk_orders_azure"]
    log = Path(ran_dask.log_path).read_text()
    assert f"[{attempts['uk_orders_azure']}] Synced 50 rows" in log  # the worker's log lines


def _workers(cluster: Cluster) -> list[str]:
    from distributed import Client

    with Client(cluster.address, timeout=30) as client:
        return list(client.scheduler_info()["workers"])


def test_an_unreachable_scheduler_fails_the_run_at_once_naming_it(
    tmp_path: Path, http_receiver: object
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    settings = _project(tmp_path, f'\n[engine]\nkind = "dask"\naddress = "{address}"\n'
                        "connect_timeout_seconds = 2\n")  # fmt: skip
    demo.generate(settings, end=DEMO_END)
    with pytest.raises(EngineUnavailable, match=f"scheduler at {address} did not answer"):
        open_engine(settings)
    url = http_receiver.url.replace("http://", "json://")  # type: ignore[attr-defined]
    proc = run_runner("run", "flow", config=settings.config_path,
                      env={"DAYBREAK_ALERT_URLS": f"{url}/alerts"})  # fmt: skip
    assert proc.returncode == 1
    assert address in proc.stderr
    [run] = History(settings.state).runs()
    assert run.status == "failed" and address in (run.error or "")
    assert History(settings.state).attempts(run.run_id) == []  # nothing ran, locally or not
    wait_for(lambda: bool(http_receiver), 30, "the alert")
    assert address in http_receiver[0][2]  # type: ignore[index]


def test_a_worker_with_other_code_or_without_the_paths_is_refused_by_name(
    tmp_path: Path, cluster: Cluster
) -> None:
    from daybreak.runner import engine

    settings = _project(tmp_path, _on(cluster.address))
    facts = engine.check_workers(settings, _client(cluster))
    assert len(facts) == 2
    original = engine.environment

    def other() -> dict[str, str]:
        return {**original(), "apache-hamilton": "0.0.1"}

    engine.environment = other  # the runner now differs from its workers
    try:
        with pytest.raises(EngineUnavailable, match=r"worker tcp://127\.0\.0\.1:\d+ runs "
                           r"apache-hamilton \d[\d.]*, the runner 0\.0\.1"):  # fmt: skip
            engine.check_workers(settings, _client(cluster))
    finally:
        engine.environment = original
    facts = _client(cluster).run(engine.worker_facts, {"lake": str(tmp_path / "nowhere")})
    assert all(f["missing"] == {"lake": str(tmp_path / "nowhere")} for f in facts.values())


def _client(cluster: Cluster) -> object:
    from distributed import Client

    return Client(cluster.address, timeout=30, set_as_default=False)


FAULTS = """
[graph]
dataflows = ["tests.flows.cluster_faults"]

[retries]
delay_scale = 0
"""


def test_a_worker_killed_mid_asset_is_retried_on_the_other_and_leaves_no_partial_file(
    tmp_path: Path,
) -> None:
    own = Cluster()
    try:
        settings = load_settings(write_config(tmp_path, FAULTS + _on(own.address)), environ={})
        marker = settings.paths.state / "slow.pid"
        target = settings.paths.lake / "slow" / "part.csv"
        killed: list[int] = []

        def kill_when_half_written() -> None:
            wait_for(marker.exists, 120, "the asset to be half way")
            pid = int(marker.read_text())
            assert not target.exists()  # half written is not visible under the real name
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        import threading

        killer = threading.Thread(target=kill_when_half_written, daemon=True)
        killer.start()
        outcome = execute_run(settings, ["slow_lake_file"])
        killer.join(10)
        assert outcome.status == "success", outcome.error
        attempts = History(settings.state).attempts(outcome.run_id)
        assert [a["status"] for a in attempts] == ["retrying", "success"]
        assert "KilledWorker" in (attempts[0]["error"] or "")
        assert attempts[0]["worker"] != attempts[1]["worker"]  # on the other worker
        assert outcome.results[0].value["pid"] != killed[0]
        lines = target.read_text().splitlines()
        assert len(lines) == 10_000 and len(set(lines)) == 10_000  # whole, nothing twice
        assert [p.name for p in target.parent.iterdir()] == ["part.csv"] or all(
            p.name.startswith(".") for p in target.parent.iterdir() if p != target)  # fmt: skip
    finally:
        own.stop()


def test_a_scheduler_lost_mid_run_fails_the_run_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    own = Cluster()
    address = own.address
    config = write_config(tmp_path, FAULTS + f'\n[engine]\nkind = "dask"\naddress = "{address}"'
                          "\nconnect_timeout_seconds = 5\n")  # fmt: skip
    settings = load_settings(config, environ={})
    marker = settings.paths.state / "slow.pid"
    try:
        import threading

        def lose_the_scheduler() -> None:
            wait_for(marker.exists, 120, "the asset to be half way")
            own.scheduler.send_signal(signal.SIGKILL)

        threading.Thread(target=lose_the_scheduler, daemon=True).start()
        started = time.monotonic()
        outcome = execute_run(settings, ["slow_lake_file"])
        assert outcome.status == "failed"
        assert address in (outcome.error or "") and time.monotonic() - started < 120
        run = History(settings.state).run(outcome.run_id)
        assert run is not None and run.status == "failed"
    finally:
        own.stop()
    again = Cluster()
    try:
        config.write_text(config.read_text().replace(address, again.address))
        settings = load_settings(config, environ={})
        assert execute_run(settings, ["slow_lake_file"]).status == "success"
    finally:
        again.stop()


def test_a_local_cluster_is_configuration_only_and_the_page_says_which_worker_ran_what(
    tmp_path: Path,
) -> None:
    extra = '\n[engine]\nkind = "local-cluster"\nworkers = 2\n'
    settings = _project(tmp_path, extra)
    demo.generate(settings, end=DEMO_END)
    proc = run_runner("run", "flow", config=settings.config_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [run] = History(settings.state).runs()
    workers = {a["asset"]: a["worker"] for a in History(settings.state).attempts(run.run_id)}
    assert all(workers[f"{m}_orders_azure"].startswith("tcp://127.0.0.1:")
               for m in ("uk", "de", "it", "jp"))  # fmt: skip
    assert workers["build_daily_sales_models"] is None  # the warehouse stays with the runner
    from daybreak.views.status import status_data
    from daybreak.views.status_page import StatusSite

    html = StatusSite(settings, status_data).asset_html("uk_orders_azure") or ""
    assert f"<td class=worker>{workers['uk_orders_azure']}</td>" in html
    shown = run_runner("logs", run.run_id, config=settings.config_path)
    assert f"on {workers['uk_orders_azure']}" in shown.stdout


def test_a_long_sync_fans_its_batches_out_over_the_cluster(
    tmp_path: Path, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    local = load_settings(write_config(tmp_path / "local", FLOW, days=140, rows=2), environ={})
    demo.generate(local, end=DEMO_END)
    dask = _project(tmp_path / "dask", _on(cluster.address))
    shutil.copytree(local.paths.landing, dask.paths.landing)

    assert execute_run(local, ["uk_orders_azure"]).status == "success"
    ran = execute_run(dask, ["uk_orders_azure"])

    assert ran.status == "success", ran.error
    assert ran.results[0].value.files_synced == 140
    log = Path(ran.log_path).read_text()
    assert "3 batches fanned out over" in log  # 140 files in batches of 64, each a task
    assert _lake(dask) == _lake(local)
    assert not list(dask.paths.lake.rglob(".batches/*/*"))  # no scratch left behind


def test_engine_settings_are_checked_where_they_are_written(tmp_path: Path) -> None:
    from daybreak.errors import ConfigError

    with pytest.raises(ConfigError, match=r'engine: .*kind = "dask" needs address'):
        load_settings(write_config(tmp_path, '\n[engine]\nkind = "dask"\n'), environ={})
    with pytest.raises(ConfigError, match="is not a scheduler address"):
        load_settings(write_config(tmp_path, _on("http://x:1/path")), environ={})
    with pytest.raises(ConfigError, match="kind"):
        load_settings(write_config(tmp_path, '\n[engine]\nkind = "ray"\n'), environ={})
    address = f"tcp://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, _on(address) + "connect_timeout_seconds = 1\n")
    proc = run_runner("check", config=config)
    assert proc.returncode == 2 and address in proc.stdout + proc.stderr


def test_secrets_stay_with_the_runner_and_workers_read_their_own(
    tmp_path: Path, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secret = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=s3cr3t-never-sent"
    settings = load_settings(write_config(tmp_path, FAULTS + _on(cluster.address)),
                             environ={"AZURE_STORAGE_CONNECTION_STRING": secret})  # fmt: skip
    assert settings.secrets.azure_connection_string is not None
    outcome = execute_run(settings, ["secrets_seen"])
    assert outcome.status == "success", outcome.error
    assert outcome.results[0].value == {"azure": False}  # the worker's environment has none
    assert "s3cr3t" not in Path(outcome.log_path).read_text()
