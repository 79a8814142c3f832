"""`runner.py why ASSET`: one sentence on why an asset is (not) current, and the chain behind it.

A query over the history, the graph and the state folder, nothing of its own. For an asset that
is not fresh it walks the lineage to the root cause and names what it finds, in this order:
- its own last attempt failed (the run, the error, the first error line of the run's log);
- bad files it quarantined (which, and what is wrong with each);
- an upstream asset that failed, found by walking up to where the failures start: what it
  blocked ("blocked by uk_products_sku");
- a scheduled tick of a job that builds it, missed or skipped (and whether the runner is down);
- a program outside daybreak holding the warehouse, or a daybreak writer waiting for it;
- never run, and which job would run it;
- the deadline it owes, and when the next run comes.
For a fresh asset: "fresh: run R succeeded at T", unless it is behind: fresh is not current. An
asset is behind when an asset upstream of it failed after its last build (what that upstream
should have brought is missing, and the bad files are named), or an ingestion asset upstream
took new files after its last build that have not reached it yet. For an asset built by an
arrival job, inputs not yet landed today are named with their usual time ("waiting for").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daybreak import clock
from daybreak.assets import catalogue
from daybreak.assets.catalogue import Asset
from daybreak.config import Settings
from daybreak.runner.freshness import Freshness, freshness
from daybreak.runner.history import History
from daybreak.runner.instance import runner_state
from daybreak.runner.scheduler import schedule_of
from daybreak.warehouse import lock

_PROBLEM_STATUSES = ("failed", "interrupted", "skipped", "cancelled")


@dataclass
class Cause:
    """One link of the chain: what, about which asset, with the evidence."""

    kind: str  # fresh | failed | quarantined | blocked | missed | skipped | runner_down | lock |
    #            never | stale | deadline | behind | waiting
    asset: str
    text: str
    run_id: str | None = None
    error: str | None = None
    log_line: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Why:
    asset: str
    state: str  # fresh | behind | stale | never | failed | blocked (skipped: an upstream failed)
    sentence: str
    chain: list[Cause]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _log_line(log_path: str | None, asset: str) -> str | None:
    """The first error line the asset wrote to the run's log."""
    if not log_path:
        return None
    try:
        with Path(log_path).open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if " ERROR " in line and f" {asset}: " in line:
                    return line.rstrip()[:500]
    except OSError:
        return None
    return None


def quarantined(settings: Settings, asset: str, limit: int = 20) -> list[dict[str, Any]]:
    """Bad files an ingestion asset quarantined and that are still bad: blob and problems."""
    folder = settings.state.quarantine / asset
    found: list[dict[str, Any]] = []
    for sidecar in sorted(folder.rglob("*.error.txt")) if folder.is_dir() else []:
        lines = sidecar.read_text(encoding="utf-8", errors="replace").splitlines()
        fields = dict(line.split(": ", 1) for line in lines if ": " in line and line[0] != " ")
        problems = [line.strip() for line in lines if line.startswith("  ")]
        found.append({
            "blob": fields.get("blob", sidecar.name.removesuffix(".error.txt")),
            "quarantined_at": fields.get("quarantined_at"),
            "problems": problems[:5],
        })  # fmt: skip
    found.sort(key=lambda f: str(f.get("quarantined_at")), reverse=True)
    return found[:limit]


def _jobs_that_run(settings: Settings, assets: dict[str, Asset], name: str) -> list[str]:
    found = []
    for job_name, job in settings.jobs.items():
        try:
            plan = catalogue.with_upstream(assets, catalogue.select(assets, job.select))
        except ValueError:
            continue  # a job with a bad selection is `check`'s business
        if name in plan:
            found.append(job_name)
    return found


def _attempt_cause(
    kind: str, asset: str, text: str, attempt: dict[str, Any], history: History
) -> Cause:
    """A cause backed by an attempt: its run, its error, the first error line of its log."""
    run = history.run(attempt["run_id"])
    return Cause(
        kind, asset, text, run_id=attempt["run_id"], error=_first_line(attempt["error"]),
        log_line=_log_line(run.log_path if run else None, asset),
    )  # fmt: skip


def _quarantine_cause(asset: str, files: list[dict[str, Any]], text: str) -> Cause:
    first = f"{files[0]['blob']} ({'; '.join(files[0]['problems'][:2])})"
    return Cause("quarantined", asset, f"{text}: {first}", files=files)


def explain(
    settings: Settings,
    history: History,
    assets: dict[str, Asset],
    name: str,
    *,
    states: dict[str, Freshness] | None = None,
    last: dict[str, dict[str, Any]] | None = None,
) -> Why:
    """Why `name` is in the state it is in (see the module docstring). `states` (freshness by
    asset) and `last` (last attempts) may be passed by a caller that explains many assets."""
    if states is None:
        states = {f.asset: f for f in freshness(settings, history, assets=list(assets))}
    last = history.last_attempts() if last is None else last
    state = states[name]
    attempt = last.get(name)
    chain: list[Cause] = []
    if attempt and attempt["status"] in _PROBLEM_STATUSES:  # the last run did not make it
        shown = {"skipped": "blocked", "cancelled": "cancelled"}.get(attempt["status"], "failed")
    else:
        shown = state.state
    if state.state == "fresh" and shown == "fresh":
        succeeded = _run_of_success(history, name)
        lagging = behind(settings, history, assets, name, last=last)
        waiting = _waiting(settings, history, assets, name)
        if lagging:
            by = f" by its {state.deadline} deadline" if state.deadline else ""
            head = lagging[0]
            text = f"{name} is fresh{by}, but behind: {head.text}"
            return Why(name, "behind", text, [*lagging, *waiting])
        text = f"{name} is fresh: run {succeeded} succeeded at {state.last_success}"
        if state.deadline:
            text += f" (it owed data by {state.deadline})"
        return Why(name, "fresh", text, [Cause("fresh", name, text, run_id=succeeded), *waiting])

    # Its own failure, and the bad files behind it.
    if attempt and attempt["status"] in ("failed", "interrupted"):
        text = f"its last attempt {attempt['status']} in run {attempt['run_id']}"
        chain.append(_attempt_cause("failed", name, text, attempt, history))
    if attempt and attempt["status"] == "cancelled":
        run = history.run(attempt["run_id"])
        by = (f" by {run.cancel_requested_by} at {run.cancel_requested_at}"
              if run is not None and run.cancel_requested_at else "")  # fmt: skip
        chain.append(Cause("cancelled", name, f"run {attempt['run_id']} was cancelled{by} "
                           f"before {name} was built", run_id=attempt["run_id"]))  # fmt: skip
    files = quarantined(settings, name)
    if files:
        text = f"{len(files)} bad file(s) in quarantine, tried again on every run until fixed"
        chain.append(_quarantine_cause(name, files, f"{text} upstream"))

    # Upstream: where the failures start.
    roots = _failed_roots(assets, last, name)
    for root in roots:
        failed = last[root]
        text = (f"blocked by {root}, which {failed['status']} in run {failed['run_id']}: "
                f"{_first_line(failed['error'])}")  # fmt: skip
        chain.append(_attempt_cause("blocked", root, text, failed, history))
        more = quarantined(settings, root)
        if more:
            chain.append(_quarantine_cause(root, more, f"{root} quarantined"))

    # Ticks of the jobs that would run it.
    jobs = _jobs_that_run(settings, assets, name)
    runner = runner_state(settings.state)
    for job in jobs:
        for tick in history.ticks(job, limit=5):
            if tick["outcome"] in ("missed", "skipped"):
                chain.append(Cause(
                    tick["outcome"], name, f"job {job}'s tick at {tick['scheduled_for']} was "
                    f"{tick['outcome']}"
                    + (" (the runner was not running)" if tick["outcome"] == "missed" else
                       " (the job's previous run was still going)"),
                ))  # fmt: skip
                break
    if jobs and not runner.get("alive") and any(settings.jobs[j].cron for j in jobs):
        seen = runner.get("last_seen")
        down = f" (last seen {seen})" if seen else " and has never run here"
        chain.append(Cause("runner_down", name, "the runner is not running" + down))

    # The warehouse, held.
    if assets[name].tags.get("dbt_duckdb") == "true" or assets[name].tags.get("kind") in (
        "dbt_model",
        "dbt_build",
    ):
        outside = lock.outside_holder(settings.state)
        if outside:
            chain.append(Cause("lock", name, f"the warehouse is held by "
                               f"{outside.get('program')} (pid {outside.get('pid')}) outside "
                               f"daybreak since {outside.get('since')}"))  # fmt: skip

    if attempt is None and not roots:
        where = f"; job {', '.join(jobs)} would run it" if jobs else "; no job runs it"
        chain.append(Cause("never", name, f"{name} has never been built{where}"))
    elif state.state == "stale" and not chain:
        chain.append(Cause("stale", name, f"its last success ({state.last_success}) is older "
                           "than its freshness policy allows"))  # fmt: skip
    chain += _waiting(settings, history, assets, name)
    if state.deadline:
        upcoming = _next_run(settings, jobs)
        chain.append(Cause("deadline", name, f"it owes data by {state.deadline}"
                           + (f"; next run {upcoming}" if upcoming else "")))  # fmt: skip
    return Why(name, shown, _sentence(name, shown, chain), chain)


def behind(
    settings: Settings, history: History, assets: dict[str, Asset], name: str,
    *, last: dict[str, dict[str, Any]] | None = None, built: dict[str, int] | None = None,
    reports: dict[str, Any] | None = None,
) -> list[Cause]:  # fmt: skip
    """What `name` lacks although it may be fresh (see the module docstring): upstream assets
    that failed after its last build, and ingestion upstream with new files since it."""
    last = history.last_attempts() if last is None else last
    built = history.success_order() if built is None else built
    mine = built.get(name)
    if mine is None:
        return []
    found: list[Cause] = []
    newer: list[str] = []
    for up in catalogue.with_upstream(assets, [name]):
        if up == name:
            continue
        attempt = last.get(up)
        if attempt and attempt["status"] in ("failed", "interrupted") and (
                attempt.get("finished_seq") or 0) > mine:  # fmt: skip
            files = quarantined(settings, up)
            said = (f"{files[0]['blob'].rsplit('/', 1)[-1]} quarantined: "
                    f"{'; '.join(files[0]['problems'][:1])}"
                    if files else _first_line(attempt["error"]))  # fmt: skip
            text = (f"{up} {attempt['status']} at {attempt['ended_at']} ({said}), so {name} "
                    "lacks it")  # fmt: skip
            cause = _attempt_cause("behind", up, text, attempt, history)
            cause.files = files
            found.append(cause)
        elif assets[up].tags.get("kind") == "ingestion" and built.get(up, 0) > mine:
            reports = history.last_reports() if reports is None else reports
            report = reports.get(up)
            took = report.get("files_synced", 1) + report.get("files_deleted", 0) if isinstance(
                report, dict) else 1  # fmt: skip
            if took:
                newer.append(up)
    if newer:
        found.append(Cause("behind", name, f"{', '.join(newer)} took new files since {name} "
                           "was last built; they have not reached it yet"))  # fmt: skip
    return found


def _waiting(
    settings: Settings, history: History, assets: dict[str, Asset], name: str
) -> list[Cause]:
    """Inputs of an arrival job that builds `name` still to land today, with their usual time."""
    from daybreak.runner.eta import job_eta, waiting_for

    upstream = set(catalogue.with_upstream(assets, [name]))
    found = []
    for job_name in _jobs_that_run(settings, assets, name):
        job = settings.jobs[job_name]
        if not job.on_arrival:
            continue
        eta = job_eta(settings, history, job_name, with_deadline=False)
        eta.inputs = [i for i in eta.inputs if i.asset in upstream]
        for text in waiting_for(eta):
            asset = text.split()[2]
            found.append(Cause("waiting", asset, f"{text}; job {job_name} runs when it lands"))
    return found


def _sentence(name: str, state: str, chain: list[Cause]) -> str:
    said = {"failed": f"{name} failed", "blocked": f"{name} is blocked",
            "never": f"{name} has never been built"}.get(state, f"{name} is {state}")  # fmt: skip
    head = next((c for c in chain if c.kind != "deadline"), None)
    if head is None:
        return f"{said}."
    if head.kind == "never":  # its text says it all
        return f"{head.text}."
    detail = f" ({head.error})" if head.kind == "failed" and head.error else ""
    return f"{said}: {head.text}{detail}."


def _run_of_success(history: History, name: str) -> str | None:
    for attempt in history.asset_attempts(name, limit=20):
        if attempt["status"] == "success":
            return str(attempt["run_id"])
    return None


def _failed_roots(
    assets: dict[str, Asset], last: dict[str, dict[str, Any]], name: str
) -> list[str]:
    """Upstream assets whose last attempt failed while their own upstream did not."""
    roots: list[str] = []
    seen: set[str] = set()
    stack = list(assets[name].upstream)
    while stack:
        up = stack.pop()
        if up in seen:
            continue
        seen.add(up)
        bad = up in last and last[up]["status"] in _PROBLEM_STATUSES
        upstream_bad = [
            u for u in assets[up].upstream if u in last and last[u]["status"] in _PROBLEM_STATUSES
        ]
        if bad and not upstream_bad and last[up]["status"] != "skipped":
            roots.append(up)
        stack.extend(assets[up].upstream)
    return [a for a in assets if a in roots]


def _next_run(settings: Settings, jobs: list[str]) -> str | None:
    now = clock.now()
    upcoming: list[dt.datetime] = []
    for job in jobs:
        schedule = schedule_of(settings.jobs[job])
        if schedule is not None:
            upcoming.append(schedule.next_after(now).astimezone(schedule.zone))
    return min(upcoming).isoformat() if upcoming else None
