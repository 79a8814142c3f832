"""dbt in-process: parse the project once, build selections with dbtRunner, report per node.

The manifest is parsed once per process and handed to every later invocation, so a long-lived
runner does not pay dbt's start-up per run; it is parsed again only when a file under dbt/ (or
the lake and warehouse paths, or the vars rendered into it) changes. The asset graph needs only
the project's structure, which no path changes: `graph_manifest()` parses it once into
dbt/target/daybreak-graph/ and reads the JSON from there until a project file changes, without
starting dbt at all. Every invocation gets the vars daybreak derives from the config (`markets`),
so the markets are declared once, in daybreak.toml, and a build also gets its tests' high-water
marks (`test_since`, daybreak/warehouse/test_scope.py), which dbt renders at run time only.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import importlib.metadata
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from daybreak import clock, progress
from daybreak.config import Settings
from daybreak.errors import LOCK_CONFLICT
from daybreak.files import read_json, write_atomic
from daybreak.warehouse.backup import remember_sound
from daybreak.warehouse.lock import wait_until_free, warehouse_lock
from daybreak.warehouse.markets import write_market_files
from daybreak.warehouse.reader import WarehouseMissing, open_reader
from daybreak.warehouse.reader_database import publish_reader_database, reader_models
from daybreak.warehouse.test_scope import ChangeMarks, scoped_models

log = logging.getLogger(__name__)

_SKIP_DIRS = {"target", "logs", "dbt_packages"}
# dbt commands that write the warehouse (`nox -s dbt -- ...`).
_WRITING_COMMANDS = {"run", "build", "seed", "snapshot", "run-operation", "retry", "clone"}
_invoke_lock = threading.Lock()  # dbt keeps global state per invocation
_manifests: dict[tuple[str, str], Any] = {}
# One parse at a time per process: a parse ahead (`DbtProject.parse_ahead`) and the build that
# needs it wait for each other, and the second finds the first's manifest.
_parse_lock = threading.Lock()


class DbtError(Exception):
    """dbt could not parse or build; the message carries dbt's own words."""


@dataclass(frozen=True)
class NodeResult:
    """One model, test or unit test in a dbt invocation."""

    unique_id: str
    name: str
    resource_type: str  # model | test | unit_test | seed | snapshot
    status: str  # success | error | skipped | pass | fail | warn
    seconds: float
    message: str
    attached_to: str | None = None  # the model a test belongs to
    rows: int | None = None  # rows in a model's relation after the build
    failures: int | None = None  # a test's failing rows

    @property
    def failed(self) -> bool:
        return self.status in ("error", "fail")


@dataclass
class DbtBuildReport:
    """What one `dbt build` did, per model and per test."""

    selection: list[str]
    nodes: list[NodeResult] = field(default_factory=list)
    seconds: float = 0.0
    # Of `seconds`, the refresh of the read-only database ([warehouse] reader_copy): a Parquet
    # snapshot of each reader model the build changed, and the small database of views.
    reader_copy_seconds: float = 0.0
    # The models whose tests read only the rows this build wrote (the others read everything).
    tested_by_change: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.resource_type == "model"]

    @property
    def tests(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.resource_type in ("test", "unit_test")]

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    @classmethod
    def combine(cls, reports: list[Any]) -> DbtBuildReport:
        """One report of the builds behind several models (the same build counted once); values
        that are not reports (a model that was current, so not built) add nothing."""
        unique: list[DbtBuildReport] = []
        for report in reports:
            if isinstance(report, DbtBuildReport) and all(report is not u for u in unique):
                unique.append(report)
        if len(unique) == 1:
            return unique[0]
        return cls(
            selection=[s for r in unique for s in r.selection],
            nodes=[n for r in unique for n in r.nodes],
            seconds=round(sum(r.seconds for r in unique), 3),
            reader_copy_seconds=round(sum(r.reader_copy_seconds for r in unique), 3),
        )

    def for_model(self, name: str) -> list[NodeResult]:
        """The model's own result and those of its tests."""
        return [n for n in self.nodes if name in (n.name, n.attached_to)]

    def summary(self) -> str:
        ok = sum(1 for m in self.models if m.status == "success")
        passed = sum(1 for t in self.tests if t.status == "pass")
        warned = sum(1 for t in self.tests if t.status == "warn")
        text = (
            f"{ok}/{len(self.models)} models built, {passed}/{len(self.tests)} tests passed"
            f"{f' ({warned} warned)' if warned else ''} in {self.seconds:.1f} s"
        )
        if self.failures:
            text += "; failed: " + ", ".join(f"{n.name} ({n.status})" for n in self.failures)
        return text


class DbtCancelled(Exception):
    """A build stopped by a cancel (daybreak.runner.cancel); `report` holds what dbt finished."""

    def __init__(self, report: DbtBuildReport) -> None:
        self.report = report
        done = [n.name for n in report.models if n.status == "success"]
        super().__init__("dbt build cancelled" + (f" after {', '.join(done)}" if done else ""))


def _cancel_open_connections() -> None:
    """dbt's own cancellation of the statements its adapters are running (DuckDB interrupts the
    statement; the model's transaction rolls back)."""
    from dbt.adapters.factory import FACTORY

    adapter: Any
    for adapter in list(FACTORY.adapters.values()):
        try:
            if adapter.is_cancelable():
                adapter.cancel_open_connections()
        except Exception as exc:  # a connection closing under us: the next round tries again
            log.debug("cancelling dbt's connections: %s", exc)


class _Cancelling:
    """What Ctrl-C does to `dbt build`, asked for from another thread.

    On a KeyboardInterrupt in the thread that invoked it, dbt cancels its adapters' open
    connections, waits for its worker threads, writes run_results.json and returns. A signal
    reaches only the main thread, and runs run in worker threads, so once `cancel` is set this
    raises KeyboardInterrupt in the invoking thread (CPython's PyThreadState_SetAsyncExc; it is
    delivered when that thread next runs Python, i.e. when a node ends) and cancels the open
    connections every few tenths of a second until dbt returns, which is what ends the node.

    Armed only while dbtRunner.invoke runs (`arm` and `disarm` around it, inside the caller's
    `try ... except KeyboardInterrupt`): a KeyboardInterrupt not yet delivered when it is
    disarmed is withdrawn, so none ever lands outside the invocation.
    """

    def __init__(self, cancel: threading.Event | None) -> None:
        self.cancel = cancel
        self.fired = False
        self._thread_id = threading.get_ident()
        self._lock = threading.Lock()
        self._active = False
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="dbt-cancel", daemon=True)

    def __enter__(self) -> _Cancelling:
        if self.cancel is not None:
            self._watcher.start()
        return self

    def arm(self) -> None:
        with self._lock:
            self._active = True

    def disarm(self) -> None:
        with self._lock:
            self._active = False
            if self.fired:  # not delivered yet: withdrawn (delivered: nothing to withdraw)
                self._raise_in_invoker(None)

    def _raise_in_invoker(self, exc: type[BaseException] | None) -> None:
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self._thread_id), ctypes.py_object(exc) if exc else None
        )
        if done > 1:  # more than one thread: undo, as CPython's documentation says
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)

    def _watch(self) -> None:
        assert self.cancel is not None
        while not self._done.is_set():
            if not self.cancel.wait(0.2):
                continue
            with self._lock:
                if self._active and not self.fired:
                    log.warning("cancel: stopping dbt (its running statements are rolled back)")
                    self.fired = True  # before the exception: the invoker must know it is ours
                    self._raise_in_invoker(KeyboardInterrupt)
            if self.fired:
                break
            self._done.wait(0.05)  # asked before dbt started: wait for it to start (or end)
        while not self._done.wait(0.3):
            _cancel_open_connections()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._watcher.is_alive():
            self._watcher.join()


class DbtBuildFailed(Exception):
    """A model or test failed; names each with dbt's message. Downstream nodes were skipped."""

    def __init__(self, report: DbtBuildReport) -> None:
        self.report = report
        lines = [
            f"{n.resource_type} {n.name}"
            + (f" (on {n.attached_to})" if n.attached_to else "")
            + f" {n.status}: {n.message.strip().splitlines()[0] if n.message else ''}"
            for n in report.failures
        ]
        super().__init__("dbt build failed: " + "; ".join(lines))


def _release_warehouse() -> None:
    """Close dbt-duckdb's process-wide connection, which otherwise keeps the warehouse file open
    (and locked against every other process) long after the build ended."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def _node_finished(event: Any) -> None:
    """dbt's event callback: each model and test as it finishes, for live progress."""
    if event.info.name != "NodeFinished":
        return
    node = event.data.node_info
    progress.emit(progress.Event("node", node.node_name, node.node_status,
                                 detail=node.resource_type))  # fmt: skip


def _held_by_another(result: Any) -> bool:
    """Whether a dbt invocation failed because another process held the warehouse file."""
    messages = [str(result.exception or "")]
    messages += [str(r.message or "") for r in (result.result.results if result.result else [])]
    return any(LOCK_CONFLICT.search(m) for m in messages)


def _attached_model(node: Any, manifest: Any) -> str | None:
    """The model a test checks (None for models themselves)."""
    if str(node.resource_type) not in ("test", "unit_test"):
        return None
    attached = getattr(node, "attached_node", None) or getattr(node, "tested_node_unique_id", None)
    if attached in manifest.nodes:
        return str(manifest.nodes[attached].name)
    parents = [p for p in node.depends_on.nodes if p.startswith("model.") and p in manifest.nodes]
    return str(manifest.nodes[parents[0]].name) if parents else None


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return f"{name} not installed"


def fingerprint(project_dir: Path, env: dict[str, str], dbt_vars: dict[str, Any]) -> str:
    """Changes when any project file, the dbt version, a rendered path or a var changes."""
    # The installed distributions' versions, from their metadata: importing dbt.version to ask
    # took 0.45 s, a third of a `runner.py run` with nothing new.
    versions = "|".join(_distribution_version(d) for d in ("dbt-core", "dbt-duckdb"))
    digest = hashlib.sha256(
        f"{versions}|{sorted(env.items())}|{json.dumps(dbt_vars, sort_keys=True)}".encode()
    )
    for path in sorted(project_dir.rglob("*")):
        relative = path.relative_to(project_dir)
        if relative.parts[0] in _SKIP_DIRS or not path.is_file():
            continue
        stat = path.stat()
        digest.update(f"{relative.as_posix()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


# The asset graph needs the project's structure only, which no real path changes.
_GRAPH_ENV = {"DAYBREAK_LAKE": "/daybreak/lake", "DAYBREAK_WAREHOUSE": "/daybreak/warehouse.duckdb"}
# Column lineage needs the compiled SQL, and nothing of a real warehouse.
_LINEAGE_ENV = {"DAYBREAK_LAKE": "/daybreak/lake", "DAYBREAK_WAREHOUSE": ":memory:"}


class _Invoker:
    """dbtRunner with daybreak's flags, vars and environment, one invocation at a time."""

    def __init__(
        self, project_dir: Path, target: Path, logs: Path, env: dict[str, str],
        dbt_vars: dict[str, Any], *, target_name: str | None = None,
    ) -> None:  # fmt: skip
        self.project_dir, self.target, self.logs, self.env = project_dir, target, logs, env
        self.dbt_vars = dbt_vars
        self.profile_target = target_name

    def flags(self, run_vars: dict[str, Any] | None = None) -> list[str]:
        """`run_vars` are this invocation's only (the tests' high-water marks): dbt renders them
        when it runs, so they are no part of the parsed project's fingerprint."""
        chosen = ["--target", self.profile_target] if self.profile_target else []
        return [
            "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.project_dir),
            "--target-path", str(self.target),
            "--log-path", str(self.logs),
            "--vars", json.dumps({**self.dbt_vars, **(run_vars or {})}),
            *chosen,
        ]  # fmt: skip

    def invoke(
        self, args: list[str], manifest: Any = None, *, quiet: bool = True,
        callbacks: list[Any] | None = None,
    ) -> Any:  # fmt: skip
        return self.invoke_cancellable(args, manifest, quiet=quiet, callbacks=callbacks)[0]

    def invoke_cancellable(
        self, args: list[str], manifest: Any = None, *, quiet: bool = True,
        callbacks: list[Any] | None = None, cancel: threading.Event | None = None,
        run_vars: dict[str, Any] | None = None,
    ) -> tuple[Any, bool]:  # fmt: skip
        """dbtRunner's result, and whether `cancel` stopped it (the result is then partial or
        None; run_results.json holds what dbt finished)."""
        from dbt.cli.main import dbtRunner

        flags = [*self.flags(run_vars), "--no-send-anonymous-usage-stats", "--no-version-check"]
        if quiet:  # daybreak logs each node itself; dbt's own lines go to its log file only
            flags += ["--quiet", "--no-use-colors", "--log-level", "none"]
        self.target.mkdir(parents=True, exist_ok=True)
        with _invoke_lock:
            saved = {k: os.environ.get(k) for k in self.env}
            os.environ.update(self.env)
            try:
                with _Cancelling(cancel) as cancelling:
                    try:
                        cancelling.arm()
                        result = dbtRunner(manifest=manifest, callbacks=callbacks).invoke(
                            [*args, *flags]
                        )
                        cancelling.disarm()
                    except KeyboardInterrupt:  # ours, delivered outside dbt's own handling
                        if not cancelling.fired:
                            raise
                        cancelling.disarm()
                        result = None
                return result, cancelling.fired
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


class DbtProject:
    """daybreak's dbt project, bound to one Settings (markets, lake, warehouse, state folder).

    The one way daybreak runs dbt: the asset graph's structure (`graph_manifest`), builds of a
    selection of models (`build`), and the dbt CLI for people (`cli`, `nox -s dbt`). Before any
    of them the per-market files are brought in line with [markets] (daybreak.warehouse.markets).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.project_dir = settings.paths.dbt_project
        self.layout = settings.state
        self.target_dir = self.layout.dbt / "target"
        self.log_dir = self.layout.dbt / "logs"
        self.env = {
            "DAYBREAK_LAKE": settings.paths.lake.as_posix(),
            "DAYBREAK_WAREHOUSE": settings.paths.warehouse.as_posix(),
        }
        self.spark = settings.warehouse.engine == "spark"
        if self.spark:  # the profile's spark target reads these (dbt/profiles.yml)
            spark = settings.warehouse.spark
            self.env.update({
                "DAYBREAK_SPARK_METHOD": spark.method,
                "DAYBREAK_SPARK_HOST": spark.host,
                "DAYBREAK_SPARK_PORT": str(spark.port),
                "DAYBREAK_SPARK_CLUSTER": spark.cluster,
                "DAYBREAK_SPARK_SCHEMA": spark.schema_name,
                "DAYBREAK_SPARK_WAREHOUSE": settings.spark_warehouse.as_posix(),
                "DAYBREAK_SPARK_DRIVER_MEMORY": spark.driver_memory,
                "DAYBREAK_SPARK_SHUFFLE_PARTITIONS": str(spark.shuffle_partitions),
            })  # fmt: skip
            token = settings.secrets.spark_token
            if token is not None:
                self.env["DAYBREAK_SPARK_TOKEN"] = token.get_secret_value()
            if spark.method == "session":
                self.env["SPARK_CONF_DIR"] = str(self._session_conf())
        self.vars: dict[str, Any] = {"markets": [m.lower() for m in settings.market_codes]}

    def _session_conf(self) -> Path:
        """A local Spark session's settings, read by pyspark when it starts the JVM: where the
        tables live, and a metastore of their own under the state folder (Spark's default would
        be a metastore_db in whatever folder the process started in, remembering tables of
        another project). One Spark session per process: a second warehouse folder in the same
        process is refused (DbtProject.build)."""
        spark = self.settings.warehouse.spark
        home = self.layout.spark
        home.mkdir(parents=True, exist_ok=True)
        lines = {
            "spark.sql.warehouse.dir": self.settings.spark_warehouse.as_posix(),
            "spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={(home / 'metastore').as_posix()};create=true",
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={home.as_posix()}",
            "spark.driver.memory": spark.driver_memory,
            "spark.ui.enabled": "false",
        }  # fmt: skip
        write_atomic(home / "spark-defaults.conf",
                     "".join(f"{k} {v}\n" for k, v in lines.items()))  # fmt: skip
        return home

    def _check_session(self) -> None:
        """A local session already running in this process must be this project's."""
        try:
            from pyspark import SparkContext
        except ImportError:
            return
        context = SparkContext._active_spark_context  # the process's, whichever thread made it
        if context is None:
            return
        running = context.getConf().get("spark.sql.warehouse.dir", "") or ""
        wanted = self.settings.spark_warehouse.as_posix()
        if running.removeprefix("file:").rstrip("/") != wanted.rstrip("/"):
            raise DbtError(
                f"this process already runs a Spark session with its tables in {running}; "
                f"[warehouse.spark] warehouse_dir {wanted} needs a process of its own"
            )

    def _write_market_files(self) -> None:
        changed = write_market_files(self.project_dir, self.settings.market_codes)
        if changed:
            log.info("dbt: wrote the per-market files for %s: %s",
                     ", ".join(self.settings.market_codes),
                     ", ".join(p.name for p in changed))  # fmt: skip

    # -- the graph's structure ----------------------------------------------------------

    def graph_manifest(self) -> dict[str, Any]:
        """The project's manifest.json (structure only, no real paths), parsed once into
        dbt/target/daybreak-graph/ and read from there until a project file or var changes."""
        return self._manifest_once("daybreak-graph", _GRAPH_ENV, ["parse"])

    def lineage_manifest(self) -> dict[str, Any]:
        """The project compiled for column lineage (daybreak/warehouse/column_lineage.py): against
        an empty in-memory DuckDB, so no warehouse is opened or locked and every incremental
        model compiles to its whole-table SQL. Compiled once into dbt/target/daybreak-lineage/
        and read from there until a project file or var changes (`lineage_fingerprint`)."""
        return self._manifest_once(
            "daybreak-lineage", _LINEAGE_ENV, ["compile", "--select", "resource_type:model"]
        )

    def _manifest_once(self, folder: str, env: dict[str, str], args: list[str]) -> dict[str, Any]:
        """The manifest.json dbt `args` writes into dbt/target/<folder>/ with `env`, run again
        only when a project file, the dbt version, a var or `env` changed (two processes
        starting at once run it once)."""
        from filelock import FileLock

        target = self.project_dir / "target" / folder
        target.mkdir(parents=True, exist_ok=True)
        with FileLock(target / ".run.lock"):
            self._write_market_files()
            current = fingerprint(self.project_dir, env, self.vars)
            stamp, manifest = target / "daybreak.fingerprint", target / "manifest.json"
            if not (manifest.exists() and stamp.exists() and stamp.read_text() == current):
                started = time.monotonic()
                runner = _Invoker(self.project_dir, target, target / "logs", env, self.vars)
                result = runner.invoke(args)
                if not result.success:
                    raise DbtError(f"dbt could not {args[0]} {self.project_dir}: "
                                   f"{result.exception}")  # fmt: skip
                stamp.write_text(current)
                log.info("dbt %s into %s in %.1f s", args[0], target, time.monotonic() - started)
            return dict(json.loads(manifest.read_text(encoding="utf-8")))

    def lineage_fingerprint(self) -> str:
        """Changes when the compiled SQL could: a project file, the dbt version or a var."""
        return fingerprint(self.project_dir, _LINEAGE_ENV, self.vars)

    # -- parsing --------------------------------------------------------------------------

    def _invoker(self) -> _Invoker:
        return _Invoker(self.project_dir, self.target_dir, self.log_dir, self.env, self.vars,
                        target_name="spark" if self.spark else None)  # fmt: skip

    def _parse(self, current: str) -> Any:
        started = time.monotonic()
        result = self._invoker().invoke(["parse"])
        if not result.success:
            raise DbtError(f"dbt could not parse {self.project_dir}: {result.exception}")
        _manifests[(str(self.project_dir), current)] = result.result
        log.info("parsed the dbt project in %.1f s", time.monotonic() - started)
        return result.result

    def _manifest(self) -> Any:
        with _parse_lock:
            self._write_market_files()
            current = fingerprint(self.project_dir, self.env, self.vars)
            cached = _manifests.get((str(self.project_dir), current))
            return cached if cached is not None else self._parse(current)

    def parse_ahead(self) -> threading.Thread:
        """Parse the project in a background thread, so that a run whose syncs come first finds
        it parsed when its build starts: in a fresh process, importing dbt and its partial parse
        take 3-6 s at the large bench, paid while DuckDB and pyarrow sync the files (they let go
        of the GIL). In a long-lived runner the manifest is already parsed and this returns at
        once. A failure is the build's to report: it parses again and says why."""

        def parse() -> None:
            try:
                self._manifest()
            except Exception as exc:  # the build parses again and raises DbtError
                log.debug("dbt: parsing ahead failed (the build will say why): %s", exc)

        thread = threading.Thread(target=parse, name="dbt-parse-ahead", daemon=True)
        thread.start()
        return thread

    # -- the dbt CLI ----------------------------------------------------------------------

    def cli(self, args: list[str]) -> int:
        """Run dbt's CLI with daybreak's project, paths and vars, under the warehouse lock;
        dbt's own output goes to the terminal. Returns dbt's exit code."""
        self._write_market_files()
        self.settings.paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
        with warehouse_lock(self.layout, f"dbt {' '.join(args)}"):
            command = next((a for a in args if not a.startswith("-")), "")
            if command in _WRITING_COMMANDS:
                # Rows written by hand were not seen by daybreak's tests: the next build reads
                # every row (test_scope.py).
                ChangeMarks.forget(self.layout.dbt_tests)
            try:
                result = self._invoker().invoke(args, quiet=False)
            finally:
                _release_warehouse()
        if result.success:
            return 0
        return 2 if result.exception is not None and result.result is None else 1

    # -- building -------------------------------------------------------------------------

    def build(
        self, select: list[str], *, full_refresh: bool = False,
        cancel: threading.Event | None = None,
    ) -> DbtBuildReport:  # fmt: skip
        """`dbt build --select SELECT` in one invocation, under the warehouse lock.

        Raises DbtBuildFailed naming every failed model and test; the report is on the error.
        `cancel` set stops dbt through its own cancellation and raises DbtCancelled: each table
        is as it was before the build or as the build made it; the reader copy is not refreshed.
        """
        started = time.monotonic()
        wall_start = time.time()
        # cautious: a test runs only when every model it checks is selected (and so built).
        args = ["build", "--select", *select, "--indirect-selection", "cautious"]
        if full_refresh:
            args.append("--full-refresh")
        warehouse = self.settings.paths.warehouse
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        what = f"dbt build --select {' '.join(select)}"
        timeout = dt.timedelta(minutes=self.settings.warehouse.lock_timeout_minutes)
        deadline = time.monotonic() + timeout.total_seconds()
        with warehouse_lock(self.layout, what):
            if self.spark and self.settings.warehouse.spark.method == "session":
                self._check_session()
            manifest = self._manifest()
            scoped, marks, since = self._test_scope(manifest, full_refresh=full_refresh)
            now = clock.now()
            while True:
                left = dt.timedelta(seconds=max(deadline - time.monotonic(), 0))
                if not self.spark:  # a server engine has no file for another program to hold
                    wait_until_free(warehouse, self.layout, what, alert_after=left, timeout=left)
                if cancel is not None and cancel.is_set():
                    raise DbtCancelled(DbtBuildReport(select, []))
                try:
                    result, cancelled = self._invoker().invoke_cancellable(
                        args,
                        manifest=manifest,
                        callbacks=[_node_finished],
                        cancel=cancel,
                        run_vars={"test_since": since},
                    )
                finally:
                    _release_warehouse()
                if cancelled:
                    report = DbtBuildReport(select, self._finished_nodes(manifest, wall_start))
                    if not self.spark:
                        self._remember_unpublished([m.name for m in report.models
                                                    if not m.failed])  # fmt: skip
                    report.seconds = round(time.monotonic() - started, 3)
                    log.warning("dbt build cancelled; finished before it stopped: %s",
                                ", ".join(n.name for n in report.models) or "no model")  # fmt: skip
                    raise DbtCancelled(report)
                # A program that opened the warehouse between the wait and dbt's connect: nothing
                # was written (dbt could not open the file), so wait for it and build again.
                if not _held_by_another(result) or time.monotonic() >= deadline:
                    break
                log.warning("%s: the warehouse was taken by another program; waiting", what)
            if result.exception is not None and result.result is None:
                raise DbtError(f"dbt build --select {' '.join(select)}: {result.exception}")
            report = DbtBuildReport(select, self._node_results(result.result, manifest))
            report.tested_by_change = sorted(since)
            self._after_build(report, manifest, scoped, marks, since, now)
            if not self.spark:  # closed by dbt and by the step above, whole: no need to look
                remember_sound(self.layout, warehouse)
        report.seconds = round(time.monotonic() - started, 3)
        for node in report.nodes:
            rows = f", {node.rows:,} rows" if node.rows is not None else ""
            on = f" on {node.attached_to}" if node.attached_to else ""
            said = f": {node.message}" if node.failed or node.status == "warn" else ""
            level = logging.ERROR if node.failed else logging.INFO
            what = f"{node.resource_type} {node.name}{on}"
            log.log(level, "dbt %s: %s in %.2f s%s%s", what, node.status, node.seconds, rows, said)
        if report.failures:
            raise DbtBuildFailed(report)
        return report

    @property
    def _unpublished_path(self) -> Path:
        """The models a failed or cancelled build changed, whose read-only snapshots the next
        passing build takes although it may not build them."""
        return self.layout.dbt / "unpublished.json"

    def _unpublished(self) -> list[str]:
        known = read_json(self._unpublished_path, [])
        return [str(n) for n in known] if isinstance(known, list) else []

    def _remember_unpublished(self, names: list[str]) -> None:
        known = self._unpublished()
        if set(names) - set(known):
            write_atomic(self._unpublished_path, json.dumps(sorted({*known, *names})))

    def _record_columns(self, con: Any, built: list[str]) -> None:
        """The built models' columns and types as the warehouse has them (the column lineage
        shows them): <state>/dbt/columns.json, {model: {column: type}}."""
        path = self.layout.warehouse_columns
        known = read_json(path, {})
        known = known if isinstance(known, dict) else {}
        try:
            for model in built:
                rows = con.execute(f'DESCRIBE main."{model}"').fetchall()
                known[model] = {str(r[0]): str(r[1]) for r in rows}
            write_atomic(path, json.dumps(known, indent=1, sort_keys=True))
        except Exception as exc:  # the types are shown, never relied on: a build goes on
            log.warning("could not record the built models' column types: %s", exc)

    def _finished_nodes(self, manifest: Any, since: float) -> list[NodeResult]:
        """What a cancelled build finished, from the run_results.json dbt writes as it stops."""
        path = self.target_dir / "run_results.json"
        try:
            if path.stat().st_mtime < since:
                return []  # dbt stopped before it ran anything
            results = json.loads(path.read_text(encoding="utf-8"))["results"]
        except (OSError, ValueError, KeyError):
            return []
        nodes = []
        for r in results:
            node = manifest.nodes.get(r.get("unique_id"))
            if node is None:
                continue
            nodes.append(NodeResult(
                unique_id=node.unique_id, name=node.name, resource_type=str(node.resource_type),
                status=str(r.get("status")), seconds=round(float(r.get("execution_time") or 0), 3),
                message=str(r.get("message") or ""), attached_to=_attached_model(node, manifest),
            ))  # fmt: skip
        return nodes

    @staticmethod
    def _node_results(results: Any, manifest: Any) -> list[NodeResult]:
        return [
            NodeResult(
                unique_id=r.node.unique_id,
                name=r.node.name,
                resource_type=str(r.node.resource_type),
                status=str(r.status),
                seconds=round(float(r.execution_time or 0.0), 3),
                message=str(r.message or ""),
                attached_to=_attached_model(r.node, manifest),
                failures=r.failures if isinstance(getattr(r, "failures", None), int) else None,
            )
            for r in (results.results if results is not None else [])
        ]

    def _test_scope(
        self, manifest: Any, *, full_refresh: bool
    ) -> tuple[dict[str, str], ChangeMarks | None, dict[str, str]]:
        """The models tested by change, their marks, and this build's `test_since`
        (daybreak/warehouse/test_scope.py). On Spark every test reads its whole table."""
        if self.spark:
            return {}, None, {}
        scoped = scoped_models(manifest)
        marks = ChangeMarks(self.layout.dbt_tests)
        every = self.settings.warehouse.full_tests_every_days
        whole_every = dt.timedelta(days=every) if every > 0 else None
        full = full_refresh or not self.settings.paths.warehouse.exists()
        since = marks.since(scoped, clock.now(), whole_every, full=full)
        whole = sorted(set(scoped) - set(since))
        if scoped:
            log.info("dbt tests by change: %s read the rows written since their last passing "
                     "build; %s read their whole tables", ", ".join(sorted(since)) or "none",
                     ", ".join(whole) or "none")  # fmt: skip
        return scoped, marks, since

    def _after_build(
        self, report: DbtBuildReport, manifest: Any, scoped: dict[str, str],
        marks: ChangeMarks | None, since: dict[str, str], now: dt.datetime,
    ) -> None:  # fmt: skip
        """Count the built models' rows; after a passing build move the tests' marks and
        refresh the read-only database with what the build changed."""
        built = [m for m in report.models if m.status == "success"]
        if not built:
            return
        if self.spark:
            try:
                con = open_reader(self.settings)
            except WarehouseMissing:  # tables where this machine cannot see them: no counts
                return
        else:
            con = duckdb.connect(str(self.settings.paths.warehouse))
        try:
            for i, model in enumerate(report.nodes):
                if model in built:
                    rows = con.execute(f'SELECT count(*) FROM main."{model.name}"').fetchall()
                    report.nodes[i] = NodeResult(**{**model.__dict__, "rows": int(rows[0][0])})
            self._record_columns(con, [m.name for m in built])
            if self.spark:
                return
            names = [m.name for m in built]
            if report.failures:  # changed tables, not published: the next passing build does
                self._remember_unpublished(names)
                return
            if marks is not None:
                marks.passed(con, names, scoped, since, now)
            target = self.settings.reader_copy
            if target is not None:
                copying = time.monotonic()
                layers = set(self.settings.warehouse.reader_layers)
                publish_reader_database(con, target, reader_models(manifest, layers),
                                        [*names, *self._unpublished()], now)  # fmt: skip
                self._unpublished_path.unlink(missing_ok=True)
                report.reader_copy_seconds = round(time.monotonic() - copying, 3)
        finally:
            con.close()
