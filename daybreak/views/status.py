"""Status data: the one answer to "what is the state of things?", read by every view.

`runner.py status [--json]`, the status page, `/api/status` and the lineage picture's colours all
come from here, so they cannot disagree. Everything is a query over the run history
(daybreak.runner.history), the freshness policies (daybreak.runner.freshness), the asset graph
and the warehouse lock: no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from daybreak import clock
from daybreak.assets import catalogue
from daybreak.assets.catalogue import Asset
from daybreak.assets.columns import ColumnGraph
from daybreak.config import Settings
from daybreak.errors import UnknownNameError
from daybreak.runner import backfill, recovery
from daybreak.runner.eta import job_eta
from daybreak.runner.freshness import freshness
from daybreak.runner.history import History, RunRecord
from daybreak.runner.instance import runner_state
from daybreak.runner.scheduler import schedule_of
from daybreak.runner.why import behind, explain
from daybreak.warehouse import lock

# An asset's colour on the page and in the lineage picture.
COLOURS = ("success", "behind", "stale", "failed", "never")


def asset_states(
    settings: Settings, history: History, assets: dict[str, Asset], names: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per asset (all, or `names`): group, last success, freshness and the deadline it owes, its
    last attempt's status and error, and its colour: success (last attempt succeeded and fresh),
    behind (fresh, but what is upstream failed or has newer files since: `behind` says what),
    stale (too old for its policy), failed (last attempt failed or was skipped), never."""
    chosen = list(names) or list(assets)
    last = history.last_attempts()
    built = history.success_order()
    reports = history.last_reports()
    states = {f.asset: f for f in freshness(settings, history, assets=chosen)}
    found: dict[str, dict[str, Any]] = {}
    for name in chosen:
        attempt = last.get(name)
        fresh = states.get(name)
        if attempt is None:
            colour = "never"
        elif attempt["status"] not in ("success", "fresh"):
            colour = "failed"
        elif fresh is not None and fresh.state != "fresh":
            colour = "stale"
        else:
            colour = "success"
        lagging = behind(settings, history, assets, name, last=last, built=built,
                         reports=reports) if colour == "success" else []  # fmt: skip
        if lagging:
            colour = "behind"
        found[name] = {
            "group": assets[name].group,
            "last_success": fresh.last_success if fresh else None,
            "freshness": fresh.state if fresh else "n/a",
            "deadline": fresh.deadline if fresh else None,
            "last_status": attempt["status"] if attempt else "never",
            "status": colour,
            "error": attempt["error"] if attempt and colour == "failed" else None,
            "behind": [c.text for c in lagging],
        }
    return found


def rows_written(report: Any, asset: str) -> int | None:
    """The rows an attempt wrote, from the report the history keeps (a sync, a model, an
    export, the budget); None where the report says nothing of rows."""
    if not isinstance(report, dict):
        return None
    if isinstance(report.get("rows_loaded"), int):
        return int(report["rows_loaded"])
    rows = report.get("rows")
    if isinstance(rows, int):
        return rows
    if isinstance(rows, dict):
        return sum(v for v in rows.values() if isinstance(v, int))
    for node in _nodes(report):
        if node.get("name") == asset and node.get("resource_type") == "model":
            return node.get("rows")
    return None


def _nodes(report: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = report.get("nodes")
    return [n for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []


def checks_of(report: Any, asset: str) -> list[dict[str, Any]]:
    """An asset's checks: the volume check's warnings (a sync), a model's dbt tests (pass, warn,
    fail, error, with the failing rows)."""
    if not isinstance(report, dict):
        return []
    volume = [
        {"check": "volume", "status": "warn", "failing_rows": None, "message": warning}
        for warning in report.get("volume_warnings") or []
    ]
    return volume + [
        {"check": n["name"], "status": n["status"], "failing_rows": n.get("failures"),
         "message": n.get("message") if n["status"] != "pass" else None}
        for n in _nodes(report)
        if n.get("attached_to") == asset and n.get("resource_type") in ("test", "unit_test")
    ]  # fmt: skip


def asset_page(settings: Settings, name: str, limit: int = 60) -> dict[str, Any]:
    """One asset's own page (`history --asset`, /assets/NAME): its runs with status, duration and
    rows written, its checks, its last error, why it is in its state, its neighbours."""
    history = History(settings.state)
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    if name not in assets:
        raise UnknownNameError(f"unknown asset {name!r} (see `runner.py assets`)")
    attempts = history.asset_attempts(name, limit=limit)
    runs = []
    for a in attempts:
        report = json.loads(a["report"]) if a["report"] else None
        runs.append({
            "run_id": a["run_id"], "job": a["job"], "trigger": a["trigger"],
            "attempt": a["attempt"], "status": a["status"], "started_at": a["started_at"],
            "ended_at": a["ended_at"], "seconds": a["seconds"],
            "rows": rows_written(report, name), "error": a["error"],
            "worker": a.get("worker"),  # the Dask worker that ran it ([engine]), else None
        })  # fmt: skip
    last_with_report = next((a for a in attempts if a["report"]), None)
    checks = checks_of(json.loads(last_with_report["report"]), name) if last_with_report else []
    last_error = next((a for a in attempts if a["error"]), None)
    return {
        "asset": name,
        "group": assets[name].group,
        "description": assets[name].description,
        "upstream": list(assets[name].upstream),
        "downstream": [a for a in catalogue.downstream_of(assets, [name]) if a != name],
        "state": asset_states(settings, history, assets, [name])[name],
        "why": explain(settings, history, assets, name).as_json(),
        "checks": checks,
        "last_error": {"run_id": last_error["run_id"], "error": last_error["error"]}
        if last_error else None,
        "runs": runs,
        "columns": asset_columns(settings, name),
    }  # fmt: skip


def asset_columns(settings: Settings, name: str) -> dict[str, Any]:
    """The column lineage of the tables an asset owns (a sync: its landing file and lake
    table; a model; an export: its extract), each column with what it comes from and what
    uses it; {"error": ...} when the lineage cannot be computed (the page shows the rest)."""
    from daybreak.assets import columns

    try:
        graph = columns.load(settings)
    except columns.ColumnLineageUnavailable as exc:  # the page shows the rest
        return {"error": f"column lineage unavailable: {exc}", "tables": []}
    tables = []
    for table, entry in graph.columns_of(name):
        tables.append({
            "table": table, "kind": entry["kind"], "description": entry["description"],
            "columns": [
                {"column": column, "name": f"{table}.{column}", "type": info["type"],
                 "description": info["description"], "inputs": info["inputs"],
                 "outputs": graph.outputs(f"{table}.{column}"),
                 **({"constant": info["constant"]} if "constant" in info else {})}
                for column, info in entry["columns"].items()
            ],
            "indirect": entry.get("indirect", []),
        })  # fmt: skip
    gaps = [g for g in graph.gaps if g["table"] in {t["table"] for t in tables}]
    return {"tables": tables, "gaps": gaps}


def column_page(graph: ColumnGraph, name: str) -> dict[str, Any]:
    """One column's lineage both ways (/columns/NAME.COLUMN, /api/columns/NAME.COLUMN), in the
    OpenLineage-like shape of `runner.py lineage --json`. UnknownNameError if there is none."""
    up, down = graph.upstream(name), graph.downstream(name)
    return {"column": up["column"], "upstream": graph.openlineage(up),
            "downstream": graph.openlineage(down)}  # fmt: skip


def run_entry(history: History, run: RunRecord) -> dict[str, Any]:
    """One run as the views show it; a run that did not succeed lists what failed, and why."""
    entry: dict[str, Any] = {
        "run_id": run.run_id,
        "job": run.job,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "seconds": run.seconds,
        "error": run.error,
        "trigger_detail": run.detail or None,  # an arrival run: its files, what was missing
        "origin": run.origin,  # who started it by hand: the CLI or the page, and from where
        "cancel_requested_at": run.cancel_requested_at,
        "cancel_requested_by": run.cancel_requested_by,
        "rerun_of": run.rerun_of,
    }
    if run.status not in ("success", "running"):
        # A backfill's assets ran in its chunks: what failed is in the chunk that stopped it.
        stopped = [r.run_id for r in history.runs(part_of=run.run_id, limit=5)
                   if r.status != "success"][:1]  # fmt: skip
        parts = [run.run_id, *stopped]
        entry["failed_assets"] = [
            {"asset": a["asset"], "status": a["status"], "attempt": a["attempt"],
             "error": a["error"], "traceback": a["traceback"]}
            for part in parts for a in history.attempts(part)
            if a["status"] in ("failed", "skipped", "interrupted", "cancelled")
        ]  # fmt: skip
    return entry


def jobs_data(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each job: what it selects, its schedule in words and its next run in the job's zone."""
    now = clock.now()
    listed: dict[str, dict[str, Any]] = {}
    for name, job in settings.jobs.items():
        schedule = schedule_of(job)
        said = [schedule.describe()] if schedule else []
        if job.on_arrival:
            said.append(f"on arrival of {job.wait} of {', '.join(job.on_arrival)} (waits "
                        f"{job.window}, latest {job.latest_time}, {job.timezone})")  # fmt: skip
        listed[name] = {
            "description": job.description,
            "select": job.select,
            "cron": job.cron,
            "on_arrival": job.on_arrival,
            "timezone": job.timezone if job.cron or job.on_arrival else None,
            "schedule": "; ".join(said) or "not scheduled",
            "next_run": schedule.next_after(now).astimezone(schedule.zone).isoformat()
            if schedule else None,
        }  # fmt: skip
    return listed


def status_data(settings: Settings, recent_runs: int = 15) -> dict[str, Any]:
    """What `status --json`, the status page and /api/status show: jobs (schedule, next run, last
    result), every asset's state, recent runs with what failed and why, what is running, what
    waits to be retried (attempt n of m, the error, the next try), each arrival job's inputs today
    and when it is expected current (daybreak.runner.eta), whether the runner is alive,
    and who holds or waits for the warehouse."""
    history = History(settings.state)
    recovery.reap(settings, history)  # what a dead process left running shows as interrupted
    jobs = {}
    for name, job in jobs_data(settings).items():
        last = next(iter(history.runs(job=name, limit=1)), None)
        jobs[name] = {
            "schedule": job["schedule"],
            "next_run": job["next_run"],
            "last_run": last.run_id if last else None,
            "last_status": last.status if last else "never",
            "last_started": last.started_at if last else None,
            "last_seconds": last.seconds if last else None,
            "last_error": last.error if last else None,
        }
    graph = catalogue.catalogue(catalogue.build_driver(settings))
    assets = asset_states(settings, history, graph)
    states = {f.asset: f for f in freshness(settings, history, assets=list(graph))}
    attempts = history.last_attempts()  # read once for every asset's why, not once per asset
    reports = history.last_reports()
    for name, state in assets.items():  # a model's dbt tests, as its checks
        found = checks_of(reports.get(name), name)
        if found:
            counts = {
                s: sum(1 for c in found if c["status"] == s) for s in ("pass", "warn", "fail")
            }
            bad = [c for c in found if c["status"] not in ("pass", "success")]
            state["checks"] = {**counts, "not_passing": bad}
    for name, state in assets.items():  # what is not current says why, in one sentence
        if state["status"] != "success":
            state["why"] = explain(
                settings, history, graph, name, states=states, last=attempts
            ).sentence
    recent = history.runs(limit=recent_runs)
    running = [r.run_id for r in history.runs(limit=50) if r.status == "running"]
    arrivals = {name: job_eta(settings, history, name, assets=graph).as_json()
                for name, job in settings.jobs.items() if job.on_arrival}  # fmt: skip
    return {
        "generated_at": clock.now().isoformat(timespec="seconds"),
        "jobs": jobs,
        "assets": assets,
        "recent_runs": [run_entry(history, r) for r in recent],
        "running": running,
        "retrying": history.retrying(),
        "backfills": [p.as_json() for p in backfill.recent(history)],
        "arrivals": arrivals,
        "runner": runner_state(settings.state),
        "warehouse_lock": lock.holder(settings.state),
        "waiting_for_warehouse": lock.waiting(settings.state),
        "warehouse_held_outside": lock.outside_holder(settings.state),
        "actions": history.actions(limit=10),  # run, rerun, backfill, cancel: who asked, how
    }
