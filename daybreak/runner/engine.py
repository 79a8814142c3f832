"""Where a run's Python assets execute: in the runner (`local`) or on a Dask cluster.

`[engine] kind = "local"` (the default) runs them on the runner's own threads. `"dask"` submits
each one to the Dask scheduler at `address`; `"local-cluster"` starts a `distributed.LocalCluster`
of `workers` processes on loopback (once per runner process) and does the same, for trying it.

What stays in the runner whatever the engine: scheduling, the history, retries, alerts, and
every asset that writes or reads the DuckDB warehouse (dbt models, exports, the backup: tagged
`dbt_duckdb`), because the runner holds the warehouse's writer lock and DuckDB allows one writer
process. What goes to the cluster: the syncs and the budget download, one Dask task per asset
attempt. The worker builds the same Hamilton graph from the same Settings and executes the asset
there, so nothing in dataflows/ knows which engine ran it; it sends back the asset's value, the
worker's address and the log lines the asset wrote (the runner writes them into the run's log).

We submit one task per asset through distributed's futures API rather than Hamilton's
`h_dask.DaskGraphAdapter`, which would make every Hamilton node a task of its own (the plumbing
nodes that hold a source client or the sync state included) and tell us nothing about which
worker ran an asset; `h_dask.DaskExecutor` is for graphs with Parallelizable nodes, which ours
has none of.

At the start of a run on a cluster every worker is asked for its environment and its view of the
paths: a worker with another daybreak (a digest of its code), Hamilton, DuckDB or Python version,
or one that cannot see the lake, the state folder or the local landing zone, fails the run with
a message naming the worker and the difference. A scheduler that does not answer fails the run at
once, naming the address: there is no silent fallback to local.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import platform
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from hamilton import driver

from daybreak.assets.catalogue import Asset
from daybreak.assets.dbt_models import DBT_BUILD_KIND
from daybreak.config import Secrets, Settings, read_dotenv
from daybreak.errors import ConfigError
from daybreak.ingest import sync
from daybreak.ingest.sync_state import SyncState, SyncStateCopy
from daybreak.runner.concurrency import WAREHOUSE_TAG  # what touches the warehouse stays here

log = logging.getLogger(__name__)


class EngineUnavailable(Exception):
    """The cluster cannot take the run: unreachable, lost, no workers, or workers that differ."""


@dataclass
class Executed:
    value: Any
    worker: str | None = None  # the Dask worker that ran it; None in the runner
    log_lines: list[tuple[int, str]] = field(default_factory=list)  # (level, message)
    fanned_out: dict[str, int] = field(default_factory=dict)  # worker -> pieces it converted
    error: BaseException | None = None  # the asset failed there: raised here, after its lines
    state: SyncStateCopy | None = None  # a sync's changes to the sync state, for the runner


class Engine(Protocol):
    kind: str

    def execute(
        self, dr: driver.Driver, asset: Asset, inputs: dict[str, Any], overrides: dict[str, Any]
    ) -> Executed: ...

    def close(self) -> None: ...


def _here(
    dr: driver.Driver, asset: Asset, inputs: dict[str, Any], overrides: dict[str, Any]
) -> Executed:
    return Executed(dr.execute([asset.name], inputs=inputs, overrides=overrides)[asset.name])


class LocalEngine:
    """Python assets on the runner's threads."""

    kind = "local"

    def execute(
        self, dr: driver.Driver, asset: Asset, inputs: dict[str, Any], overrides: dict[str, Any]
    ) -> Executed:
        return _here(dr, asset, inputs, overrides)

    def close(self) -> None:
        pass


class DaskEngine:
    """Python assets as tasks on a Dask cluster; the warehouse's assets in the runner."""

    def __init__(self, settings: Settings, client: Any, *, owned: bool = True) -> None:
        self.kind: str = settings.engine.kind
        self.settings = settings
        self.client = client
        self.owned = owned  # a per-run client is closed with the run; a shared one is not

    def execute(
        self, dr: driver.Driver, asset: Asset, inputs: dict[str, Any], overrides: dict[str, Any]
    ) -> Executed:
        if asset.tags.get(WAREHOUSE_TAG) == "true" or asset.tags.get("kind") == DBT_BUILD_KIND:
            return _here(dr, asset, inputs, overrides)
        # Secrets do not travel: each worker reads its own environment (or .env) for them.
        settings = dataclasses.replace(self.settings, secrets=Secrets())
        inputs = {**inputs, "settings": settings}
        with contextlib.ExitStack() as stack:
            copy = None
            if _syncs(dr, asset.name):  # the sync state stays here; the worker gets a copy
                state = SyncState(self.settings.state)
                stack.enter_context(state.lock(asset.name))
                copy = SyncStateCopy(asset.name, state.synced_blobs(asset.name))
                overrides = {**overrides, "sync_state": copy}
            future = self.client.submit(
                run_on_worker, settings, asset.name, inputs, overrides,
                key=f"{asset.name}-{uuid.uuid4().hex[:8]}", pure=False,
            )  # fmt: skip
            # What a lost scheduler raises besides a cancelled future (imported here: importing
            # distributed costs a quarter of a second, which the local engine never pays).
            from distributed.comm.core import CommClosedError

            try:
                executed: Executed = future.result()
            except (concurrent.futures.CancelledError, asyncio.CancelledError,
                    CommClosedError) as exc:  # fmt: skip
                where = self.settings.engine.address or "the local cluster"
                raise EngineUnavailable(
                    f"the Dask scheduler at {where} was lost while {asset.name} ran "
                    f"({type(exc).__name__}: {exc}); the next run connects again"
                ) from None
            for level, line in executed.log_lines:
                log.log(level, "[%s] %s", executed.worker, line)
            if copy is not None and executed.state is not None:
                executed.state.apply_to(state)  # what it synced, even if it then failed
        if executed.error is not None:
            raise executed.error
        return executed

    def close(self) -> None:
        if self.owned:
            self.client.close()


# -- on the worker -----------------------------------------------------------------------------

_drivers: dict[str, driver.Driver] = {}
_drivers_lock = threading.Lock()


def _driver(settings: Settings) -> driver.Driver:
    """The worker's Hamilton graph for these settings, built once per worker process."""
    from daybreak.assets import catalogue

    key = repr(settings)  # secrets print masked; any setting that differs makes a new graph
    with _drivers_lock:
        if key not in _drivers:
            _drivers.clear()
            _drivers[key] = catalogue.build_driver(settings)
        return _drivers[key]


def run_on_worker(
    settings: Settings, name: str, inputs: dict[str, Any], overrides: dict[str, Any]
) -> Executed:
    """Execute one asset on this Dask worker. Its log lines, its worker and a sync's state
    changes travel back whether it succeeded or not (a failure comes back as `error`)."""
    from distributed import get_worker

    settings = dataclasses.replace(settings, secrets=_worker_secrets(settings))
    inputs = {**inputs, "settings": settings}
    lines: list[tuple[int, str]] = []
    handler = _ListHandler(lines)
    thread = threading.get_ident()
    handler.addFilter(lambda record: record.thread == thread)
    logger = logging.getLogger()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    for noisy in ("azure", "distributed"):  # as the runner has them (daybreak.logs)
        logging.getLogger(noisy).setLevel(logging.WARNING)
    spread: Counter[str] = Counter()
    token = sync.fan_out.set(partial(_map_on_cluster, spread))
    value, error = None, None
    try:
        value = _driver(settings).execute([name], inputs=inputs, overrides=overrides)[name]
    except Exception as exc:  # the runner decides: retry, fail, alert
        error = exc
    finally:
        sync.fan_out.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(level)
    if spread:
        lines.append((logging.INFO, f"{sum(spread.values())} batches fanned out over "
                      f"{len(spread)} worker(s): " + ", ".join(
                          f"{w} {n}" for w, n in sorted(spread.items()))))  # fmt: skip
    state = overrides.get("sync_state")
    return Executed(value, get_worker().address, lines[-2000:], dict(spread), error,
                    state if isinstance(state, SyncStateCopy) else None)  # fmt: skip


def _worker_secrets(settings: Settings) -> Secrets:
    """The secrets as this worker's environment (and the .env beside its config) has them."""
    env = {**read_dotenv(settings.config_path.parent / ".env"), **os.environ}
    return Secrets.from_environ(env)


def _syncs(dr: driver.Driver, name: str) -> bool:
    node = next((n for n in dr.graph.get_nodes() if n.name == name), None)
    return node is not None and any(d.name == "sync_context" for d in node.dependencies)


def _map_on_cluster(
    spread: Counter[str], fn: Callable[..., Any], arglist: list[tuple[Any, ...]]
) -> Iterator[Any]:
    """sync.fan_out on a worker: each call a task of its own, anywhere on the cluster; this
    task leaves its worker slot while it waits (worker_client secedes), so the slot works too.
    If one fails (or the sync stops reading), the others are cancelled and waited for before
    the sync lets go of its lock: nothing keeps writing the lake behind it."""
    from distributed import wait, worker_client

    with worker_client() as client:
        futures = [client.submit(_tracked, fn, *args, pure=False) for args in arglist]
        try:
            for future in futures:
                result, worker = future.result()
                spread[worker] += 1
                yield result
        finally:
            client.cancel(futures)
            wait(futures)


def _tracked(fn: Callable[..., Any], *args: Any) -> tuple[Any, str]:
    from distributed import get_worker

    return fn(*args), get_worker().address


class _ListHandler(logging.Handler):
    """Keeps (level, message); the runner re-logs them, redacting as it does every line."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


@functools.cache
def code_digest() -> str:
    """A digest of daybreak's and the dataflows' source: equal on runner and workers, or the
    worker runs other code."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for folder in ("daybreak", "dataflows"):
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:16]


def environment() -> dict[str, str]:
    """What must match between the runner and its workers."""
    return {
        "daybreak code": code_digest(),
        "python": platform.python_version(),
        "apache-hamilton": metadata.version("apache-hamilton"),
        "duckdb": metadata.version("duckdb"),
        "distributed": metadata.version("distributed"),
    }


def worker_facts(paths: dict[str, str]) -> dict[str, Any]:
    """Run on every worker at a run's start: its environment, and which paths it cannot use."""
    missing = {
        what: path for what, path in paths.items()
        if not (os.path.isdir(path) and os.access(path, os.R_OK | os.W_OK | os.X_OK))
    }  # fmt: skip
    return {"environment": environment(), "missing": missing}


# -- opening and checking ----------------------------------------------------------------------

_clusters: dict[str, tuple[Any, Any, int]] = {}  # "cluster" -> (cluster, client, workers)
_registered: list[bool] = []
_clusters_lock = threading.Lock()


def _shared_paths(settings: Settings) -> dict[str, str]:
    """The folders every worker must reach (docs/ARCHITECTURE.md, "Running on a cluster")."""
    paths = {"lake": settings.paths.lake, "state folder": settings.paths.state}
    if settings.source.backend == "local" or settings.budget.source == "local":
        paths["landing zone"] = settings.paths.landing
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    return {what: str(path) for what, path in paths.items()}


def _local_cluster(workers: int) -> Any:
    """The runner's own cluster on loopback: started once, reused by every run, started again
    if it died (or `workers` changed) since the last run."""
    import dask
    from distributed import Client, LocalCluster

    with _clusters_lock:
        current = _clusters.get("cluster")
        if current is not None:
            cluster, client, size = current
            if size == workers and client.status == "running" and cluster.status.name == "running":
                return client
            log.warning("the local Dask cluster is %s; starting it again", cluster.status.name)
            _close(current)
        log.info("starting a local Dask cluster of %d worker processes on 127.0.0.1", workers)
        # A worker that dies fails its task at once, so daybreak's retry policy decides.
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None,
            )  # fmt: skip
        _clusters["cluster"] = (cluster, Client(cluster), workers)
        if not _registered:
            atexit.register(_close_clusters)
            _registered.append(True)
        return _clusters["cluster"][1]


def _close(current: tuple[Any, Any, int]) -> None:
    with contextlib.suppress(Exception):  # already half gone: close what is left
        current[1].close()
        current[0].close()


def _close_clusters() -> None:
    with _clusters_lock:
        for current in _clusters.values():
            _close(current)
        _clusters.clear()


def open_engine(settings: Settings) -> Engine:
    """The engine [engine] names, checked and ready; EngineUnavailable says why not."""
    config = settings.engine
    if config.kind == "local":
        return LocalEngine()
    try:
        import distributed
    except ImportError as exc:  # the lock installs it; a hand-made environment may not
        raise ConfigError(f"[engine] kind = {config.kind!r} needs the distributed package: "
                          f"{exc}") from None  # fmt: skip
    timeout = config.connect_timeout_seconds
    if config.kind == "local-cluster":
        client, owned = _local_cluster(config.workers), False
    else:
        try:
            client, owned = distributed.Client(config.address, timeout=timeout), True
        except (OSError, TimeoutError) as exc:
            raise EngineUnavailable(
                f"the Dask scheduler at {config.address} did not answer within {timeout:g} s "
                f"([engine] address): {type(exc).__name__}: {exc}"
            ) from None
    engine = DaskEngine(settings, client, owned=owned)
    try:
        check_workers(settings, client)
    except BaseException:
        engine.close()
        raise
    return engine


def check_workers(settings: Settings, client: Any) -> dict[str, dict[str, Any]]:
    """Every worker's facts, or EngineUnavailable naming the worker and what differs."""
    where = settings.engine.address or "the local cluster"
    try:
        client.wait_for_workers(1, timeout=settings.engine.connect_timeout_seconds)
    except (OSError, TimeoutError) as exc:
        raise EngineUnavailable(f"no Dask worker is connected to the scheduler at {where} "
                                f"({type(exc).__name__}: {exc})") from None  # fmt: skip
    facts: dict[str, dict[str, Any]] = client.run(worker_facts, _shared_paths(settings))
    here = environment()
    problems = []
    for worker, found in sorted(facts.items()):
        for what, path in sorted(found["missing"].items()):
            problems.append(f"worker {worker} cannot read and write the {what} at {path}")
        for what, version in sorted(found["environment"].items()):
            if version != here[what]:
                problems.append(f"worker {worker} runs {what} {version}, the runner {here[what]}")
    if problems:
        raise EngineUnavailable(
            f"the Dask cluster at {where} cannot take this run:\n  " + "\n  ".join(problems)
        )
    log.info("engine %s: %d worker(s) at %s: %s", settings.engine.kind, len(facts), where,
             ", ".join(sorted(facts)))  # fmt: skip
    return facts
