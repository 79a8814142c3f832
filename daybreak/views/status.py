"""Status data: the one answer to "what is the state of things?", read by every view.

`runner.py status [--json]`, the status page, `/api/status` and the lineage picture's colours all
come from here, so they cannot disagree. Everything is a query over the run history
(daybreak.runner.history), the freshness policies (daybreak.runner.freshness), the asset graph
and the warehouse lock: no state of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daybreak import clock
from daybreak.assets import catalogue
from daybreak.assets.catalogue import Asset
from daybreak.config import Settings
from daybreak.runner.freshness import freshness
from daybreak.runner.history import History, RunRecord
from daybreak.runner.instance import runner_state
from daybreak.runner.scheduler import schedule_of
from daybreak.warehouse import lock

# An asset's colour on the page and in the lineage picture.
COLOURS = ("success", "stale", "failed", "never")


def asset_states(
    settings: Settings, history: History, assets: dict[str, Asset], names: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per asset (all, or `names`): group, last success, freshness and the deadline it owes, its
    last attempt's status and error, and its colour: success (last attempt succeeded and fresh),
    stale (too old for its policy), failed (last attempt failed or was skipped), never."""
    chosen = list(names) or list(assets)
    last = history.last_attempts()
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
        found[name] = {
            "group": assets[name].group,
            "last_success": fresh.last_success if fresh else None,
            "freshness": fresh.state if fresh else "n/a",
            "deadline": fresh.deadline if fresh else None,
            "last_status": attempt["status"] if attempt else "never",
            "status": colour,
            "error": attempt["error"] if attempt and colour == "failed" else None,
        }
    return found


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
    }
    if run.status not in ("success", "running"):
        entry["failed_assets"] = [
            {"asset": a["asset"], "status": a["status"], "attempt": a["attempt"],
             "error": a["error"], "traceback": a["traceback"]}
            for a in history.attempts(run.run_id)
            if a["status"] in ("failed", "skipped", "interrupted")
        ]  # fmt: skip
    return entry


def jobs_data(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each job: what it selects, its schedule in words and its next run in the job's zone."""
    now = clock.now()
    listed: dict[str, dict[str, Any]] = {}
    for name, job in settings.jobs.items():
        schedule = schedule_of(job)
        listed[name] = {
            "description": job.description,
            "select": job.select,
            "cron": job.cron,
            "timezone": job.timezone if job.cron else None,
            "schedule": schedule.describe() if schedule else "not scheduled",
            "next_run": schedule.next_after(now).astimezone(schedule.zone).isoformat()
            if schedule else None,
        }  # fmt: skip
    return listed


def status_data(settings: Settings, recent_runs: int = 15) -> dict[str, Any]:
    """What `status --json`, the status page and /api/status show: jobs (schedule, next run, last
    result), every asset's state, recent runs with what failed and why, what is running, what
    waits to be retried (attempt n of m, the error, the next try), whether the runner is alive,
    and who holds or waits for the warehouse."""
    history = History(settings.state)
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
    assets = asset_states(settings, history, catalogue.catalogue(catalogue.build_driver(settings)))
    recent = history.runs(limit=recent_runs)
    running = [r.run_id for r in history.runs(limit=50) if r.status == "running"]
    return {
        "generated_at": clock.now().isoformat(timespec="seconds"),
        "jobs": jobs,
        "assets": assets,
        "recent_runs": [run_entry(history, r) for r in recent],
        "running": running,
        "retrying": history.retrying(),
        "runner": runner_state(settings.state),
        "warehouse_lock": lock.holder(settings.state),
        "waiting_for_warehouse": lock.waiting(settings.state),
        "warehouse_held_outside": lock.outside_holder(settings.state),
    }
