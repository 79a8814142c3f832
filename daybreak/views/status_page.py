"""What the status page shows, as HTML: is today's data in, and if not, why; and the pages
behind its buttons (a run as it goes, a confirmation, sign-in). Served by daybreak.views.web,
which owns the routes and who may read and act.

- the page: jobs (schedule, next run, last result, Run now and Backfill), runs going on (Cancel),
  failed runs (asset, error, traceback, log tail, Rerun from failure), recent runs, arrivals,
  every asset's freshness with the deadline it owes, and the lineage picture. Reloads itself.
- a run's page: its status, who started it, each asset or backfill chunk, its log's tail.

Server-rendered HTML with no script and no external asset, so it reads the same in any browser
and offline. It shows nothing secret: errors and logs are redacted when they are recorded, and
configuration values are not shown. Buttons are GET forms to a confirmation page (which changes
nothing); only its POST acts.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from daybreak.assets import columns
from daybreak.assets.columns import ColumnGraph
from daybreak.config import Settings
from daybreak.errors import UnknownNameError, UsageError
from daybreak.logs import redact
from daybreak.runner.backfill import duration, progress
from daybreak.runner.history import History
from daybreak.views.status import asset_page, column_page, run_entry

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")
ASSET = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
# NAME.COLUMN as the column lineage names it (an extract's name may hold spaces and dashes; the
# lineage itself says whether there is such a column): printable, no slash, a dot inside.
COLUMN = re.compile(r"[^\x00-\x1f\x7f/\\.][^\x00-\x1f\x7f/\\]{0,500}\.[^\x00-\x1f\x7f/\\]{1,500}")
LOG_TAIL_LINES = 40
BADGE = {
    "success": "ok", "fresh": "ok",
    "failed": "bad", "interrupted": "bad", "never": "off",
    "stale": "warn", "running": "run", "retrying": "run", "skipped": "warn", "behind": "warn",
    "landed": "ok", "settling": "run", "missing": "off", "late": "bad", "cancelled": "warn",
}  # fmt: skip
STOPPED = ("failed", "interrupted", "cancelled")  # a run that can be rerun from its failure

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;
 color:#202124;background:#f8f9fa}
header{background:#1a237e;color:#fff;padding:14px 24px}
header h1{font-size:20px;margin:0}
header p{margin:2px 0 0;opacity:.85;font-size:13px}
main{padding:8px 24px 32px;max-width:1400px}
section{background:#fff;border:1px solid #dadce0;border-radius:8px;margin:16px 0;padding:12px 16px}
h2{font-size:16px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
td{white-space:nowrap}td.err,td.why{white-space:normal;overflow-wrap:anywhere;min-width:24ch}
th{font-weight:600;color:#5f6368;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{background:#d1f2d9;color:#0d652d}.bad{background:#fad2cf;color:#a50e0e}
.warn{background:#fdecc8;color:#7a4100}.off{background:#eceff1;color:#5f6368}
.run{background:#d2e3fc;color:#174ea6}
.banner{font-size:16px;font-weight:600;padding:10px 14px;border-radius:8px;margin-top:16px}
.banner.ok{border:1px solid #1e8e3e}.banner.bad{border:1px solid #c5221f}
.banner.warn{border:1px solid #b06000}
pre{background:#f1f3f4;padding:8px;overflow-x:auto;font-size:12px;max-height:320px;margin:6px 0}
.muted{color:#5f6368}.err{color:#a50e0e}
.eta.at-risk p{color:#a50e0e;font-weight:600}
.lineage{overflow-x:auto}.lineage svg{max-width:100%;height:auto}
#columns table{table-layout:fixed;width:100%}
#columns td,#columns th{white-space:normal;overflow-wrap:anywhere}
#columns th:nth-child(1){width:18%}#columns th:nth-child(2){width:10%}#columns th:nth-child(3),
#columns th:nth-child(4){width:27%}.edge{display:block}
form.act{display:inline;margin:0 4px 0 0}form.act input{font-size:12px}
form.backfill{display:block;margin-top:4px}td.act{white-space:normal;min-width:18ch}
#actions td{white-space:normal;overflow-wrap:anywhere}
button{font:inherit;font-size:12px;padding:2px 10px;border-radius:6px;border:1px solid #1a237e;
 background:#fff;color:#1a237e;cursor:pointer}button.danger{border-color:#a50e0e;color:#a50e0e}
button.primary{background:#1a237e;color:#fff}
"""


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(section: str, title: str, headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    return (
        f'<section id="{section}"><h2>{_h(title)}</h2><table><tr>{head}</tr>'
        + "".join(rows) + "</table></section>"
    )  # fmt: skip


def _button(action: str, label: str, fields: dict[str, str], *, danger: bool = False) -> str:
    """A button that asks for confirmation first: a GET of /confirm/ACTION, which changes
    nothing; the confirmation page POSTs the action with its CSRF token (daybreak.views.web)."""
    hidden = "".join(
        f'<input type=hidden name="{_h(k)}" value="{_h(v)}">' for k, v in fields.items()
    )
    css = ' class="danger"' if danger else ""
    return (f'<form class="act {_h(action)}" method=get action="/confirm/{_h(action)}">{hidden}'
            f"<button type=submit{css}>{_h(label)}</button></form>")  # fmt: skip


class Page:
    """Renders status_data as HTML, times in one zone. `can_act`: the viewer may start and
    stop work, so the buttons are shown (the server checks again on every action)."""

    def __init__(self, zone: str, refresh_seconds: int) -> None:
        self.zone = ZoneInfo(zone)
        self.refresh = refresh_seconds
        self.can_act = False

    def when(self, iso: str | None) -> str:
        if not iso:
            return "-"
        moment = dt.datetime.fromisoformat(iso)
        return moment.astimezone(self.zone).strftime("%a %d %b %H:%M")

    @staticmethod
    def badge(state: str | None) -> str:
        state = state or "never"
        return f'<span class="badge {BADGE.get(state, "off")}">{_h(state)}</span>'

    @staticmethod
    def seconds(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"

    def render(
        self, data: dict[str, Any], svg: str | None, logs: dict[str, str], *, can_act: bool = False
    ) -> str:
        self.can_act = can_act
        assets = data["assets"]
        bad = [n for n, a in assets.items() if a["freshness"] in ("stale", "never")]
        failed_jobs = [n for n, j in data["jobs"].items() if j["last_status"] == "failed"]
        lagging = [n for n, a in assets.items() if a.get("status") == "behind"]
        if not bad and not failed_jobs and lagging:
            banner = ("warn", f"All {len(assets)} assets are fresh, but {len(lagging)} are "
                              f"behind their upstream: {', '.join(lagging)}.")  # fmt: skip
        elif not bad and not failed_jobs:
            banner = ("ok", f"All {len(assets)} assets are fresh.")
        elif failed_jobs:
            banner = ("bad", f"Failed: {', '.join(failed_jobs)}. "
                             f"{len(bad)} of {len(assets)} assets not fresh.")  # fmt: skip
        else:
            banner = ("warn", f"{len(bad)} of {len(assets)} assets not fresh: {', '.join(bad)}.")
        parts = [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f'<meta http-equiv="refresh" content="{self.refresh}">',
            '<meta name=viewport content="width=device-width, initial-scale=1">',
            f"<title>daybreak status</title><style>{CSS}</style></head><body>",
            "<header><h1>daybreak status</h1>",
            f"<p>as of {_h(self.when(data['generated_at']))} ({_h(self.zone.key)}); "
            f"refreshes every {self.refresh} s</p></header><main>",
            f'<div class="banner {banner[0]}" id="banner">{_h(banner[1])}</div>',
            self._running(data),
            self._active(data["recent_runs"]),
            self._jobs(data["jobs"]),
            self._arrivals(data.get("arrivals", {})),
            self._backfills(data.get("backfills", [])),
            self._failures(data["recent_runs"], logs, data.get("backfills", [])),
            self._runs(data["recent_runs"]),
            self._assets(assets),
            self._actions(data.get("actions", [])),
            self._lineage(svg),
            "</main></body></html>",
        ]
        return "\n".join(p for p in parts if p)

    def _running(self, data: dict[str, Any]) -> str:
        lines = []
        runner = data.get("runner") or {}
        if runner.get("alive"):
            beat, since = runner.get("last_heartbeat"), self.when(runner.get("started_at"))
            lines.append(
                f"Runner alive: pid {_h(runner.get('pid'))} since {_h(since)}"
                + (f", last heartbeat {_h(self.when(beat))}." if beat else ".")
            )
        else:
            seen = runner.get("last_seen")
            lines.append(
                "The runner is not running"
                + (f"; last seen {_h(self.when(seen))}." if seen else " and has never run here.")
            )
        for retry in data.get("retrying", []):
            of = f" of {retry['max_attempts']}" if retry.get("max_attempts") else ""
            lines.append(
                f"{_h(retry['asset'])} is retrying: attempt {retry['attempt']}{of} failed "
                f"({_h((retry.get('error') or '').splitlines()[0] if retry.get('error') else '')});"
                f" next try {_h(self.when(retry.get('next_try_at')))}."
            )
        if data["running"]:
            lines.append(f"Running now: {_h(', '.join(data['running']))}.")
        if data.get("warehouse_lock"):
            lines.append(f"Warehouse in use by {_h(data['warehouse_lock'])}.")
        outside = data.get("warehouse_held_outside")
        if outside:
            program = outside.get("program") or "another program"
            pid = f" (pid {outside['pid']})" if outside.get("pid") else ""
            lines.append(
                f"The warehouse is held by {_h(program)}{_h(pid)} outside daybreak since "
                f"{_h(self.when(outside.get('since')))}: {_h(outside.get('waiting'))} waits for it."
                " Close that session, or open the read-only copy instead."
            )
        for waiter in data.get("waiting_for_warehouse", []):
            lines.append(f"Waiting for the warehouse: {_h(waiter.get('what'))}.")
        return f'<section id="running"><p>{" ".join(lines)}</p></section>' if lines else ""

    def _active(self, runs: list[dict[str, Any]]) -> str:
        """Runs going on now, each with its Cancel button."""
        rows = []
        for r in runs:
            if r["status"] != "running":
                continue
            stopping = (f"stopping: cancel asked by {r['cancel_requested_by']}"
                        if r.get("cancel_requested_at") else "")  # fmt: skip
            button = (_button("cancel", "Cancel", {"run_id": r["run_id"]}, danger=True)
                      if self.can_act and not stopping else "")  # fmt: skip
            rows.append(
                f'<tr class=active-run><td><a href="/runs/{_h(r["run_id"])}">{_h(r["run_id"])}'
                f"</a></td><td>{_h(r['job'] or 'materialize')}</td><td>{_h(r['trigger'])}</td>"
                f"<td>{_h(self.when(r['started_at']))}</td><td>{_h(stopping)}{button}</td></tr>"
            )
        headers = ["run", "job", "trigger", "started", ""]
        return _table("active", "Running now", headers, rows) if rows else ""

    def _job_buttons(self, name: str) -> str:
        if not self.can_act:
            return ""
        return _button("run", "Run now", {"job": name}) + (
            f'<form class="act backfill" method=get action="/confirm/backfill">'
            f'<input type=hidden name=job value="{_h(name)}">'
            '<input type=date name=start required aria-label="first day"> to '
            '<input type=date name=end required aria-label="last day"> in chunks of '
            '<input type=number name=chunk_days value=7 min=1 max=366 aria-label="days a chunk" '
            'style="width:4em"> days <button type=submit>Backfill</button></form>'
        )

    def _jobs(self, jobs: dict[str, Any]) -> str:
        rows = [
            f'<tr id="job-{_h(name)}"><td><b>{_h(name)}</b></td><td>{_h(j["schedule"])}</td>'
            f"<td>{_h(self.when(j['next_run']))}</td><td>{self.badge(j['last_status'])}</td>"
            f"<td>{_h(self.when(j['last_started']))}</td><td>{self.seconds(j['last_seconds'])}</td>"
            f'<td class="err">{_h(j["last_error"])}</td>'
            f"<td class=act>{self._job_buttons(name)}</td></tr>"
            for name, j in jobs.items()
        ]
        headers = ["job", "schedule", "next run", "last result", "started", "took", "error", ""]
        return _table("jobs", "Jobs", headers, rows)

    def _arrivals(self, arrivals: dict[str, Any]) -> str:
        """Each arrival job today: its inputs, when it is expected current, its deadline."""
        out = []
        for name, eta in arrivals.items():
            risk = " at-risk" if eta["at_risk"] else ""
            out.append(f'<div class="eta{risk}" id="eta-{_h(name)}"><p><b>{_h(name)}</b>: '
                       f"{_h(eta['sentence'].split(': ', 1)[-1])}</p><table><tr><th>input</th>"
                       "<th>today</th><th>landed / expected</th><th>usually</th>"
                       "<th>file expected</th></tr>")  # fmt: skip
            for i in eta["inputs"]:
                usual = f"{i['usual_from']}-{i['usual_to']}" if i["usual_from"] else "not known yet"
                late = f" ({i['late_minutes']} min late)" if i.get("late_minutes") else ""
                when = self.when(i["landed_at"] or i["expected_at"])
                out.append(
                    f"<tr class=input><td>{_h(i['asset'])}</td><td>{self.badge(i['state'])}"
                    f"{_h(late)}</td><td>{_h(when)}</td><td>{_h(usual)}</td>"
                    f"<td class=muted>{_h(i['expected_file'] if i['state'] != 'landed' else '')}"
                    "</td></tr>"
                )
            out.append("</table></div>")
        if not out:
            return ""
        return '<section id="arrivals"><h2>Arrivals today</h2>' + "".join(out) + "</section>"

    def _backfills(self, backfills: list[dict[str, Any]]) -> str:
        rows = []
        for b in backfills:
            left = f", about {_h(duration(b['estimate_seconds']))} left" if (
                b["estimate_seconds"] is not None and b["days_done"] < b["days_total"]
                and b["status"] == "running") else ""  # fmt: skip
            now = f"; now {_h(b['current'])}" if b.get("current") else ""
            rows.append(
                f"<tr class=backfill><td><b>{_h(b['job'])}</b> {_h(b['start'])} to "
                f"{_h(b['end'])}<br><span class=muted>{_h(b['backfill_id'])}</span></td>"
                f"<td>{self.badge(b['status'])}</td>"
                f'<td><progress max="{b["days_total"]}" value="{b["days_done"]}">'
                f"{b['percent']}%</progress> {b['days_done']}/{b['days_total']} days, "
                f"{b['chunks_done']}/{b['chunks_total']} chunks{now}</td>"
                f"<td>{b['rows']:,}</td><td>{_h(duration(b['elapsed_seconds']))}{left}</td></tr>"
            )
        headers = ["backfill", "status", "progress", "rows", "elapsed"]
        return _table("backfills", "Backfills", headers, rows) if rows else ""

    def _failures(
        self, runs: list[dict[str, Any]], logs: dict[str, str],
        backfills: list[dict[str, Any]] | None = None,
    ) -> str:  # fmt: skip
        ranges = {b["backfill_id"]: b for b in backfills or []}
        failed = [r for r in runs if r["status"] in STOPPED][:3]
        if not failed:
            return ""
        out = ['<section id="failures"><h2>What failed</h2>']
        for run in failed:
            out.append(
                f"<h3>{self.badge(run['status'])} {_h(run['job'] or 'materialize')} "
                f"<span class=muted>run {_h(run['run_id'])}, {_h(self.when(run['started_at']))}"
                f"</span></h3><table><tr><th>asset</th><th>status</th><th>error</th></tr>"
            )
            for a in run.get("failed_assets", []):
                trace = (
                    f"<details><summary>traceback</summary><pre>{_h(a['traceback'])}</pre>"
                    "</details>" if a.get("traceback") else ""
                )  # fmt: skip
                out.append(
                    f"<tr class=failed-asset><td><b>{_h(a['asset'])}</b></td>"
                    f"<td>{self.badge(a['status'])}</td>"
                    f"<td class=err>{_h(a['error'])}{trace}</td></tr>"
                )
            out.append("</table>")
            backfill = ranges.get(run["run_id"])
            if backfill is not None:
                resume = _button("backfill", "Resume backfill", {
                    "job": backfill["job"], "start": backfill["start"], "end": backfill["end"]
                }) if self.can_act and backfill["job"] else ""  # fmt: skip
                out.append(
                    f"<p>{_h(run.get('error') or '')}. Once it is fixed, the same command takes the"
                    f" backfill up again from chunk {_h(backfill['failed_chunk'])}: "
                    f'<code class="rerun">python runner.py backfill {_h(backfill["job"])} '
                    f"--start {_h(backfill['start'])} --end {_h(backfill['end'])}</code> "
                    f"{resume}</p>"
                )
            else:
                rerun = (_button("rerun", "Rerun from failure", {"run_id": run["run_id"]})
                         if self.can_act else "")  # fmt: skip
                out.append(
                    "<p>Once it is fixed, run again only what failed and what depends on it: "
                    f'<code class="rerun">python runner.py rerun {_h(run["run_id"])} '
                    f"--from-failure</code> {rerun}</p>"
                )
            tail = logs.get(run["run_id"])
            if tail is not None:
                out.append(
                    f"<p>Log (last {LOG_TAIL_LINES} lines; "
                    f'<a href="/runs/{_h(run["run_id"])}/log">whole log</a>):</p>'
                    f"<pre class=log>{_h(tail)}</pre>"
                )
        out.append("</section>")
        return "".join(out)

    @staticmethod
    def trigger(run: dict[str, Any]) -> str:
        """A run's trigger; an arrival run's files and what was missing, in a line below it."""
        detail = run.get("trigger_detail") or {}
        if not detail:
            return _h(run["trigger"])
        files = detail.get("files") or []
        names = ", ".join(f["blob"].rsplit("/", 1)[-1] for f in files[:4])
        more = len(files) - 4 + (detail.get("more_files") or 0)
        said = f"{detail.get('reason')}: {names}" + (f" and {more} more" if more > 0 else "")
        if detail.get("missing"):
            said += f"; missing: {', '.join(detail['missing'])}"
        return f"{_h(run['trigger'])}<br><span class='muted trigger-detail'>{_h(said)}</span>"

    def _runs(self, runs: list[dict[str, Any]]) -> str:
        rows = [
            f'<tr><td><a href="/runs/{_h(r["run_id"])}">{_h(r["run_id"])}</a> '
            f'<a class=muted href="/runs/{_h(r["run_id"])}/log">log</a></td>'
            f"<td>{_h(r['job'] or 'materialize')}</td><td>{self.trigger(r)}</td>"
            f"<td>{self.badge(r['status'])}</td><td>{_h(self.when(r['started_at']))}</td>"
            f"<td>{self.seconds(r['seconds'])}</td><td class=err>{_h(r['error'])}</td></tr>"
            for r in runs
        ]
        headers = ["run", "job", "trigger", "status", "started", "took", "error"]
        return _table(
            "runs",
            "Recent runs",
            headers,
            rows or ["<tr><td colspan=7 class=muted>no runs yet</td></tr>"],
        )

    def _actions(self, actions: list[dict[str, Any]]) -> str:
        """Who asked daybreak to start or stop work, from where, and what came of it."""
        rows = [
            f"<tr class=action><td>{_h(self.when(a['at']))}</td><td>{_h(a['action'])}</td>"
            f"<td>{_h(' '.join(f'{k}={v}' for k, v in a['params'].items()))}</td>"
            f"<td>{_h(a['origin'])}</td>"
            f"<td{' class=err' if a['outcome'].startswith('refused') else ''}>"
            f"{_h(a['outcome'])}</td>"
            + (f'<td><a href="/runs/{_h(a["run_id"])}">{_h(a["run_id"])}</a></td></tr>'
               if a.get("run_id") else "<td></td></tr>")
            for a in actions
        ]  # fmt: skip
        headers = ["when", "action", "with", "by", "outcome", "run"]
        return _table("actions", "Recent actions", headers, rows) if rows else ""

    def _assets(self, assets: dict[str, Any]) -> str:
        rows = [
            f'<tr id="row-{_h(name)}"><td><a href="/assets/{_h(name)}">{_h(name)}</a></td>'
            f"<td class=muted>{_h(a['group'])}</td>"
            f"<td>{self.badge('behind' if a.get('status') == 'behind' else a['freshness'])}</td>"
            f"<td>{_h(self.when(a['last_success']))}</td>"
            f"<td>{_h(self.when(a.get('deadline')))}</td>"
            f'<td class="why">{_h(a.get("why"))}</td></tr>'
            for name, a in assets.items()
        ]
        headers = ["asset", "group", "freshness", "last success", "deadline owed", "why"]
        return _table("assets", "Assets", headers, rows)

    def _asset_run(self, r: dict[str, Any]) -> str:
        rows = f"{r['rows']:,}" if r["rows"] is not None else "-"
        error = (r["error"] or "").splitlines()[0] if r["error"] else ""
        return (
            f"<tr><td>{_h(r['run_id'])}</td><td>{_h(r['job'] or '(materialize)')}</td>"
            f"<td>{self.badge(r['status'])}</td><td>{_h(self.when(r['started_at']))}</td>"
            f"<td>{self.seconds(r['seconds'])}</td><td>{_h(rows)}</td>"
            f"<td class=worker>{_h(r.get('worker') or 'runner')}</td>"
            f'<td class="err">{_h(error)}</td></tr>'
        )

    def render_asset(self, data: dict[str, Any], *, can_act: bool = False) -> str:
        """One asset's page: why, checks, a chart of rows and duration per day, its runs."""
        name, state = data["asset"], data["state"]

        def links(names: list[str]) -> str:
            return ", ".join(f'<a href="/assets/{_h(n)}">{_h(n)}</a>' for n in names) or "-"

        checks = [
            f"<tr><td>{_h(c['check'])}</td><td>{self.badge(c['status'])}</td>"
            f"<td>{_h(c['failing_rows'])}</td><td class=err>{_h(c['message'])}</td></tr>"
            for c in data["checks"]
        ]
        runs = [self._asset_run(r) for r in data["runs"]]
        error = data.get("last_error")
        parts = [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f'<meta http-equiv="refresh" content="{self.refresh}">',
            '<meta name=viewport content="width=device-width, initial-scale=1">',
            f"<title>{_h(name)} - daybreak</title><style>{CSS}</style></head><body>",
            f'<header><h1>{_h(name)}</h1><p><a href="/" style="color:#fff">all assets</a> · '
            f"{_h(data['group'])}</p></header><main>",
            f'<div class="banner {"ok" if state["status"] == "success" else "warn"}" id="why">'
            f"{_h(data['why']['sentence'])}</div>",
            f'<section id="about"><p>{_h(data["description"])}</p>'
            f"<p>Upstream: {links(data['upstream'])}</p>"
            f"<p>Downstream: {links(data['downstream'])}</p>"
            + (_button("materialize", "Materialize", {"assets": name}) if can_act else "")
            + "</section>",
            _table("checks", "Checks", ["check", "result", "failing rows", "message"],
                   checks) if checks else "",
            '<section id="chart"><h2>Rows and duration per day</h2>'
            f"{_chart(data['runs'])}</section>",
            f'<section id="last-error"><h2>Last error</h2><p>run {_h(error["run_id"])}</p>'
            f'<pre class="log">{_h(error["error"])}</pre></section>' if error else "",
            self._columns(data.get("columns") or {}),
            _table("runs", "Runs",
                   ["run", "job", "status", "started", "took", "rows", "ran on", "error"], runs),
            "</main></body></html>",
        ]  # fmt: skip
        return "\n".join(p for p in parts if p)

    @staticmethod
    def _columns(data: dict[str, Any]) -> str:
        """The asset's columns with where each comes from and what uses it (column lineage)."""
        if data.get("error"):
            return (f'<section id="columns"><h2>Columns</h2>'
                    f'<p class=muted>{_h(data["error"])}</p></section>')  # fmt: skip
        if not data.get("tables"):
            return ""

        def column_link(name: str, text: str = "") -> str:
            return f'<a href="/columns/{_h(quote(name, safe=""))}">{_h(text or name)}</a>'

        def edges(items: list[dict[str, str]], expressions: bool) -> str:
            shown = []
            for e in items:
                said = e.get("expression") if expressions else ""
                tip = f' title="{_h(said)}"' if said else ""
                shown.append(
                    f"<span class=edge{tip}>{column_link(e['source'])} "
                    f"<span class=muted>{_h(e['how'])}</span></span>"
                )
            return "".join(shown) or "-"

        parts = ['<section id="columns"><h2>Columns</h2>']
        for table in data["tables"]:
            rows = []
            for c in table["columns"]:
                made = edges(c["inputs"], True)
                if "constant" in c:
                    made = f"constant: <code>{_h(c['constant'])}</code>"
                rows.append(
                    f'<tr data-column="{_h(c["name"])}"><td>{column_link(c["name"], c["column"])}'
                    f"</td><td>{_h(c['type'])}</td><td class=from>{made}</td>"
                    f"<td class=to>{edges(c['outputs'], False)}</td>"
                    f"<td>{_h(c['description'])}</td></tr>"
                )
            indirect = table.get("indirect") or []
            chosen = (
                (
                    "<p class=muted>Rows chosen by: "
                    + ", ".join(f"{_h(e['how'])} on {column_link(e['source'])}" for e in indirect)
                    + "</p>"
                )
                if indirect
                else ""
            )
            parts.append(
                f'<h3 data-table="{_h(table["table"])}">{_h(table["table"])} '
                f"<span class=muted>({_h(table['kind'])})</span></h3>"
                f"<p class=muted>{_h(table['description'])}</p>"
                f"{chosen}<table><tr><th>column</th><th>type</th><th>from</th><th>used by</th>"
                f"<th>description</th></tr>{''.join(rows)}</table>"
            )
        for gap in data.get("gaps") or []:
            parts.append(f"<p class=err>not traced: {_h(gap['table'])}.{_h(gap['column'])}: "
                         f"{_h(gap['why'])}</p>")  # fmt: skip
        parts.append("</section>")
        return "".join(parts)

    def render_column(self, data: dict[str, Any], svg: str | None) -> str:
        """One column's page: the picture of its path, what it is made from, what it reaches."""
        up, down = data["upstream"], data["downstream"]

        def link(name: str) -> str:
            return f'<a href="/columns/{_h(quote(name, safe=""))}">{_h(name)}</a>'

        def assets_of(answer: dict[str, Any]) -> str:
            names = sorted({d["asset"] for d in answer["datasets"]})
            return ", ".join(f'<a href="/assets/{_h(n)}">{_h(n)}</a>' for n in names)

        body = [
            '<section id="column-path"><h2>Path</h2><div class="lineage">'
            + (svg or "<p class=muted>picture unavailable (no Graphviz renderer)</p>")
            + "</div></section>",
            '<section id="column-upstream"><h2>Made from</h2>'
            f"<p>Landing columns ({len(up['landing'])}): "
            + (", ".join(link(c) for c in up["landing"]) or "none") + "</p>"
            + (f"<p>Constants: {_h(', '.join(f'{k} = {v}' for k, v in up['constants'].items()))}"
               "</p>" if up["constants"] else "")
            + f"<p class=muted>Assets on the way: {assets_of(up)}</p></section>",
            '<section id="column-downstream"><h2>Used by</h2>'
            f"<p>Extract fields ({len(down['extract_fields'])}): "
            + (", ".join(link(c) for c in down["extract_fields"]) or "none") + "</p>"
            f"<p>Model columns ({len(down['model_columns'])}): "
            + (", ".join(link(c) for c in down["model_columns"]) or "none") + "</p>"
            + ("<p>Chooses the rows of: " + ", ".join(
                f"{_h(i['table'])} ({_h(i['how'])})" for i in down["indirect"]) + "</p>"
               if down["indirect"] else "")
            + "</section>",
            '<section id="column-gaps"><h2>Not traced</h2>'
            + ("".join(f"<p class=err>{_h(g['table'])}.{_h(g['column'])}: {_h(g['why'])}</p>"
                       for g in up["gaps"]) or "<p class=muted>nothing on this path</p>")
            + "</section>",
        ]  # fmt: skip
        return self._shell(data["column"], body, sub="column lineage")

    def _shell(self, title: str, body: list[str], *, refresh: int | None = None,
               sub: str = "") -> str:  # fmt: skip
        head = [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f'<meta http-equiv="refresh" content="{refresh}">' if refresh else "",
            '<meta name=viewport content="width=device-width, initial-scale=1">',
            f"<title>{_h(title)} - daybreak</title><style>{CSS}</style></head><body>",
            f'<header><h1>{_h(title)}</h1><p><a href="/" style="color:#fff">status</a>'
            f"{' · ' + _h(sub) if sub else ''}</p></header><main>",
        ]
        return "\n".join(p for p in [*head, *body, "</main></body></html>"] if p)

    def render_run(self, data: dict[str, Any], log_tail: str, *, can_act: bool = False) -> str:
        """One run as it goes: status, who started it, each asset (or chunk), the log's tail;
        reloads every 2 s while it runs, and has its Cancel button."""
        run = data["run"]
        running = run["status"] == "running"
        stopping = running and run.get("cancel_requested_at")
        by = f", started by {_h(run['origin'])}" if run.get("origin") else ""
        ended = (f", ended {_h(self.when(run['ended_at']))} ({self.seconds(run['seconds'])})"
                 if run["ended_at"] else "")  # fmt: skip
        facts = [
            f"{self.badge(run['status'])} {_h(run['job'] or 'materialize')}, "
            f"{_h(run['trigger'])}{by}",
            f"started {_h(self.when(run['started_at']))}{ended}",
        ]
        if run.get("cancel_requested_at"):
            facts.append(f"cancel asked by {_h(run['cancel_requested_by'])} at "
                         f"{_h(self.when(run['cancel_requested_at']))}")  # fmt: skip
        if run.get("rerun_of"):
            facts.append(f'rerun of <a href="/runs/{_h(run["rerun_of"])}">'
                         f"{_h(run['rerun_of'])}</a>")  # fmt: skip
        if run.get("error"):
            facts.append(f"<span class=err>{_h(run['error'])}</span>")
        buttons = ""
        if can_act and running and not stopping:
            buttons = _button("cancel", "Cancel", {"run_id": run["run_id"]}, danger=True)
        elif can_act and run["status"] in STOPPED and data.get("progress") is None:
            buttons = _button("rerun", "Rerun from failure", {"run_id": run["run_id"]})
        elif can_act and run["status"] in STOPPED and run.get("job"):
            p = data["progress"]
            again = {"job": run["job"], "start": p["start"], "end": p["end"]}
            buttons = _button("backfill", "Resume backfill", again)
        attempts = [
            f"<tr class=attempt><td>{_h(a['asset'])}</td><td>{a['attempt']}</td>"
            f"<td>{self.badge(a['status'])}</td><td>{self.seconds(a.get('seconds'))}</td>"
            f'<td class="err">{_h(((a.get("error") or "").splitlines() or [""])[0])}</td></tr>'
            for a in data["attempts"]
        ]
        chunks = [
            f"<tr class=chunk><td>{_h(c['start_day'])}..{_h(c['end_day'])}</td>"
            f"<td>{self.badge(c['status'])}</td><td>{_h(c['rows'])}</td>"
            f"<td>{_h(c['run_id'] or '')}</td></tr>"
            for c in data.get("chunks", [])
        ]
        progress = data.get("progress")
        body = [
            f'<div class="banner {BADGE.get(run["status"], "off").replace("run", "warn")}" '
            f'id="run-status" data-status="{_h(run["status"])}">'
            + "; ".join(facts) + "</div>",
            f'<section id="controls">{buttons}</section>' if buttons else "",
            f'<section id="progress"><p>{_h(progress["line"])}</p></section>' if progress else "",
            _table("chunks", "Chunks", ["days", "status", "rows", "run"], chunks) if chunks else "",
            _table("attempts", "Assets", ["asset", "attempt", "status", "took", "error"],
                   attempts) if attempts else "",
            f'<section id="log"><h2>Log</h2><p><a href="/runs/{_h(run["run_id"])}/log">whole log'
            f'</a></p><pre class="log">{_h(log_tail)}</pre></section>',
        ]  # fmt: skip
        return self._shell(f"run {run['run_id']}", body, refresh=2 if running else None,
                           sub=run["job"] or "")  # fmt: skip

    def render_confirm(
        self, action: str, question: str, fields: dict[str, str], csrf: str, *,
        full_option: bool = False,
    ) -> str:  # fmt: skip
        """The confirmation of an action: the POST that does it, with its one-time CSRF token
        (and, for a run, the choice of a full refresh)."""
        hidden = "".join(
            f'<input type=hidden name="{_h(k)}" value="{_h(v)}">'
            for k, v in {**fields, "csrf": csrf}.items()
        )
        if full_option:
            hidden += (
                '<p><label><input type=checkbox name=full value=true id="full"> full '
                "refresh: resync the whole history and rebuild everything</label></p>"
            )
        body = [
            f'<section id="confirm"><p>{_h(question)}</p>'
            f'<form method=post action="/actions/{_h(action)}">{hidden}'
            f'<button type=submit class="primary" id="confirm-button">Confirm</button> '
            '<a href="/">Back</a></form></section>'
        ]
        return self._shell("Confirm", body)

    def render_login(self, csrf: str, message: str = "") -> str:
        body = [
            f'<section id="login"><p class=err>{_h(message)}</p>' if message else
            '<section id="login">',
            "<p>This page needs daybreak's web token (DAYBREAK_WEB_TOKEN in the runner's .env)."
            '</p><form method=post action="/login">'
            f'<input type=hidden name=csrf value="{_h(csrf)}">'
            '<input type=password name=token autocomplete=current-password aria-label=token '
            'required> <button type=submit class=primary>Sign in</button></form></section>',
        ]  # fmt: skip
        return self._shell("Sign in", body)

    def render_message(self, title: str, message: str) -> str:
        return self._shell(title, [f'<section id="message"><p>{_h(message)}</p></section>'])

    def _lineage(self, svg: str | None) -> str:
        if svg is None:
            return ""
        body = svg[svg.find("<svg") :]  # drop the XML prolog: inline SVG in HTML
        return (
            '<section id="lineage"><h2>Lineage</h2><p class=muted>green success, amber stale, '
            "red failed, grey never run; hover an asset for its last success.</p>"
            f'<div class="lineage">{body}</div></section>'
        )


def _chart(runs: list[dict[str, Any]], width: int = 640, height: int = 90) -> str:
    """Rows written and duration per day as two small inline SVG bar charts (no script)."""
    days: dict[str, tuple[int, float]] = {}
    for r in runs:
        if not r["started_at"]:
            continue
        day = r["started_at"][:10]
        rows, seconds = days.get(day, (0, 0.0))
        days[day] = (rows + (r["rows"] or 0), max(seconds, r["seconds"] or 0.0))
    if not days:
        return "<p class=muted>No runs yet.</p>"
    ordered = sorted(days.items())[-30:]
    out = []
    for title, index, unit in (("rows written", 0, "rows"), ("seconds", 1, "s")):
        top = max(v[index] for _, v in ordered) or 1
        bar = width / len(ordered)
        rects = "".join(
            f'<rect x="{i * bar + 1:.1f}" y="{height - h:.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#1a73e8"><title>{_h(day)}: {v[index]:,.0f} {unit}</title>'
            "</rect>"
            for i, (day, v) in enumerate(ordered)
            for h in [max(v[index] / top * (height - 4), 1)]
        )
        out.append(
            f'<figure class="chart" data-series="{_h(title)}"><figcaption>{_h(title)} (max '
            f"{top:,.0f} {unit}) over {len(ordered)} day(s)</figcaption>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">{rects}</svg></figure>'
        )
    return "".join(out)


class StatusSite:
    """The page's data sources; one per runner process."""

    def __init__(
        self,
        settings: Settings,
        status: Callable[[Settings], dict[str, Any]],
        lineage_svg: Callable[[Settings], str] | None = None,
    ) -> None:
        self.settings = settings
        self.status = status
        self.lineage_svg = lineage_svg
        zone = next(iter(settings.jobs.values())).timezone if settings.jobs else "Europe/London"
        self.page = Page(zone, settings.web.refresh_seconds)

    def svg(self) -> str | None:
        if self.lineage_svg is None:
            return None
        try:
            return self.lineage_svg(self.settings)
        except Exception as exc:  # the page still shows everything else
            log.warning("lineage picture unavailable: %s", exc)
            return None

    def html(self, *, can_act: bool = False) -> str:
        data = self.status(self.settings)
        logs: dict[str, str] = {}
        for run in data["recent_runs"]:
            if run["status"] in STOPPED and len(logs) < 3:
                logs[run["run_id"]] = self.log_tail(run["run_id"])
        return self.page.render(data, self.svg(), logs, can_act=can_act)

    def run_data(self, run_id: str) -> dict[str, Any] | None:
        """One run for the run page and /api/runs/ID: the run, its attempts, a backfill's
        chunks and progress."""
        if not RUN_ID.fullmatch(run_id):
            return None
        history = History(self.settings.state)
        run = history.run(run_id)
        if run is None:
            return None
        data: dict[str, Any] = {"run": run_entry(history, run), "attempts": []}
        for part in [run, *reversed(history.runs(part_of=run.run_id, limit=500))]:
            data["attempts"] += [
                {k: a[k] for k in ("asset", "attempt", "status", "seconds", "error", "run_id")}
                for a in history.attempts(part.run_id)
            ]
        chunks = history.chunks(run.run_id)
        if chunks:
            data["chunks"] = chunks
            now = progress(history, run)
            data["progress"] = {**now.as_json(), "line": now.line()}
        return data

    def run_html(self, run_id: str, *, can_act: bool = False) -> str | None:
        data = self.run_data(run_id)
        if data is None:
            return None
        return self.page.render_run(data, self.log_tail(run_id), can_act=can_act)

    def asset_html(self, name: str, *, can_act: bool = False) -> str | None:
        if not ASSET.fullmatch(name):
            return None
        try:
            data = asset_page(self.settings, name)
        except UnknownNameError:
            return None
        return self.page.render_asset(data, can_act=can_act)

    def _column(self, name: str) -> tuple[ColumnGraph, dict[str, Any]] | None:
        """The lineage and a column's answer; None for a name that is not a known column
        (raises ColumnLineageUnavailable when the lineage cannot be had)."""
        if not COLUMN.fullmatch(name):
            return None
        graph = columns.load(self.settings)
        try:
            return graph, column_page(graph, name)
        except UsageError:
            return None

    def column_data(self, name: str) -> dict[str, Any] | None:
        found = self._column(name)
        return found[1] if found is not None else None

    def column_html(self, name: str) -> str | None:
        found = self._column(name)
        if found is None:
            return None
        graph, data = found
        from daybreak.views import column_view
        from daybreak.views.lineage import render

        try:
            svg: str | None = render(column_view.path_dot(graph, data["column"]), "svg").decode()
        except Exception as exc:  # the lists still answer the question
            log.warning("column picture unavailable: %s", exc)
            svg = None
        return self.page.render_column(data, svg)

    def log_path(self, run_id: str) -> Path | None:
        if not RUN_ID.fullmatch(run_id):
            return None
        run = History(self.settings.state).run(run_id)
        return Path(run.log_path) if run else None

    def log_tail(self, run_id: str) -> str:
        path = self.log_path(run_id)
        if path is None or not path.exists():
            return "(no log file: pruned, or the run wrote none)"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return redact("\n".join(lines[-LOG_TAIL_LINES:]))
