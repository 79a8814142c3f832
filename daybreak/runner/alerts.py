"""Alerts through apprise (Teams, Slack, email, a webhook): one message per incident.

Incidents, one message each (tracked in the state database, so several processes agree):
- a job fails (after its retries): opens `failure:<job>`; further failures of the same job stay
  in that incident; the first success after it sends a recovery message and closes it;
- a schedule tick is missed: `missed:<job>:<tick>`;
- an asset misses its freshness deadline: `stale:<asset>:<deadline>`;
- a run whose process died (a kill, a reboot): `interrupted:<run_id>`; a file that no longer
  opened and was kept aside (the warehouse, the state database): `recovered:<folder>`;
- an input of an arrival job is later than usual: `late:<job>:<input>:<day>`, before the
  deadline; the inputs still missing at a job's `latest`: `missing:<job>:<latest>`.
Alert URLs carry tokens and passwords, so they come from the environment
(`DAYBREAK_ALERT_URLS`, space- or comma-separated), never from daybreak.toml. A broken channel is
logged and never fails a job. Messages carry no secrets (they pass the redactor).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from daybreak import clock
from daybreak.config import Settings
from daybreak.logs import redact
from daybreak.runner.history import iso
from daybreak.state import StateDb, StateLayout

log = logging.getLogger(__name__)

URLS_ENV = "DAYBREAK_ALERT_URLS"


def alert_urls(settings: Settings) -> list[str]:
    """The apprise URLs: DAYBREAK_ALERT_URLS from the environment, else from .env."""
    configured = settings.secrets.alert_urls
    raw = os.environ.get(URLS_ENV) or (configured.get_secret_value() if configured else "")
    return [u for u in re.split(r"[\s,]+", raw) if u]


class Alerter:
    """Sends each incident once through every configured apprise URL."""

    def __init__(self, layout: StateLayout, urls: list[str]) -> None:
        self.db = StateDb(layout)
        self.urls = urls
        redact.register(urls)  # a URL embeds its token: never log it

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self.db.transaction()

    def _open(self, incident: str) -> bool:
        """Open an incident; False if it is open already (so nothing is sent twice)."""
        with self._connect() as con:
            row = con.execute(
                "SELECT closed_at FROM alert_incidents WHERE incident = ?", (incident,)
            ).fetchone()
            if row is not None and row[0] is None:
                return False
            con.execute(
                "INSERT OR REPLACE INTO alert_incidents (incident, opened_at, closed_at) "
                "VALUES (?, ?, NULL)",
                (incident, iso(clock.now())),
            )
        return True

    def _close(self, incident: str) -> bool:
        with self._connect() as con:
            closed = con.execute(
                "UPDATE alert_incidents SET closed_at = ? WHERE incident = ? AND closed_at IS NULL",
                (iso(clock.now()), incident),
            ).rowcount
        return bool(closed)

    def send(self, title: str, body: str) -> bool:
        """Notify every URL; a failing channel is logged, never raised."""
        if not self.urls:
            log.info("alert (no DAYBREAK_ALERT_URLS configured): %s", title)
            return False
        import apprise

        sender = apprise.Apprise()
        for url in self.urls:
            if not sender.add(url):
                log.warning("alert channel not understood by apprise (URL hidden): skipped")
        try:
            ok = bool(sender.notify(title=redact(title), body=redact(body)))
        except Exception as exc:  # a broken channel must not break the job
            log.warning("sending the alert failed: %s", redact(str(exc)))
            return False
        if not ok:
            log.warning("an alert channel did not accept %r", title)
        return ok

    # -- the incidents --------------------------------------------------------------------

    def run_finished(
        self, job: str | None, run_id: str, status: str, error: str | None, log_path: Path
    ) -> None:
        if job is None:
            return  # ad-hoc materializations are not watched; jobs are
        incident = f"failure:{job}"
        if status == "failed":
            if self._open(incident):
                first = (error or "").splitlines()[0] if error else "see the log"
                self.send(
                    f"daybreak: {job} failed",
                    f"Job {job} failed.\nAsset and error: {first}\nRun: {run_id}\nLog: {log_path}",
                )
        elif status == "success" and self._close(incident):
            self.send(f"daybreak: {job} recovered", f"Job {job} succeeded again (run {run_id}).")

    def tick_missed(self, job: str, tick: dt.datetime) -> None:
        if self._open(f"missed:{job}:{iso(tick)}"):
            self.send(
                f"daybreak: {job} missed its {tick:%Y-%m-%d %H:%M} UTC run",
                f"The runner was not running at {iso(tick)}; the tick was not replayed.",
            )

    def warehouse_held(
        self, holder: dict[str, Any], waited: dt.timedelta, what: str, warehouse: Path
    ) -> None:
        """A program outside daybreak has held the warehouse long enough to say so (once)."""
        program = holder.get("program") or "another program"
        who = f"{program} (pid {holder['pid']})" if holder.get("pid") else program
        if self._open(f"warehouse-held:{warehouse}:{holder.get('pid')}"):
            self.send(
                f"daybreak: the warehouse is held by {who}",
                f"{what} has waited {waited.total_seconds() / 60:.0f} min for {warehouse}, which "
                f"{who} has open. Close that session (DuckDB CLI, DBeaver, Tableau) or point it at "
                "the read-only copy; the build goes on by itself once it is free.",
            )

    def volume(self, asset: str, warning: str) -> None:
        """A daily file far below its usual volume: once per file."""
        if self._open(f"volume:{asset}:{warning.split(':', 1)[0]}"):
            self.send(f"daybreak: {asset} received a probable partial export", warning)

    def stale(self, asset: str, deadline: dt.datetime, last_success: str | None) -> None:
        if self._open(f"stale:{asset}:{iso(deadline)}"):
            self.send(
                f"daybreak: {asset} is not current",
                f"{asset} owed fresh data by {deadline.isoformat()}; last success: "
                f"{last_success or 'never'}.",
            )

    def input_late(
        self, job: str, asset: str, day: str, usual_to: str | None, minutes: int | None,
        expected_file: str | None, deadline_asset: str | None, deadline: str | None,
        expected_at: str | None,
    ) -> None:  # fmt: skip
        """An input later than its usual time by the margin: once a day, naming the file."""
        if not self._open(f"late:{job}:{asset}:{day}"):
            return
        lines = [f"{asset} has not landed yet: usually by {usual_to}, now {minutes} min later.",
                 f"File expected: {expected_file or 'a new file (none seen yet)'}."]  # fmt: skip
        if deadline:
            lines.append(f"Deadline at risk: {deadline_asset} must be current by {deadline}.")
        if expected_at:
            lines.append(f"Expected current at {expected_at} if it lands now.")
        lines.append(f"Job {job} runs when it lands (or at its latest without it).")
        self.send(f"daybreak: {asset} is late for {job}", "\n".join(lines))

    def inputs_missing(self, job: str, missing: list[str], latest: dt.datetime) -> None:
        """A job ran (or would have) at its latest without these inputs: once."""
        if self._open(f"missing:{job}:{iso(latest)}"):
            self.send(
                f"daybreak: {job} ran at its latest without {', '.join(missing)}",
                f"By {latest.isoformat()} these inputs had not arrived: {', '.join(missing)}. "
                f"Job {job} ran with what had arrived; it runs again when they land.",
            )

    def interrupted(self, job: str | None, run_id: str, started_at: str) -> None:
        """A run whose process died before it ended: once."""
        if self._open(f"interrupted:{run_id}"):
            self.send(
                f"daybreak: {job or 'a run'} was interrupted",
                f"Run {run_id} ({job or 'materialize'}, started {started_at}) stopped when its "
                "process did (killed, or the machine went down). The next run takes it up; "
                "nothing it had half written was published.",
            )

    def recovered(self, what: str, note: str) -> None:
        """A file that no longer opened was kept aside and replaced: once."""
        if self._open(f"recovered:{what}"):
            self.send(f"daybreak: recovered from a damaged file ({what})", note)
