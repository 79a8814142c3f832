"""One run of a selection of assets: recorded, logged to its own file, never raising for assets.

The CLI (`runner.py run` / `materialize`) and the scheduler both start runs here, so a run looks
the same in the history whatever started it. Whatever else watches a run (the Hamilton UI mirror)
attaches as a RunObserver: the runner knows the protocol, not the views that implement it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hamilton import driver

from daybreak.assets import catalogue
from daybreak.assets.dbt_models import DBT_BUILD_KIND, MODEL_KIND
from daybreak.config import Settings
from daybreak.errors import describe
from daybreak.ingest import demo
from daybreak.logs import redact
from daybreak.runner import recovery
from daybreak.runner.alerts import Alerter, alert_urls
from daybreak.runner.cancel import CancelWatch, cancelled_error
from daybreak.runner.engine import LocalEngine, open_engine
from daybreak.runner.history import History, RunRecord
from daybreak.runner.materialize import AssetResult, RunContext, materialize, run_inputs
from daybreak.runner.plan import code_versions, make_plan
from daybreak.warehouse.dbt_project import DbtProject

log = logging.getLogger(__name__)


class RunObserver(Protocol):
    """Something that follows a run as the history records it (e.g. the Hamilton UI mirror)."""

    def run_started(self) -> None: ...

    def attempt_recorded(self, asset: str, attempt: int) -> None: ...

    def run_finished(self, status: str) -> None: ...


# Given the settings, the history, the run's graph and its record, an observer for the run.
ObserverFactory = Callable[[Settings, History, driver.Driver, RunRecord], RunObserver]


@dataclass
class RunOutcome:
    """How a run ended."""

    run_id: str
    status: str  # success | failed | interrupted
    log_path: Path
    results: list[AssetResult] = field(default_factory=list)
    error: str | None = None
    # What failed the run before or around its assets (a bad name, dbt that does not parse).
    exception: BaseException | None = field(default=None, repr=False)


def rerun_selection(
    history: History, assets: dict[str, Any], run: RunRecord, *, from_failure: bool
) -> list[str]:
    """What a rerun of `run` runs: its whole plan, or (from_failure) the assets that failed,
    were skipped or never got to run, and what is downstream of them in that plan."""
    plan = [a for a in run.selection if a in assets]
    if not from_failure:
        return plan
    latest: dict[str, str] = {}
    for attempt in history.attempts(run.run_id):
        latest[attempt["asset"]] = attempt["status"]
    # Up to date by the run's plan, so not run then: not a failure either.
    for step in json.loads(run.plan) if run.plan else []:
        if not step["run"]:
            latest.setdefault(step["asset"], "fresh")
    bad = [a for a in plan if latest.get(a, "never") not in ("success", "fresh")]
    below = set(catalogue.downstream_of(assets, bad)) if bad else set()
    return [a for a in plan if a in below]


def execute_run(
    settings: Settings,
    selection: list[str],
    *,
    job: str | None = None,
    trigger: str = "manual",
    scheduled_for: dt.datetime | None = None,
    full_refresh: bool = False,
    stop: threading.Event | None = None,
    history: History | None = None,
    observers: Sequence[ObserverFactory] = (),
    rerun_of: str | None = None,
    window: tuple[dt.date, dt.date] | None = None,
    part_of: str | None = None,
    trigger_detail: dict[str, Any] | None = None,
    origin: str | None = None,
    on_start: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run `selection` (assets or groups) with the upstream assets it needs, and record it.

    The run is recorded before anything that can fail: building the graph (dbt's parse
    included), resolving the selection, the observers. Whatever fails, the run ends `failed` with
    its error and traceback in the history, and a job's failure is alerted; the exception is on
    the outcome (`error_kind` says whether it was a bad name or config), never raised, except
    Ctrl-C, which is recorded as `interrupted` and raised.

    `trigger_detail` says more of what started it (an arrival run: the files, what is missing).
    `window` and `part_of` make the run a chunk of a backfill (daybreak.runner.backfill): its
    syncs re-sync the dated files of those days, and the history lists it under the backfill.
    `origin` says who asked for it (the CLI, the page and its client). A cancel asked for it (or
    for its backfill) stops it at the next safe point and ends it `cancelled` (daybreak.runner.
    cancel); `stop` (the runner stopping) ends it `interrupted`.
    """
    history = history or History(settings.state)
    run_id = history.start_run(
        selection, job=job, trigger=trigger, scheduled_for=scheduled_for, rerun_of=rerun_of,
        part_of=part_of, trigger_detail=trigger_detail, origin=origin,
    )  # fmt: skip
    if on_start is not None:  # e.g. the page, which shows the run it started
        on_start(run_id)
    status, error, trace, results = "failed", None, None, []
    failure: BaseException | None = None
    watching: list[RunObserver] = []
    watch = CancelWatch(history, [run_id, part_of], outer=stop)
    with history.run_log(run_id) as log_path, watch:
        try:
            dr = catalogue.build_driver(settings)
            assets = catalogue.catalogue(dr)
            plan = catalogue.with_upstream(assets, catalogue.select(assets, selection))
            history.set_selection(run_id, plan)
            inputs = {"settings": settings, **run_inputs(full_refresh=full_refresh, window=window)}
            recovery.reap(settings, history)  # what a killed process left running
            recovery.warehouse(settings)  # a warehouse that no longer opens: before the plan
            # The plan: what is up to date is not run (runner.py plan shows the same decision).
            versions = code_versions(settings, dr, assets)
            steps = make_plan(
                settings, dr, assets, selection, history, inputs, full_refresh=full_refresh,
                versions=versions,
            )  # fmt: skip
            history.set_plan(run_id, [s.as_json() for s in steps])
            todo = [s.asset for s in steps if s.run]
            if any(assets[a].tags.get("kind") in (MODEL_KIND, DBT_BUILD_KIND) for a in todo):
                DbtProject(settings).parse_ahead()  # while the syncs run
            log.info("run %s started (%s%s): %s", run_id, trigger, f", job {job}" if job else "",
                     ", ".join(todo) or "nothing: all up to date")  # fmt: skip
            last_success = history.last_success()
            current = {s.asset: last_success.get(s.asset, "") for s in steps if not s.run}
            record = history.run(run_id)
            assert record is not None
            for factory in observers:
                observer = factory(settings, history, dr, record)
                observer.run_started()
                watching.append(observer)
            demo.ensure_demo_data(settings)

            def recorded(asset: str, attempt: int) -> None:
                for observer in watching:
                    observer.attempt_recorded(asset, attempt)

            engine = open_engine(settings) if todo else LocalEngine()
            ctx = RunContext(
                history, run_id, settings.retries, watch.stop, cancel=watch.cancel,
                concurrency=settings.concurrency, layout=settings.state, on_recorded=recorded,
                settings=settings, versions=versions, engine=engine,
            )  # fmt: skip
            try:
                results = materialize(dr, assets, plan, inputs, ctx, fresh=current)
            finally:
                engine.close()
            alerter = Alerter(settings.state, alert_urls(settings))
            for result in results:  # the volume check's findings, alerted once per file
                for warning in getattr(result.value, "volume_warnings", None) or []:
                    alerter.volume(result.name, warning)
            bad = [r for r in results if not r.ok]
            status = "success" if not bad else "failed"
            error = f"{bad[0].name}: {bad[0].summary}" if bad else None
            asked = watch.check() if bad else None
            if asked is not None:
                status, error = "cancelled", cancelled_error(asked)
            elif bad and watch.stop.is_set():
                status = "interrupted"
        except KeyboardInterrupt:  # recorded, then Ctrl-C goes on up
            status, error = "interrupted", "interrupted (Ctrl-C)"
            raise
        except Exception as exc:  # before or around the assets: still a recorded, alerted run
            failure = exc
            status, error = "failed", redact(describe(exc))
            trace = redact(traceback.format_exc())
            log.error("run %s failed before its assets could run: %s", run_id, error)
        finally:
            history.finish_run(run_id, status, error, trace)
            for observer in watching:
                observer.run_finished(status)
            log.info("run %s %s", run_id, status)
            Alerter(settings.state, alert_urls(settings)).run_finished(
                job, run_id, status, error, log_path
            )
    return RunOutcome(run_id, status, log_path, results, error, failure)
