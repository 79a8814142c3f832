"""The read-only status page `python runner.py` serves: is today's data in, and if not, why.

Routes (GET only):
- `/`                    the page: jobs (schedule, next run, last result), failed runs (asset,
                         error, traceback, log tail), recent runs, every asset's freshness with
                         the deadline it owes, and the lineage picture. Reloads itself.
- `/api/status`          the same data as JSON: exactly `runner.py status --json`.
- `/lineage.svg`         the asset graph coloured by last status (daybreak.lineage).
- `/runs/<run_id>/log`   a run's log file, as text.

Server-rendered HTML with no script and no external asset, so it reads the same in any browser
and offline. It binds 127.0.0.1 by default and has no login, so it shows nothing secret: errors
and logs are redacted when they are recorded, and configuration values are not shown.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daybreak.config import Settings
from daybreak.errors import UnknownNameError
from daybreak.logs import redact
from daybreak.runner.backfill import duration
from daybreak.runner.history import History
from daybreak.views.status import asset_page

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")
ASSET = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
LOG_TAIL_LINES = 40
BADGE = {
    "success": "ok", "fresh": "ok",
    "failed": "bad", "interrupted": "bad", "never": "off",
    "stale": "warn", "running": "run", "retrying": "run", "skipped": "warn", "behind": "warn",
    "landed": "ok", "settling": "run", "missing": "off", "late": "bad",
}  # fmt: skip

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
"""


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(section: str, title: str, headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in headers)
    return (
        f'<section id="{section}"><h2>{_h(title)}</h2><table><tr>{head}</tr>'
        + "".join(rows) + "</table></section>"
    )  # fmt: skip


class Page:
    """Renders status_data as HTML, times in one zone."""

    def __init__(self, zone: str, refresh_seconds: int) -> None:
        self.zone = ZoneInfo(zone)
        self.refresh = refresh_seconds

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

    def render(self, data: dict[str, Any], svg: str | None, logs: dict[str, str]) -> str:
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
            self._jobs(data["jobs"]),
            self._arrivals(data.get("arrivals", {})),
            self._backfills(data.get("backfills", [])),
            self._failures(data["recent_runs"], logs, data.get("backfills", [])),
            self._runs(data["recent_runs"]),
            self._assets(assets),
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

    def _jobs(self, jobs: dict[str, Any]) -> str:
        rows = [
            f"<tr><td><b>{_h(name)}</b></td><td>{_h(j['schedule'])}</td>"
            f"<td>{_h(self.when(j['next_run']))}</td><td>{self.badge(j['last_status'])}</td>"
            f"<td>{_h(self.when(j['last_started']))}</td><td>{self.seconds(j['last_seconds'])}</td>"
            f'<td class="err">{_h(j["last_error"])}</td></tr>'
            for name, j in jobs.items()
        ]
        headers = ["job", "schedule", "next run", "last result", "started", "took", "error"]
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
        failed = [r for r in runs if r["status"] in ("failed", "interrupted")][:3]
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
                out.append(
                    f"<p>{_h(run.get('error') or '')}. Once it is fixed, the same command takes the"
                    f" backfill up again from chunk {_h(backfill['failed_chunk'])}: "
                    f'<code class="rerun">python runner.py backfill {_h(backfill["job"])} '
                    f"--start {_h(backfill['start'])} --end {_h(backfill['end'])}</code></p>"
                )
            else:
                out.append(
                    "<p>Once it is fixed, run again only what failed and what depends on it: "
                    f'<code class="rerun">python runner.py rerun {_h(run["run_id"])} '
                    "--from-failure</code></p>"
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
            f'<tr><td><a href="/runs/{_h(r["run_id"])}/log">{_h(r["run_id"])}</a></td>'
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

    def render_asset(self, data: dict[str, Any]) -> str:
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
            f"<p>Downstream: {links(data['downstream'])}</p></section>",
            _table("checks", "Checks", ["check", "result", "failing rows", "message"],
                   checks) if checks else "",
            '<section id="chart"><h2>Rows and duration per day</h2>'
            f"{_chart(data['runs'])}</section>",
            f'<section id="last-error"><h2>Last error</h2><p>run {_h(error["run_id"])}</p>'
            f'<pre class="log">{_h(error["error"])}</pre></section>' if error else "",
            _table("runs", "Runs",
                   ["run", "job", "status", "started", "took", "rows", "ran on", "error"], runs),
            "</main></body></html>",
        ]  # fmt: skip
        return "\n".join(p for p in parts if p)

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

    def html(self) -> str:
        data = self.status(self.settings)
        logs: dict[str, str] = {}
        for run in data["recent_runs"]:
            if run["status"] in ("failed", "interrupted") and len(logs) < 3:
                logs[run["run_id"]] = self.log_tail(run["run_id"])
        return self.page.render(data, self.svg(), logs)

    def asset_html(self, name: str) -> str | None:
        if not ASSET.fullmatch(name):
            return None
        try:
            data = asset_page(self.settings, name)
        except UnknownNameError:
            return None
        return self.page.render_asset(data)

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


def _handler(site: StatusSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "daybreak"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request
            log.debug("status page: " + format, *args)

        def _send(self, code: int, body: str | bytes, kind: str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/":
                    self._send(200, site.html(), "text/html; charset=utf-8")
                elif path == "/api/status":
                    body = json.dumps(site.status(site.settings), indent=2)
                    self._send(200, body, "application/json")
                elif path == "/lineage.svg":
                    svg = site.svg()
                    if svg is None:
                        self._send(503, "lineage unavailable\n", "text/plain; charset=utf-8")
                    else:
                        self._send(200, svg, "image/svg+xml")
                elif (m := re.fullmatch(r"/assets/([^/]+)", path)) and (
                    page := site.asset_html(m.group(1))
                ) is not None:
                    self._send(200, page, "text/html; charset=utf-8")
                elif m := re.fullmatch(r"/api/assets/([A-Za-z0-9_]+)", path):
                    try:
                        body = json.dumps(asset_page(site.settings, m.group(1)), indent=2)
                    except UnknownNameError:
                        self._send(404, "not found\n", "text/plain; charset=utf-8")
                    else:
                        self._send(200, body, "application/json")
                elif (m := re.fullmatch(r"/runs/([^/]+)/log", path)) and (
                    site.log_path(m.group(1)) is not None
                ):
                    log_file = site.log_path(m.group(1))
                    assert log_file is not None
                    text = (
                        redact(log_file.read_text(encoding="utf-8", errors="replace"))
                        if log_file.exists()
                        else "(the log file was pruned)\n"
                    )
                    self._send(200, text, "text/plain; charset=utf-8")
                else:
                    self._send(404, "not found\n", "text/plain; charset=utf-8")
            except Exception as exc:
                log.exception("status page: %s failed", path)
                message = redact(f"{type(exc).__name__}: {exc}")
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, message + "\n", "text/plain")

    return Handler


class StatusServer:
    """The page's HTTP server, in a daemon thread of the runner."""

    def __init__(self, site: StatusSite, host: str, port: int) -> None:
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(site))
        except OSError as exc:
            raise OSError(
                f"status page: cannot listen on {host}:{port} ({exc.strerror}); another runner? "
                "Set [web] port, or run with --no-web"
            ) from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="status-page", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> StatusServer:
        self.thread.start()
        log.info("status page on %s", self.url)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
