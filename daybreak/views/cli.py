"""`runner.py`'s command line: the scheduler (no command), runs, and what happened.

Exit codes: 0 success; 1 an asset failed or was skipped; 2 bad config, arguments or names.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from daybreak.assets import catalogue
from daybreak.config import JobConfig, Settings, load_settings
from daybreak.errors import ConfigError, UnknownNameError, UnknownRunError, UsageError
from daybreak.files import write_atomic
from daybreak.logs import current_run, make_handler, redact, setup_logging
from daybreak.runner import actions, recovery
from daybreak.runner.backfill import backfill
from daybreak.runner.check import check
from daybreak.runner.execute import ObserverFactory, execute_run, rerun_selection
from daybreak.runner.heartbeat import Heartbeat
from daybreak.runner.history import History
from daybreak.runner.instance import RunnerInstance
from daybreak.runner.materialize import format_summary, run_inputs
from daybreak.runner.plan import make_plan
from daybreak.runner.scheduler import Scheduler
from daybreak.runner.why import explain
from daybreak.views import lineage, live
from daybreak.views.status import asset_page, asset_states, jobs_data, status_data

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Commands that show runs: each first ends what a dead process left running (runner.recovery).
_READS_HISTORY = frozenset({"status", "history", "why", "logs", "eta", "plan", "lineage"})
RUNNER_LOG_BYTES, RUNNER_LOG_FILES = 5_000_000, 5  # the runner's own log: at most 30 MB


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default: $DAYBREAK_CONFIG, else ./daybreak.toml)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runner.py", description="daybreak: run data assets and jobs, and show what exists."
    )
    _common(parser)
    parser.add_argument(
        "--grace", type=float, default=60.0, metavar="SECONDS",
        help="on stop, how long running jobs may finish (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--no-web", action="store_true",
        help="do not serve the status page (default: on [web] host and port, 127.0.0.1:8250)",
    )  # fmt: skip
    parser.set_defaults(handler=_serve)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND",
        description="without a command, runs the scheduler until Ctrl-C or SIGTERM",
    )  # fmt: skip

    p = sub.add_parser("materialize", help="run assets once, with the upstream assets they need")
    _common(p)
    p.add_argument("assets", nargs="+", metavar="ASSET", help="asset or group names")
    p.add_argument("--full", action="store_true", help="full refresh: resync the whole history")
    p.set_defaults(handler=_materialize)

    p = sub.add_parser("run", help="run a job (a named selection of assets) now")
    _common(p)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--full", action="store_true", help="full refresh: resync the whole history")
    p.set_defaults(handler=_run_job)

    p = sub.add_parser(
        "backfill", help="re-sync a range of days of a job's files and rebuild what they reach, "
        "in chunks; given again after a kill, it resumes"
    )  # fmt: skip
    _common(p)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--start", required=True, type=_day, metavar="YYYY-MM-DD", help="first day")
    p.add_argument("--end", required=True, type=_day, metavar="YYYY-MM-DD", help="last day")
    p.add_argument("--chunk-days", type=int, default=7, metavar="N",
                   help="days per chunk (default 7)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_backfill)

    p = sub.add_parser(
        "cancel", help="stop a running run (or backfill) at its next safe point: between assets, "
        "between backfill chunks, or inside dbt through dbt's own cancellation"
    )  # fmt: skip
    _common(p)
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_cancel)

    p = sub.add_parser(
        "plan", help="what `run` would do now and why, asset by asset, without running anything"
    )
    _common(p)
    p.add_argument("names", nargs="+", metavar="JOB|ASSET", help="a job, or asset or group names")
    p.add_argument("--full", action="store_true", help="as for a full refresh")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_plan)

    p = sub.add_parser(
        "eta", help="an arrival job today: which inputs landed, which are late, when the data "
        "is expected current, against its deadline"
    )  # fmt: skip
    _common(p)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_eta)

    p = sub.add_parser("assets", help="list every asset with its group and upstream assets")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_assets)

    p = sub.add_parser("jobs", help="the jobs: schedule in words and next run in the job's zone")
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_jobs)

    p = sub.add_parser(
        "status", help="per job: last run, result, next run; per asset: last success"
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)

    p = sub.add_parser("history", help="recent runs, newest first")
    _common(p)
    p.add_argument("--job", help="only this job's runs")
    p.add_argument("--asset", help="one asset's own history: its runs, rows, checks, last error")
    p.add_argument("--actions", action="store_true",
                   help="the actions asked of daybreak (run, rerun, backfill, cancel) from the "
                   "CLI and the page: who, from where, what came of it")  # fmt: skip
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_history)

    p = sub.add_parser(
        "why", help="why an asset is (not) current: one sentence and the chain behind it"
    )
    _common(p)
    p.add_argument("asset", metavar="ASSET")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_why)

    p = sub.add_parser(
        "rerun", help="run a run again; --from-failure: only what failed or was skipped, and "
        "what is downstream of it"
    )  # fmt: skip
    _common(p)
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--from-failure", action="store_true", help="only the failed and skipped "
                   "assets and their downstream, not what succeeded")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_rerun)

    p = sub.add_parser(
        "lineage",
        help="draw the asset graph (SVG or PNG), grouped by group, coloured by last status; "
        "or trace a column: --column NAME.COLUMN (upstream to the landing CSV columns), "
        "--downstream NAME.COLUMN (every model column and extract field it reaches)",
    )
    _common(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--job", help="only this job's assets and the upstream they need")
    which.add_argument("--asset", help="only this asset and its neighbours (see --upstream)")
    which.add_argument(
        "--column",
        metavar="NAME.COLUMN",
        help="a column's lineage upstream, e.g. executive_daily_sales.net_sales_gbp",
    )
    p.add_argument(
        "--upstream",
        nargs="?",
        const=True,
        default=False,
        metavar="NAME.COLUMN",
        help="with --asset: what it depends on; with a column: what makes it",
    )
    p.add_argument(
        "--downstream",
        nargs="?",
        const=True,
        default=False,
        metavar="NAME.COLUMN",
        help="with --asset: what depends on it; with a column (e.g. "
        "uk_orders_azure.discount): every column and extract field it reaches",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="a column's lineage as JSON, close to OpenLineage's column-lineage facet",
    )
    p.add_argument(
        "-o", "--output", type=Path, metavar="FILE",
        help="where to write; .svg or .png (default: <exports>/lineage.svg); with a column, "
        "the picture of its path",
    )  # fmt: skip
    p.set_defaults(handler=_lineage)

    p = sub.add_parser(
        "ui",
        help="serve the Hamilton UI on loopback (store in <state>/hamilton-ui) and send it the "
        "recent runs it has not seen",
    )
    _common(p)
    p.add_argument("--port", type=int, help="port (default: [ui] port, 8241)")
    p.set_defaults(handler=_ui)

    p = sub.add_parser("logs", help="a run's log and its asset attempts")
    _common(p)
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(handler=_logs)

    p = sub.add_parser(
        "check",
        help="check everything a scheduled run depends on (config, secrets, jobs, dbt, exports, "
        "schedules) without running anything; exit 2 naming each problem",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_check)

    p = sub.add_parser(
        "service",
        help="start the runner at boot or logon and after a crash: a Windows Task Scheduler "
        "task, a systemd user unit or a launchd agent",
    )
    _common(p)
    p.add_argument("action", choices=["install", "uninstall", "status"])
    p.add_argument("--dry-run", action="store_true", help="print what would be registered")
    p.add_argument(
        "--platform", choices=["windows", "linux", "macos"], default=None,
        help="which system's definition (default: this one; with --dry-run, any)",
    )  # fmt: skip
    p.add_argument("--user", default="", help="Windows: the account the task runs as")
    p.set_defaults(handler=_service)
    return parser


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def observers(settings: Settings) -> list[ObserverFactory]:
    """What follows every run this process starts: the Hamilton UI mirror, with [tracking]."""
    if settings.tracking is None:
        return []
    from daybreak.views.hamilton_ui_mirror import RunTracker  # the SDK's imports cost a second

    return [RunTracker]


def _execute(settings: Settings, names: list[str], full: bool, job: str | None = None) -> int:
    origin = actions.cli_origin()
    params: dict[str, Any] = {"job": job} if job else {"assets": names}
    action = "run" if job else "materialize"
    with live.shown():
        outcome = execute_run(
            settings, names, job=job, full_refresh=full, observers=observers(settings),
            origin=origin, on_start=actions.recorder(settings, action, params, origin),
        )  # fmt: skip
    if outcome.exception is not None:  # before any asset ran: one line, the run to look at
        print(f"error: {outcome.error}", file=sys.stderr)
        print(f"run {outcome.run_id}: {outcome.status} (`runner.py logs {outcome.run_id}`)")
        bad_input = isinstance(outcome.exception, ConfigError | UsageError)
        return EXIT_USAGE if bad_input else EXIT_FAILED
    print(format_summary(outcome.results))
    print(f"run {outcome.run_id}: {outcome.status} (log: {outcome.log_path})")
    return EXIT_OK if outcome.status == "success" else EXIT_FAILED


def _materialize(settings: Settings, args: argparse.Namespace) -> int:
    return _execute(settings, args.assets, args.full)


def _run_job(settings: Settings, args: argparse.Namespace) -> int:
    return _execute(settings, _job(settings, args.job).select, args.full, job=args.job)


def _job(settings: Settings, name: str) -> JobConfig:
    """A job by name, or an error listing the jobs there are."""
    job = settings.jobs.get(name)
    if job is None:
        raise UnknownNameError(
            f"unknown job {name!r} (jobs: {', '.join(settings.jobs) or 'none configured'})"
        )
    return job


def _assets(settings: Settings, args: argparse.Namespace) -> int:
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    if args.json:
        print(json.dumps([a.as_json() for a in assets.values()], indent=2))
    else:
        for a in assets.values():
            upstream = ", ".join(a.upstream) or "-"
            print(f"{a.name:<32} {a.group:<28} <- {upstream}")
    return EXIT_OK


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    listed = jobs_data(settings)
    if args.json:
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    for name, entry in listed.items():
        nxt = dt.datetime.fromisoformat(entry["next_run"]) if entry["next_run"] else None
        when = nxt.strftime("%a %d %b %Y %H:%M %Z") if nxt else "-"
        print(f"{name:<32} {entry['schedule']:<52} next: {when}")
        print(f"{'':<32} {entry['description']}")
    return EXIT_OK


def _status(settings: Settings, args: argparse.Namespace) -> int:
    data = status_data(settings)
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    print("jobs:")
    for name, job in data["jobs"].items():
        print(f"  {name:<32} last: {job['last_status']:<11} {job['last_started'] or '-':<26}"
              f" next: {job['next_run'] or '-'}")  # fmt: skip
    print("assets:")
    for name, asset in data["assets"].items():
        checks = asset.get("checks")
        said = f"  checks: {checks['pass']} pass, {checks['warn']} warn, {checks['fail']} fail" if (
            checks) else ""  # fmt: skip
        print(f"  {name:<36} {asset['freshness']:<6} last success: "
              f"{asset['last_success'] or 'never'}{said}")  # fmt: skip
    for entry in data.get("arrivals", {}).values():
        print(f"arrivals: {entry['sentence']}")
    runner = data["runner"]
    if runner.get("alive"):
        print(f"runner: alive, pid {runner['pid']} since {runner['started_at']}, last heartbeat "
              f"{runner.get('last_heartbeat') or '-'}")  # fmt: skip
    else:
        print(f"runner: not running (last seen {runner.get('last_seen') or 'never'})")
    print(f"running: {', '.join(data['running']) or 'nothing'}")
    for retry in data["retrying"]:
        print(f"retrying: {retry['asset']} attempt {retry['attempt']} of "
              f"{retry['max_attempts'] or '?'} failed, next try {retry['next_try_at']}: "
              f"{(retry['error'] or '').splitlines()[0] if retry['error'] else ''}")  # fmt: skip
    if data["warehouse_lock"]:
        print(f"warehouse lock held by: {data['warehouse_lock']}")
    if data["warehouse_held_outside"]:
        held = data["warehouse_held_outside"]
        print(f"warehouse held outside daybreak by {held.get('program')} (pid {held.get('pid')}) "
              f"since {held.get('since')}: {held.get('waiting')} waits")  # fmt: skip
    for waiter in data["waiting_for_warehouse"]:
        who = f"{waiter['what']} (pid {waiter['pid']}, since {waiter['since']})"
        print(f"waiting for the warehouse: {who}")
    return EXIT_OK


def _eta(settings: Settings, args: argparse.Namespace) -> int:
    from daybreak.runner.eta import job_eta

    job = _job(settings, args.job)
    if not job.on_arrival:
        raise UsageError(f"job {args.job!r} has no on_arrival inputs: `runner.py jobs` says when "
                         "it runs")  # fmt: skip
    eta = job_eta(settings, History(settings.state), args.job)
    if args.json:
        print(json.dumps(eta.as_json(), indent=2))
        return EXIT_OK
    print(eta.sentence)
    for entry in eta.inputs:
        usual = (f"usually {entry.usual_from}-{entry.usual_to} ({entry.usual_days} days)"
                 if entry.usual_from else "no usual time yet")  # fmt: skip
        when = entry.landed_at or entry.expected_at or "-"
        expect = f"  expects {entry.expected_file}" if entry.expected_file and (
            entry.state != "landed") else ""  # fmt: skip
        print(f"  {entry.asset:<28} {entry.state:<9} {when:<26} {usual}{expect}")
    return EXIT_OK


def _trigger_line(detail: dict[str, Any]) -> str:
    files = detail.get("files") or []
    more = detail.get("more_files") or 0
    text = (f"{detail.get('reason')}: {len(files) + more} file(s) of "
            f"{', '.join(detail.get('inputs') or []) or '-'}")  # fmt: skip
    if detail.get("missing"):
        text += f"; missing: {', '.join(detail['missing'])}"
    return text


def _history(settings: Settings, args: argparse.Namespace) -> int:
    if args.asset:
        return _asset_history(settings, args)
    if args.actions:
        done = History(settings.state).actions(limit=args.limit)
        if args.json:
            print(json.dumps(done, indent=2))
            return EXIT_OK
        for a in done:
            fields = " ".join(f"{k}={v}" for k, v in a["params"].items())
            print(f"{a['at']}  {a['action']:<11} {fields:<40} {a['origin']:<32} {a['outcome']}"
                  + (f"  run {a['run_id']}" if a["run_id"] else ""))  # fmt: skip
        return EXIT_OK
    runs = History(settings.state).runs(job=args.job, limit=args.limit)
    if args.json:
        print(json.dumps([r.__dict__ for r in runs], indent=2))
        return EXIT_OK
    for r in runs:
        seconds = f"{r.seconds:.1f} s" if r.seconds is not None else "-"
        print(f"{r.run_id}  {r.job or '(materialize)':<30} {r.trigger:<9} {r.status:<11} "
              f"{seconds:>9}  {r.error or ''}")  # fmt: skip
        if r.detail:
            print(f"{'':<23} {_trigger_line(r.detail)}")
        if r.origin:
            print(f"{'':<23} started by {r.origin}")
    return EXIT_OK


def _asset_history(settings: Settings, args: argparse.Namespace) -> int:
    page = asset_page(settings, args.asset, limit=args.limit)
    if args.json:
        print(json.dumps(page, indent=2))
        return EXIT_OK
    state = page["state"]
    print(f"{page['asset']} ({page['group']}): {state['status']}, last success "
          f"{state['last_success'] or 'never'}")  # fmt: skip
    print(f"  why: {page['why']['sentence']}")
    print(f"  upstream: {', '.join(page['upstream']) or '-'}")
    print(f"  downstream: {', '.join(page['downstream']) or '-'}")
    for found in page["checks"]:
        rows = f" ({found['failing_rows']} failing rows)" if found["failing_rows"] else ""
        print(f"  check {found['check']}: {found['status']}{rows}")
    for r in page["runs"]:
        seconds = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-"
        rows = f"{r['rows']:,} rows" if r["rows"] is not None else ""
        where = f"  on {r['worker']}" if r.get("worker") else ""
        print(f"  {r['run_id']}  {r['status']:<11} {seconds:>9} {rows:>14}{where}  "
              f"{(r['error'] or '').splitlines()[0] if r['error'] else ''}")  # fmt: skip
    return EXIT_OK


def _plan(settings: Settings, args: argparse.Namespace) -> int:
    names: list[str] = args.names
    job = settings.jobs.get(names[0]) if len(names) == 1 else None
    if job is not None:
        names = job.select
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": settings, **run_inputs(full_refresh=args.full)}
    steps = make_plan(
        settings, dr, assets, names, History(settings.state), inputs, full_refresh=args.full
    )
    todo = [s for s in steps if s.run]
    waiting = _waiting_lines(settings, args.names[0]) if job is not None and job.on_arrival else []
    if args.json:
        print(json.dumps({"runs": [s.asset for s in todo], "steps": [s.as_json() for s in steps],
                          "waiting": waiting}, indent=2))  # fmt: skip
        return EXIT_OK
    width = max(len(s.asset) for s in steps)
    for step in steps:
        print(f"{step.asset:<{width}}  {'run ' if step.run else 'skip'}  {'; '.join(step.reasons)}")
    print(f"{len(todo)} of {len(steps)} assets would run" if todo else
          f"nothing needs to run: all {len(steps)} assets are up to date")  # fmt: skip
    for line in waiting:
        print(line)
    return EXIT_OK


def _waiting_lines(settings: Settings, name: str) -> list[str]:
    """An arrival job's inputs not landed today, as `plan` says them."""
    from daybreak.runner.eta import job_eta, waiting_for

    return waiting_for(job_eta(settings, History(settings.state), name, with_deadline=False))


def _why(settings: Settings, args: argparse.Namespace) -> int:
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    if args.asset not in assets:
        raise UnknownNameError(f"unknown asset {args.asset!r} (see `runner.py assets`)")
    found = explain(settings, History(settings.state), assets, args.asset)
    if args.json:
        print(json.dumps(found.as_json(), indent=2))
        return EXIT_OK
    print(found.sentence)
    for cause in found.chain:
        print(f"  - {cause.text}")
        if cause.log_line:
            print(f"    log: {cause.log_line}")
        for bad in cause.files[:3]:
            print(f"    {bad['blob']}: {'; '.join(bad['problems'][:2])}")
    return EXIT_OK


def _rerun(settings: Settings, args: argparse.Namespace) -> int:
    history = History(settings.state)
    run = history.run(args.run_id)
    if run is None:
        raise UnknownRunError(f"unknown run {args.run_id!r} (see `runner.py history`)")
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    selection = rerun_selection(history, assets, run, from_failure=args.from_failure)
    if not selection:
        print(f"run {run.run_id} has nothing that failed or was skipped: nothing to rerun")
        return EXIT_OK
    origin = actions.cli_origin()
    params = {"run_id": run.run_id, "from_failure": args.from_failure}
    with live.shown():
        outcome = execute_run(
            settings, selection, job=run.job, trigger="rerun", rerun_of=run.run_id,
            observers=observers(settings), origin=origin,
            on_start=actions.recorder(settings, "rerun", params, origin),
        )  # fmt: skip
    if args.json:
        print(json.dumps({"run_id": outcome.run_id, "rerun_of": run.run_id,
                          "status": outcome.status, "selection": selection,
                          "results": [{"asset": r.name, "status": r.status}
                                      for r in outcome.results]}, indent=2))  # fmt: skip
    else:
        print(format_summary(outcome.results))
        print(f"run {outcome.run_id} (rerun of {run.run_id}): {outcome.status} "
              f"(log: {outcome.log_path})")  # fmt: skip
    return EXIT_OK if outcome.status == "success" else EXIT_FAILED


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    origin = actions.cli_origin()
    params = {"job": args.job, "start": args.start.isoformat(), "end": args.end.isoformat(),
              "chunk_days": args.chunk_days}  # fmt: skip
    with live.shown():
        outcome = backfill(
            settings, args.job, args.start, args.end, chunk_size=args.chunk_days,
            observers=observers(settings), origin=origin,
            on_start=actions.recorder(settings, "backfill", params, origin),
        )  # fmt: skip
    if args.json:
        print(json.dumps({"run_id": outcome.run_id, "status": outcome.status,
                          "resumed": outcome.resumed, "error": outcome.error,
                          "progress": outcome.progress.as_json()}, indent=2))  # fmt: skip
    else:
        print(outcome.progress.line())
        print(f"backfill {outcome.run_id}: {outcome.status}"
              + (" (resumed)" if outcome.resumed else "")
              + (f": {outcome.error}" if outcome.error else ""))  # fmt: skip
        if outcome.status != "success" and outcome.progress.failed_chunk:
            print("give the same command again to resume from chunk "
                  f"{outcome.progress.failed_chunk}")  # fmt: skip
    return EXIT_OK if outcome.status == "success" else EXIT_FAILED


def _cancel(settings: Settings, args: argparse.Namespace) -> int:
    done = actions.cancel(settings, args.run_id, actions.cli_origin())
    if args.json:
        out = {"run_id": done.run.run_id, "outcome": done.outcome, "status": done.run.status,
               "message": done.message}  # fmt: skip
        print(json.dumps(out, indent=2))
    else:
        print(done.message)
    return EXIT_OK if done.outcome != "ended" else EXIT_FAILED


def _logs(settings: Settings, args: argparse.Namespace) -> int:
    history = History(settings.state)
    run = history.run(args.run_id)
    if run is None:
        raise UnknownRunError(f"unknown run {args.run_id!r} (see `runner.py history`)")
    print(f"run {run.run_id}: {run.status} ({run.trigger}{', job ' + run.job if run.job else ''})")
    for a in history.attempts(run.run_id):
        where = f" on {a['worker']}" if a.get("worker") else ""
        print(f"  {a['asset']:<36} attempt {a['attempt']}  {a['status']:<11}{where} "
              f"{(a['error'] or '').splitlines()[0] if a['error'] else ''}")  # fmt: skip
    for c in history.chunks(run.run_id):  # a backfill: its chunks, each a run of its own
        rows = f"{c['rows']:,} rows" if c["rows"] is not None else ""
        print(f"  chunk {c['start_day']}..{c['end_day']}  {c['status']:<11} {rows:>14}  "
              f"run {c['run_id'] or '-'}")  # fmt: skip
    path = Path(run.log_path)
    print(f"--- {path}")
    print(path.read_text(encoding="utf-8") if path.exists() else "(the log file was pruned)")
    return EXIT_OK


def _lineage(settings: Settings, args: argparse.Namespace) -> int:
    named = [v for v in (args.column, args.upstream, args.downstream) if isinstance(v, str)]
    if named:
        return _column_lineage(settings, args, named)
    if args.json:
        raise lineage.LineageError("--json goes with a column (--column or --downstream NAME)")
    if (args.upstream or args.downstream) and not args.asset:
        raise lineage.LineageError("--upstream and --downstream go with --asset or a column")
    out: Path = args.output or settings.paths.exports / "lineage.svg"
    if out.suffix.lower() not in lineage.FORMATS:
        raise lineage.LineageError(f"-o {out}: expected a .svg or .png file")
    assets = catalogue.catalogue(catalogue.build_driver(settings))
    chosen = lineage.choose(
        assets, settings, job=args.job, asset=args.asset,
        upstream=args.upstream, downstream=args.downstream,
    )  # fmt: skip
    title = f"job {args.job}" if args.job else (f"asset {args.asset}" if args.asset else "")
    states = asset_states(settings, History(settings.state), assets, chosen)
    dot = lineage.to_dot(assets, chosen, states, title or "daybreak assets")
    write_atomic(out, lineage.render(dot, out.suffix.lower().lstrip(".")))
    print(f"wrote {out} ({len(chosen)} assets)")
    return EXIT_OK


def _column_lineage(settings: Settings, args: argparse.Namespace, named: list[str]) -> int:
    """`lineage --column C`, `--upstream C`, `--downstream C` (or `--column C --downstream`)."""
    from daybreak.assets import columns
    from daybreak.views import column_view

    if len(set(named)) > 1:
        raise lineage.LineageError(f"one column at a time (got {', '.join(named)})")
    if args.asset or args.job:
        raise lineage.LineageError("a column goes without --asset and --job")
    name = named[0]
    down = args.downstream is not False and (args.downstream is True or args.downstream == name)
    up = args.upstream is not False or not down
    graph = columns.load(settings)
    if args.output is not None:
        out: Path = args.output
        if out.suffix.lower() not in lineage.FORMATS:
            raise lineage.LineageError(f"-o {out}: expected a .svg or .png file")
        dot = column_view.path_dot(graph, name)
        write_atomic(out, lineage.render(dot, out.suffix.lower().lstrip(".")))
        print(f"wrote {out}")
        return EXIT_OK
    answers = ([graph.upstream(name)] if up else []) + ([graph.downstream(name)] if down else [])
    if args.json:
        shaped = [graph.openlineage(a) for a in answers]
        print(json.dumps(shaped[0] if len(shaped) == 1 else shaped, indent=2))
        return EXIT_OK
    for answer in answers:
        text = (column_view.upstream_text if answer["direction"] == "upstream"
                else column_view.downstream_text)  # fmt: skip
        print(text(graph, answer))
    return EXIT_OK


def _ui(settings: Settings, args: argparse.Namespace) -> int:
    from daybreak.views import hamilton_ui_server

    port = args.port or settings.ui.port
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port: expected 1..65535, got {port}")
    threading.Thread(
        target=hamilton_ui_server.send_runs_when_up, args=(settings, port), daemon=True
    ).start()
    hamilton_ui_server.serve(settings.state.hamilton_ui, settings.ui.host, port)
    return EXIT_OK


def _check(settings: Settings, args: argparse.Namespace) -> int:
    problems, counts = check(settings)
    if args.json:
        print(json.dumps({"ok": not problems, "checked": counts,
                          "problems": [p.as_json() for p in problems]}, indent=2))  # fmt: skip
    elif problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    else:
        print(
            f"ok: {settings.config_path}: {counts['jobs']} jobs ({counts['scheduled']} "
            f"scheduled), {counts['assets']} assets, {counts['dbt_models']} dbt models, "
            f"{counts['exports']} exports"
        )
    return EXIT_USAGE if problems else EXIT_OK


def _service(settings: Settings, args: argparse.Namespace) -> int:
    from daybreak.runner import service

    here = service.platform_name()
    platform = args.platform or here
    if platform != here and not args.dry_run:
        raise UsageError(f"--platform {platform}: only with --dry-run on {here}")
    root = Path(__file__).resolve().parents[2]
    # A dry run with no --platform also shows the Windows task: the desktop daybreak is made for.
    shown = [platform] if args.platform or platform == "windows" or not args.dry_run else [
        platform, "windows"]  # fmt: skip
    for name in shown:
        python = Path(sys.executable)
        if name == "windows" and here != "windows":
            python = root / ".venv" / "Scripts" / "python.exe"
        target = service.Target(
            python=python, runner=root / "runner.py", config=settings.config_path, workdir=root,
            user=args.user,
        )  # fmt: skip
        plan = service.plan(target, name, Path.home(), settings.state)
        for line in service.apply(args.action, plan, dry_run=args.dry_run):
            print(line)
    return EXIT_OK


def _runner_log(settings: Settings) -> logging.Handler:
    """The runner's own log: a rotating file in the state folder, besides the console."""
    from logging.handlers import RotatingFileHandler

    settings.state.logs.mkdir(parents=True, exist_ok=True)
    rotating = RotatingFileHandler(
        settings.state.runner_log, maxBytes=RUNNER_LOG_BYTES, backupCount=RUNNER_LOG_FILES,
        encoding="utf-8", delay=True,
    )  # fmt: skip
    handler = make_handler(rotating)
    handler.addFilter(lambda record: current_run.get() is None)  # runs have their own files
    logging.getLogger().addHandler(handler)
    return handler


def _heartbeat(settings: Settings) -> Heartbeat | None:
    url = settings.secrets.heartbeat_url
    if url is None:
        return None
    interval = dt.timedelta(minutes=settings.heartbeat.interval_minutes)
    return Heartbeat(url.get_secret_value(), interval, signal_jobs=settings.heartbeat.signal_jobs)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    log = logging.getLogger(__name__)
    with RunnerInstance(settings.state) as instance:
        handler = _runner_log(settings)
        try:
            log.info("runner pid %d started on %s (log: %s)", os.getpid(), settings.config_path,
                     settings.state.runner_log)  # fmt: skip
            problems, _ = check(settings)
            for problem in problems:
                log.warning("check: %s (its job fails when it runs, until fixed)", problem)
            if not problems:
                log.info("check: the config, jobs, dbt project and exports are in order")
            return _schedule(settings, args, instance)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _schedule(settings: Settings, args: argparse.Namespace, instance: RunnerInstance) -> int:
    heartbeat = _heartbeat(settings)
    scheduler = Scheduler(
        settings, run_job=partial(execute_run, observers=observers(settings)),
        heartbeat=heartbeat, instance=instance,
    )  # fmt: skip
    page = None
    launcher = actions.Launcher(settings, observers(settings), stop=scheduler.stop)
    if settings.web.enabled and not args.no_web:
        from daybreak.views import status_page, web  # uvicorn's imports only when serving

        site = status_page.StatusSite(settings, status_data, lineage.svg_for)
        page = web.StatusServer(site, settings.web.host, settings.web.port, launcher).start()

    def stop(signum: int, frame: Any) -> None:
        logging.getLogger(__name__).info("received signal %d: stopping", signum)
        scheduler.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        scheduler.serve(grace=args.grace)
    finally:
        if page is not None:
            page.stop()
        launcher.join(args.grace)  # runs started from the page end as the scheduler's do
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        settings = load_settings(getattr(args, "config", None))
        redact.register(settings.secrets.values())
        if getattr(args, "command", None) in _READS_HISTORY:
            recovery.reap(settings)  # a run whose process is gone is shown interrupted, not running
        return handler(settings, args)
    except (ConfigError, UsageError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        return 130
    except BrokenPipeError:  # the output went to `head` or a closed pager: nothing to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (so the exit does not complain)
        return EXIT_OK
