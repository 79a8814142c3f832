"""Shared fixtures: daybreak's clock set for every test, a throw-away daybreak.toml per test,
demo data, and a real Azurite.

Time: every test runs with daybreak.clock starting from TEST_START (a FixedClock that ticks on from
there), so what a test compares against never depends on the day the suite runs. A test that
compares with a separate process (a `runner.py` subprocess reads the machine's clock) is marked
`system_clock` and keeps the machine's clock; `nox -s dates` runs the tests marked `dates` with
the whole process tree's clock moved months ahead and across the 2027 clock changes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daybreak import clock as daybreak_clock
from daybreak.clock import Clock, FixedClock, SystemClock
from daybreak.config import Settings, load_settings
from daybreak.ingest import demo

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
# The demo data ends here in tests, so windows and dates are the same whatever today is.
DEMO_END = dt.date(2026, 3, 31)
RUN_DATE = DEMO_END + dt.timedelta(days=1)
# Where daybreak's clock stands when the session starts: the morning after the demo data ends.
TEST_START = dt.datetime(2026, 4, 1, 6, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session", autouse=True)
def session_clock() -> Iterator[FixedClock]:
    """daybreak's clock for the whole session: TEST_START, then ticking with real time, so what
    a module-wide fixture stamps comes before what the tests after it stamp."""
    with daybreak_clock.using(FixedClock(TEST_START, tick=True)) as fixed:
        yield fixed  # type: ignore[misc]


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest, session_clock: FixedClock) -> Iterator[Clock]:
    """daybreak's one clock for this test, ticking on from the session's (`clock.set(...)` moves
    it for this test only), or the machine's for a test marked `system_clock`."""
    chosen: Clock = (
        SystemClock()
        if request.node.get_closest_marker("system_clock")
        else FixedClock(session_clock.now(), tick=True)
    )
    with daybreak_clock.using(chosen):
        yield chosen


MARKETS = """
[markets.UK]
currency = "GBP"
timezone = "Europe/London"

[markets.DE]
currency = "EUR"
timezone = "Europe/Berlin"

[markets.IT]
currency = "EUR"
timezone = "Europe/Rome"

[markets.JP]
currency = "JPY"
timezone = "Asia/Tokyo"
"""


# A job of the daily flow with one export: what the plan, backfill and engine tests run.
FLOW = """
[jobs.flow]
select = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion",
          "build_daily_sales_models", "export"]

[[exports]]
asset = "summary_export"
name = "summary"
tables = ["int_orders_summary_daily"]
upstream = ["build_daily_sales_models"]
"""


# A job of the syncs and the dbt models only (no exports): what a cancel or a backfill test runs.
MODELS = """
[jobs.models]
select = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion",
          "build_daily_sales_models"]
"""


def ran_flow(folder: Path, days: int) -> Settings:
    """A project with a demo landing zone of `days` days on which the FLOW job has run once."""
    from daybreak.runner.execute import execute_run

    settings = load_settings(write_config(folder, FLOW, days=days, rows=5), environ={})
    demo.generate(settings, end=DEMO_END)
    assert execute_run(settings, settings.jobs["flow"].select, job="flow").status == "success"
    return settings


def write_config(folder: Path, extra: str = "", *, days: int = 40, rows: int = 25) -> Path:
    """A daybreak.toml in `folder` with every path relative to it and a small demo; a runner's
    status page takes any free port."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "daybreak.toml"
    path.write_text(
        textwrap.dedent(f"""
        [paths]
        landing = "landing"
        lake = "lake"
        warehouse = "warehouse/daybreak.duckdb"
        exports = "exports"
        state = "state"

        [web]
        port = 0

        [demo]
        seed = 7
        days = {days}
        rows_per_day = {rows}

        [jobs.daily_sales_flow]
        select = ["azure_ingestion_orders", "azure_ingestion_reference", "budget_ingestion"]
        """)
        + MARKETS
        + textwrap.dedent(extra),
        encoding="utf-8",
    )
    return path


def shipped_exports() -> str:
    """The [[exports]] of the shipped daybreak.toml, for a config whose paths are a test's."""
    shipped = tomllib.loads((ROOT / "daybreak.toml").read_text(encoding="utf-8"))
    blocks = []
    for export in shipped["exports"]:
        lines = [f"{k} = {json.dumps(v)}" for k, v in export.items()]
        blocks.append("[[exports]]\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def run_runner(
    *args: str, config: Path, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python runner.py ARGS --config CONFIG` in a real subprocess, as a user would run it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAYBREAK_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=ROOT,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def settings(config_path: Path) -> Settings:
    return load_settings(config_path, environ={})


@pytest.fixture
def demo_settings(settings: Settings) -> Settings:
    """Settings whose landing folder holds the demo data (40 days x 25 rows per market)."""
    demo.generate(settings, end=DEMO_END)
    return settings


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite blob service on 127.0.0.1 for the whole session; yields its blob URL."""
    if not AZURITE.exists():
        raise RuntimeError(
            f"{AZURITE} is missing: run `make test` (or `npm ci`) to install Azurite"
        )
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                str(AZURITE),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--disableTelemetry",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(r"listens on (http://127\.0\.0\.1:\d+)", log.read_text())
            if match:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited: {log.read_text()}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"Azurite did not start in 60 s: {log.read_text()}")
        yield match.group(1) + "/devstoreaccount1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Azurite 3.35 rejects the SDK's default (newest) API version; daybreak's config can pin one.
AZURITE_API_VERSION = "2025-11-05"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def azure_connection(blob_endpoint: str) -> str:
    """A connection string for the development account at `blob_endpoint` (Azurite, or a test
    server that is not Azure at all)."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={DEV_ACCOUNT_KEY};BlobEndpoint={blob_endpoint};"
    )


@pytest.fixture
def azurite(azurite_endpoint: str) -> Iterator[tuple[str, str]]:
    """(connection string, container name): a fresh, empty container in Azurite."""
    from azure.storage.blob import BlobServiceClient

    connection = azure_connection(azurite_endpoint)
    container = f"qi-{uuid.uuid4().hex[:12]}"
    service = BlobServiceClient.from_connection_string(connection, api_version=AZURITE_API_VERSION)
    service.create_container(container)
    yield connection, container
    service.delete_container(container)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.25)


class Received(list):  # type: ignore[type-arg]
    """Requests a local HTTP receiver got: (method, path, body) tuples; `url` to send them."""

    url: str = ""


@pytest.fixture
def http_receiver() -> Iterator[Received]:
    """A local HTTP server that answers 200 to anything and records what it got (alerts,
    heartbeat pings)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got = Received()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            got.append((self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield got
    server.shutdown()
    server.server_close()
