"""Run a set of assets once, in dependency order; dbt models in one dbt invocation per wave.

Policies:
- Each Python asset runs in its own Hamilton execution, so a failure stays local: an asset whose
  upstream failed is skipped (and says which upstream), independent assets still run. Values of
  assets computed earlier in the run are handed to later ones as overrides, so nothing runs twice.
- Independent Python assets run side by side (threads; two by default, as the machine has two
  cores); an asset tagged run_last (a warehouse backup) waits until every other asset ended.
- A dbt build asset (kind dbt_build: build_daily_sales_models) stands for the models it names:
  it runs once they are built, and fails (naming them) when one of them failed.
- dbt models are not run one by one: whenever no Python asset is ready, every ready model is built
  in a single `dbt build --select m1 m2 ...` (tests included), and each model's result (its own
  status and its tests') becomes that asset's result. Models dbt skipped because an upstream model
  or test failed are reported as skipped.
- A Python asset that fails with a transient error (see daybreak.retry) is executed again after
  its policy's wait, up to max_retries; bad input and configuration errors fail at once. Only
  that asset is retried: upstream values stay overrides, so nothing that succeeded reruns.
- Every attempt is recorded in the run history (when a RunContext is given), and an asset's
  exception is recorded with its traceback; it never stops the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from hamilton import driver

from daybreak import clock, progress
from daybreak.assets import columns
from daybreak.assets.catalogue import Asset, models_built_by
from daybreak.assets.dbt_models import DBT_BUILD_KIND, MODEL_KIND
from daybreak.assets.tags import RetryPolicy, policy_from_tags
from daybreak.config import RetriesConfig, Settings
from daybreak.errors import describe, is_transient
from daybreak.ingest.sync_state import sync_lock
from daybreak.logs import asset_context, redact
from daybreak.runner.alerts import Alerter, alert_urls
from daybreak.runner.concurrency import WAREHOUSE_TAG, tag_slot
from daybreak.runner.engine import Engine, LocalEngine
from daybreak.runner.history import History
from daybreak.state import StateLayout
from daybreak.warehouse.backup import recover_warehouse
from daybreak.warehouse.dbt_project import DbtBuildFailed, DbtBuildReport, DbtCancelled, DbtProject
from daybreak.warehouse.lock import wait_until_free, warehouse_lock

log = logging.getLogger(__name__)


@dataclass
class AssetResult:
    """How one asset went in a run."""

    name: str
    status: str  # success | failed | skipped | fresh (needed, current, so not run)
    seconds: float = 0.0
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    attempts: int = 1
    exception: BaseException | None = field(default=None, repr=False)
    # The dbt build asset of this run that this model's result is part of (summary folds it in).
    part_of: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("success", "fresh")

    @property
    def summary(self) -> str:
        if self.status == "fresh":
            return f"up to date: not run (last success {self.value.last_success})"
        if self.status == "success":
            if isinstance(self.value, DbtBuildReport) and self.name in {
                m.name for m in self.value.models
            }:
                return _model_summary(self.value, self.name)
            summary = getattr(self.value, "summary", None)
            return summary() if callable(summary) else type(self.value).__name__
        return (self.error or "").splitlines()[0] if self.error else ""


@dataclass(frozen=True)
class Fresh:
    """Stands in for the value of an upstream asset that was current and so not run."""

    asset: str
    last_success: str


def _model_summary(report: DbtBuildReport, name: str) -> str:
    results = report.for_model(name)
    model = next(n for n in results if n.resource_type == "model")
    tests = [n for n in results if n is not model]
    rows = f"{model.rows:,} rows, " if model.rows is not None else ""
    passed = sum(1 for t in tests if t.status == "pass")
    warned = [t.name for t in tests if t.status == "warn"]
    return f"dbt: {rows}{passed}/{len(tests)} tests passed" + (
        f" ({len(warned)} warned: {', '.join(warned)})" if warned else ""
    )


def run_inputs(
    *,
    full_refresh: bool = False,
    run_date: dt.date | None = None,
    dry_run: bool = False,
    window: tuple[dt.date, dt.date] | None = None,
) -> dict[str, Any]:
    """The per-run inputs every execution gets besides Settings (`dry_run`: plan only; `window`:
    a backfill chunk's first and last day)."""
    inputs: dict[str, Any] = {
        "full_refresh": full_refresh, "run_date": run_date or clock.today(), "dry_run": dry_run
    }  # fmt: skip
    if window is not None:
        inputs["backfill_window"] = tuple(window)
    return inputs


@dataclass
class RunContext:
    """Where a run records itself and how it retries; without one, nothing is recorded."""

    history: History | None = None
    run_id: str | None = None
    retries: RetriesConfig = field(default_factory=RetriesConfig)
    stop: threading.Event = field(default_factory=threading.Event)
    # A cancel asked for (daybreak.runner.cancel): no asset starts, a dbt build is cancelled.
    cancel: threading.Event = field(default_factory=threading.Event)
    concurrency: dict[str, int] = field(default_factory=dict)
    layout: StateLayout | None = None
    # Called with (asset, attempt) once the history has recorded an attempt's end (UI mirror).
    on_recorded: Callable[[str, int], None] | None = None
    # With settings, a warehouse writer first waits for programs outside daybreak to let go.
    settings: Settings | None = None
    # Each asset's code fingerprint, recorded with a success (what `plan` compares).
    versions: dict[str, str] = field(default_factory=dict)
    # Where Python assets execute ([engine]); the Dask worker of each asset's latest attempt.
    engine: Engine = field(default_factory=LocalEngine)
    workers: dict[str, str | None] = field(default_factory=dict)

    def clear_warehouse(self, names: list[str], tags: dict[str, str]) -> None:
        """Wait until no program outside daybreak holds the warehouse, if these assets write it;
        alert once when it takes longer than [warehouse] lock_alert_minutes."""
        if self.settings is None or tags.get(WAREHOUSE_TAG) != "true":
            return
        if self.settings.warehouse.engine == "spark":  # no file another program could hold
            return
        settings, what = self.settings, ", ".join(names)
        config = settings.warehouse

        def alert(holder: dict[str, Any], waited: dt.timedelta) -> None:
            Alerter(settings.state, alert_urls(settings)).warehouse_held(
                holder, waited, what, settings.paths.warehouse
            )

        # Under daybreak's own writer lock: the probe must not meet this process's own readers.
        with warehouse_lock(settings.state, what):
            recover_warehouse(settings, wait=True)  # a file that no longer opens: set aside
            wait_until_free(
                settings.paths.warehouse, settings.state, what,
                alert_after=dt.timedelta(minutes=config.lock_alert_minutes),
                timeout=dt.timedelta(minutes=config.lock_timeout_minutes), on_long_wait=alert,
            )  # fmt: skip

    @contextlib.contextmanager
    def slots(self, names: list[str], tags: dict[str, str]) -> Iterator[None]:
        """Hold a slot of every limited tag these assets carry (see [concurrency])."""
        with contextlib.ExitStack() as stack:
            for tag, limit in sorted(self.concurrency.items()):
                if self.layout is not None and tags.get(tag) == "true":
                    stack.enter_context(tag_slot(self.layout, tag, limit, ", ".join(names)))
            yield

    @contextlib.contextmanager
    def lake_settled(self, assets: dict[str, Asset], models: list[str]) -> Iterator[None]:
        """Hold the sync lock of every ingestion asset these models read while they build, so
        a sync in another process (a backfill, a hand-run) never writes the lake files under a
        build: an incremental model's high-water mark (synced_at) would skip its later files."""
        feeding = sorted({up for m in models for up in assets[m].upstream
                          if assets[up].tags.get("kind") == "ingestion"})  # fmt: skip
        with contextlib.ExitStack() as stack:
            if self.layout is not None:
                for asset in feeding:  # in name order: two builds never wait on each other
                    stack.enter_context(sync_lock(self.layout, asset))
            yield

    def policy(self, asset: Asset) -> RetryPolicy:
        policy = policy_from_tags(asset.tags)
        override = self.retries.assets.get(asset.name)
        if override is not None:
            changes = {k: v for k, v in override.model_dump().items() if v is not None}
            policy = replace(policy, **changes)
        return policy.scaled(self.retries.delay_scale)

    def started(self, asset: str, attempt: int) -> None:
        detail = f"attempt {attempt}" if attempt > 1 else ""
        progress.emit(progress.Event("asset", asset, "running", detail=detail))
        if self.history and self.run_id:
            self.history.start_attempt(self.run_id, asset, attempt)

    def finished(
        self,
        result: AssetResult,
        status: str | None = None,
        *,
        next_try_at: dt.datetime | None = None,
        max_attempts: int | None = None,
    ) -> None:
        progress.emit(progress.Event("asset", result.name, status or result.status,
                                     detail=result.summary))  # fmt: skip
        if self.history and self.run_id:
            report = result.value
            if isinstance(report, DbtBuildReport):  # a model keeps its own part of the build
                own = report.for_model(result.name)
                report = {"nodes": [dataclasses.asdict(n) for n in own]} if own else report
            self.history.finish_attempt(
                self.run_id, result.name, result.attempts, status or result.status,
                seconds=result.seconds, error=result.error, traceback=result.traceback,
                report=report, next_try_at=next_try_at, max_attempts=max_attempts,
                code_version=self.versions.get(result.name),
                worker=self.workers.get(result.name),
            )  # fmt: skip
            if self.on_recorded is not None:
                self.on_recorded(result.name, result.attempts)


def _timed(name: str, call: Callable[[], Any]) -> AssetResult:
    started = time.monotonic()
    try:
        value = call()
    except Exception as exc:  # recorded, reported and turned into a non-zero exit
        seconds = time.monotonic() - started
        error = redact(describe(exc))
        log.error("failed after %.1f s: %s", seconds, error)
        return AssetResult(
            name, "failed", seconds, error=error, traceback=redact(traceback.format_exc()),
            exception=exc,
        )  # fmt: skip
    return AssetResult(name, "success", time.monotonic() - started, value)


def _with_retries(name: str, asset: Asset, call: Callable[[], Any], ctx: RunContext) -> AssetResult:
    policy = ctx.policy(asset)
    attempt = 1
    while True:
        ctx.started(name, attempt)
        result = replace(_timed(name, call), attempts=attempt)
        retry = (
            result.status == "failed"
            and attempt <= policy.max_retries
            and result.exception is not None
            and is_transient(result.exception)
        )
        if not retry:
            ctx.finished(result)
            return result
        # A server that said when to come back (429 Retry-After) is not asked sooner.
        wait = max(policy.wait(attempt), float(getattr(result.exception, "retry_after", 0) or 0))
        ctx.finished(
            result, "retrying", next_try_at=clock.now() + dt.timedelta(seconds=wait),
            max_attempts=policy.max_retries + 1,
        )  # fmt: skip
        log.warning(
            "transient failure; retry %d of %d in %.1f s", attempt, policy.max_retries, wait
        )
        if ctx.stop.wait(wait):  # the runner is stopping: give up rather than sleep on
            return result
        attempt += 1


def materialize(
    dr: driver.Driver,
    assets: dict[str, Asset],
    plan: list[str],
    inputs: dict[str, Any],
    ctx: RunContext | None = None,
    *,
    workers: int = 2,
    fresh: dict[str, str] | None = None,
) -> list[AssetResult]:
    """Execute the assets in `plan` (already in dependency order); never raises for an asset.

    Independent Python assets run side by side in `workers` threads; a dbt wave starts only when
    no Python asset is ready or running, so it gathers every model it can into one build.
    `fresh` maps assets that need not run (current upstream) to their last success.
    """
    ctx = ctx or RunContext()
    in_plan = set(plan)
    results: dict[str, AssetResult] = {
        name: AssetResult(name, "fresh", value=Fresh(name, at))
        for name, at in (fresh or {}).items()
        if name in in_plan
    }
    last = {a for a in plan if assets[a].tags.get("run_last") == "true"}

    def is_model(name: str) -> bool:
        return assets[name].tags.get("kind") == MODEL_KIND

    def ready(name: str) -> bool:
        if name in last:  # e.g. a backup: after all the rest
            return all(a in results for a in plan if a != name and a not in last)
        return all(up in results or up not in in_plan for up in assets[name].upstream)

    def skip_if_upstream_failed(name: str) -> bool:
        failed = [up for up in assets[name].upstream if up in results and not results[up].ok]
        if failed and assets[name].tags.get("kind") == DBT_BUILD_KIND:  # its models failed
            models = models_built_by(assets, name)
            first = [m for m in models if m in results and results[m].status == "failed"]
            errors = "; ".join(results[m].error or m for m in first or failed)
            results[name] = AssetResult(name, "failed", error=f"dbt build failed: {errors}")
            ctx.finished(results[name])
            log.error("%s failed: %s", name, errors)
        elif failed:
            results[name] = AssetResult(
                name, "skipped", error=f"upstream failed: {', '.join(failed)}"
            )
            ctx.finished(results[name])
            log.warning("%s skipped: upstream failed: %s", name, ", ".join(failed))
        return bool(failed)

    def run_python(name: str) -> AssetResult:
        overrides = {up: results[up].value for up in assets[name].upstream if up in results}
        tags = assets[name].tags

        def call() -> Any:
            ctx.clear_warehouse([name], tags)  # inside the attempt: a failure is the asset's
            ctx.workers[name] = None
            executed = ctx.engine.execute(dr, assets[name], inputs, overrides)
            ctx.workers[name] = executed.worker
            return executed.value

        with asset_context(name), ctx.slots([name], tags):
            return _with_retries(name, assets[name], call, ctx)

    def cancel_pending() -> None:
        for name in pending:
            results[name] = AssetResult(name, "cancelled", error="not started: run cancelled")
            ctx.finished(results[name])
        if pending:
            log.warning("cancelled: not started: %s", ", ".join(pending))
        pending.clear()

    pending = [name for name in plan if name not in results]
    running: dict[Future[AssetResult], str] = {}
    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="asset") as pool:
        while pending or running:
            if ctx.cancel.is_set():  # a safe point: between assets
                cancel_pending()
            python = [a for a in pending if ready(a) and not is_model(a)]
            for name in python:
                pending.remove(name)
                if not skip_if_upstream_failed(name):
                    # Each worker carries this thread's context: the run's log file, its asset.
                    running[pool.submit(contextvars.copy_context().run, run_python, name)] = name
            if python:
                continue  # skips may have made more assets ready
            if not running:
                wave = _model_wave(assets, pending, results, in_plan, is_model)
                if not wave:
                    break  # nothing can become ready any more
                for name in wave:
                    pending.remove(name)
                to_build = [name for name in wave if not skip_if_upstream_failed(name)]
                for name in to_build:
                    ctx.started(name, 1)
                built = {}
                if to_build:
                    tags = assets[to_build[0]].tags
                    with ctx.slots(to_build, tags), ctx.lake_settled(assets, to_build):
                        clear = partial(ctx.clear_warehouse, to_build, tags)
                        built = _build_models(dr, to_build, inputs, clear, ctx.cancel)
                for result in built.values():
                    ctx.finished(result)
                results.update(built)
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                results[running.pop(future)] = future.result()
    for name in plan:  # a dbt build asset's line speaks for the models it collects
        if assets[name].tags.get("kind") == DBT_BUILD_KIND:
            if isinstance(results[name].value, DbtBuildReport):
                results[name].seconds = results[name].value.seconds  # the build's, not the join's
            for model in models_built_by(assets, name):
                if model in results:
                    results[model].part_of = name
    return [results[name] for name in plan]


def _model_wave(
    assets: dict[str, Asset],
    pending: list[str],
    results: dict[str, AssetResult],
    in_plan: set[str],
    is_model: Callable[[str], bool],
) -> list[str]:
    """Every pending model whose upstream is done or is another model of the wave (one build)."""
    wave: list[str] = []
    for name in pending:  # pending is in dependency order, so one pass finds the closure
        if is_model(name) and all(
            up in results or up not in in_plan or up in wave for up in assets[name].upstream
        ):
            wave.append(name)
    return wave


def _build_models(
    dr: driver.Driver,
    models: list[str],
    inputs: dict[str, Any],
    clear: Callable[[], None] = lambda: None,
    cancel: threading.Event | None = None,
) -> dict[str, AssetResult]:
    """Build `models` in one dbt invocation (once `clear` says the warehouse is free); one
    AssetResult per model. `cancel` set cancels the build through dbt: a model it had not
    finished is `cancelled` and its table is as it was before."""
    label = "dbt:" + ",".join(models) if len(models) <= 3 else f"dbt:{len(models)} models"
    started = time.monotonic()
    with asset_context(label):
        try:
            clear()
            dbt: DbtProject = dr.execute(["dbt_project"], inputs=inputs)["dbt_project"]
            report = dbt.build(models, full_refresh=inputs["full_refresh"], cancel=cancel)
            # The column lineage follows the project: computed again only when it changed.
            columns.refresh_after_build(dbt.settings)
        except DbtBuildFailed as failed:
            report = failed.report
        except DbtCancelled as cancelled:
            return {m: _cancelled_result(cancelled.report, m, started) for m in models}
        except Exception as exc:  # dbt could not run at all: every model failed the same way
            error = redact(describe(exc))
            log.error("dbt build failed: %s", error)
            seconds = time.monotonic() - started
            trace = redact(traceback.format_exc())
            return {
                m: AssetResult(m, "failed", seconds, error=error, traceback=trace) for m in models
            }
    return {name: _model_result(report, name) for name in models}


def _cancelled_result(report: DbtBuildReport, name: str, started: float) -> AssetResult:
    """A model of a cancelled build: built and tested before the cancel, or `cancelled` (its
    table as before, or built with its tests cut short: the next run builds and tests it)."""
    result = _model_result(report, name)
    if result.status == "success":
        return result
    what = "its tests did not finish" if result.status == "failed" else "it was not built"
    return AssetResult(name, "cancelled", time.monotonic() - started,
                       error=f"cancelled: dbt was stopped; {what}")  # fmt: skip


def _model_result(report: DbtBuildReport, name: str) -> AssetResult:
    nodes = report.for_model(name)
    own = next((n for n in nodes if n.resource_type == "model" and n.name == name), None)
    if own is None or own.status == "skipped":
        return AssetResult(
            name, "skipped", error="skipped by dbt: an upstream model or test failed"
        )
    bad = [n for n in nodes if n.failed]
    if not bad:
        return AssetResult(name, "success", own.seconds, report)
    detail = "; ".join(
        f"{n.resource_type} {n.name} {n.status}: "
        + (n.message.strip().splitlines()[0] if n.message.strip() else "")
        for n in bad
    )
    return AssetResult(name, "failed", own.seconds, report, error=f"{name}: {detail}")


def format_summary(results: list[AssetResult]) -> str:
    """The per-asset table printed at the end of a run; the dbt models a dbt build asset collects
    are in its line ("11/11 models built, 72/72 tests passed"), not a line each."""
    results = [r for r in results if r.part_of is None]
    width = max([len(r.name) for r in results] + [5])
    lines = [f"{'asset':<{width}}  {'status':<8} {'seconds':>8}  summary"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.status:<8} {r.seconds:>8.2f}  {r.summary}")
    failed = [r for r in results if not r.ok]
    lines.append(
        f"{len(results) - len(failed)} of {len(results)} assets succeeded"
        + (f"; failed or skipped: {', '.join(r.name for r in failed)}" if failed else "")
    )
    return "\n".join(lines)
