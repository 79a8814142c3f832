"""Heartbeat pings to a monitor outside this machine, for the day the desktop itself dies.

With `DAYBREAK_HEARTBEAT_URL` (environment or .env: the URL carries the check's token, so never
the config) and `[heartbeat] interval_minutes`, the scheduler pings the URL on that interval and,
with `signal_jobs`, signals each job's start (`<url>/start`) and failure (`<url>/fail`, the error
as the body), as healthchecks.io and compatible monitors (Uptime Kuma's push monitor takes the
plain pings) expect. The monitor alerts when pings stop: a dead machine cannot send an alert.
A ping that fails is logged once, then again when pings get through, and never stops a job.
"""

from __future__ import annotations

import datetime as dt
import logging

import requests

from daybreak import clock
from daybreak.logs import redact

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0


class Heartbeat:
    """Pings one URL: every `interval`, and on a job's start and failure."""

    def __init__(self, url: str, interval: dt.timedelta, *, signal_jobs: bool = True) -> None:
        self.url = url.rstrip("/")
        self.interval = interval
        self.signal_jobs = signal_jobs
        self.last: dt.datetime | None = None
        self._failing = False
        redact.register([url])  # the URL holds the check's token

    def next_due(self) -> dt.datetime:
        return clock.now() if self.last is None else self.last + self.interval

    def beat_if_due(self, now: dt.datetime) -> bool:
        """Ping if the interval has passed; True if a ping went out and was accepted."""
        if self.last is not None and now < self.last + self.interval:
            return False
        self.last = now
        return self.ping()

    def job_started(self, job: str) -> None:
        if self.signal_jobs:
            self.ping("start", f"{job} started")

    def job_failed(self, job: str, error: str | None) -> None:
        if self.signal_jobs:
            self.ping("fail", f"{job} failed: {error or 'see the run log'}")

    def ping(self, kind: str = "", message: str = "") -> bool:
        url = f"{self.url}/{kind}" if kind else self.url
        try:
            response = requests.post(
                url, data=redact(message).encode("utf-8"), timeout=TIMEOUT_SECONDS
            )
            ok = response.status_code < 400
            problem = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            ok, problem = False, type(exc).__name__
        if not ok and not self._failing:
            log.warning("heartbeat ping failed (%s); the monitor will report the runner down "
                        "if this goes on", problem)  # fmt: skip
        elif ok and self._failing:
            log.info("heartbeat pings get through again")
        self._failing = not ok
        return ok
