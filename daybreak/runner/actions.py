"""Starting and stopping work on someone's word: run a job, rerun from failure, backfill, cancel.

The one home of what the CLI (`runner.py run|rerun|backfill|cancel`) and the page's buttons
(`/actions/*`, daybreak.views.web) do, so both take the same code path and every action is
recorded in the history's `actions` table with its origin ("cli (user on host)", "page
(client address)") and outcome, refused ones included. A run keeps its origin too (`runs.origin`).

`Launcher` starts runs in threads of the calling process (the long-lived runner when the page
asks) and returns as soon as the run is recorded, with its id: at most `max_running` at once, and
never a second run of a job that is already running.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daybreak.assets import catalogue
from daybreak.config import Settings
from daybreak.errors import UnknownNameError, UnknownRunError, describe
from daybreak.logs import redact
from daybreak.runner import recovery
from daybreak.runner.backfill import backfill
from daybreak.runner.execute import ObserverFactory, execute_run, rerun_selection
from daybreak.runner.history import History, RunRecord

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0  # a run is recorded first thing; this long means something is wrong


class Refused(Exception):
    """An action that cannot be done now (a job already running, nothing to rerun, too many
    runs): the page answers 409 with the message."""


def cli_origin() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a service account without one)
        user = "unknown user"
    return f"cli ({user} on {socket.gethostname()})"


def page_origin(client: str | None) -> str:
    return f"page ({client or 'unknown client'})"


@dataclass(frozen=True)
class Cancelled:
    outcome: str  # requested | already | ended
    run: RunRecord
    message: str


def recorder(settings: Settings, action: str, params: dict[str, Any], origin: str
             ) -> Callable[[str], None]:  # fmt: skip
    """An `on_start` for a run the CLI starts: the action recorded with the run it started."""
    return lambda run_id: History(settings.state).record_action(
        action, params, origin, "started", run_id
    )


def cancel(settings: Settings, run_id: str, origin: str) -> Cancelled:
    """Ask a run to stop at its next safe point (daybreak.runner.cancel); recorded."""
    history = History(settings.state)
    recovery.reap(settings, history)  # a run whose process is gone is not 'running'
    try:
        outcome, run = history.request_cancel(run_id, origin)
    except UnknownRunError as exc:
        history.record_action("cancel", {"run_id": run_id}, origin, f"refused: {exc}")
        raise
    message = {
        "requested": f"cancel asked for run {run.run_id}: it stops at its next safe point",
        "already": f"run {run.run_id} is already stopping (cancel asked by "
        f"{run.cancel_requested_by} at {run.cancel_requested_at})",
        "ended": f"run {run.run_id} is not running: it ended {run.status}",
    }[outcome]
    history.record_action("cancel", {"run_id": run_id}, origin, message, run.run_id)
    return Cancelled(outcome, run, message)


def running_job(history: History, job: str) -> RunRecord | None:
    """The run of `job` going on now, if any (backfills included)."""
    for run in history.runs(job=job, limit=5):
        if run.status == "running":
            return run
    return None


class Launcher:
    """Starts runs in background threads for the page; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        observers: Sequence[ObserverFactory] = (),
        stop: threading.Event | None = None,
        max_running: int | None = None,
    ) -> None:
        self.settings = settings
        self.observers = list(observers)
        self.stop = stop  # the runner stopping: runs end as the scheduler's do
        self.max_running = max_running or settings.web.max_page_runs
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # One start at a time, from its checks until its run is recorded: two clicks at once
        # never start the same job twice, nor more than max_running.
        self._starting = threading.Lock()

    def running(self) -> int:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return len(self._threads)

    def join(self, timeout: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout)

    def _launch(self, action: str, params: dict[str, Any], origin: str,
                start: Callable[[Callable[[str], None]], Any]) -> str:  # fmt: skip
        """Run `start(on_start)` in a thread; the run id once the run is recorded."""
        history = History(self.settings.state)
        if self.running() >= self.max_running:
            message = (f"{self.max_running} runs started from the page are still going; "
                       "wait for one to end")  # fmt: skip
            history.record_action(action, params, origin, f"refused: {message}")
            raise Refused(message)
        started = threading.Event()
        box: dict[str, Any] = {}

        def on_start(run_id: str) -> None:
            box["run_id"] = run_id
            started.set()

        def target() -> None:
            try:
                start(on_start)
            except BaseException as exc:  # before it was recorded: the caller says so
                box.setdefault("error", exc)
                if "run_id" not in box:
                    started.set()
                else:
                    log.exception("%s from the page failed", action)

        thread = threading.Thread(target=target, name=f"page-{action}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()
        if not started.wait(START_TIMEOUT_SECONDS):
            history.record_action(action, params, origin, "accepted; not yet recorded")
            raise Refused(f"the {action} did not start within {START_TIMEOUT_SECONDS:.0f} s")
        if "run_id" not in box:
            error = box.get("error")
            history.record_action(action, params, origin, f"refused: {error}")
            raise error if isinstance(error, Exception) else Refused(str(error))
        run_id = str(box["run_id"])
        history.record_action(action, params, origin, "started", run_id)
        return run_id

    def run_job(self, job: str, origin: str, *, full: bool = False) -> str:
        """Run now: the job's ordinary run (its plan skips what is up to date), or with `full`
        a full refresh (`runner.py run JOB --full`)."""
        params: dict[str, Any] = {"job": job, **({"full": True} if full else {})}
        history = History(self.settings.state)
        if job not in self.settings.jobs:
            message = f"unknown job {job!r} (jobs: {', '.join(self.settings.jobs) or 'none'})"
            history.record_action("run", params, origin, f"refused: {message}")
            raise UnknownNameError(message)
        select = self.settings.jobs[job].select
        with self._starting:
            self._not_running(history, job, "run", params, origin)
            return self._launch("run", params, origin, lambda on_start: execute_run(
                self.settings, select, job=job, trigger="manual", stop=self.stop,
                observers=self.observers, origin=origin, on_start=on_start, full_refresh=full,
            ))  # fmt: skip

    def materialize(self, names: list[str], origin: str, *, full: bool = False) -> str:
        """Materialize assets (or groups) with what they need (`runner.py materialize`)."""
        params: dict[str, Any] = {"assets": names, **({"full": True} if full else {})}
        history = History(self.settings.state)
        assets = self._graph("materialize", params, origin, history)
        try:
            catalogue.select(assets, names)
        except UnknownNameError as exc:
            history.record_action("materialize", params, origin, f"refused: {exc}")
            raise
        with self._starting:
            return self._launch("materialize", params, origin, lambda on_start: execute_run(
                self.settings, names, trigger="manual", stop=self.stop, observers=self.observers,
                origin=origin, on_start=on_start, full_refresh=full,
            ))  # fmt: skip

    def rerun(self, run_id: str, origin: str, *, from_failure: bool = True) -> str:
        """Rerun from failure: what failed, was skipped or never ran, and what is below it."""
        params = {"run_id": run_id, "from_failure": from_failure}
        history = History(self.settings.state)
        run = history.run(run_id)
        if run is None:
            history.record_action("rerun", params, origin, "refused: unknown run")
            raise UnknownRunError(f"unknown run {run_id!r} (see `runner.py history`)")
        if run.status == "running":
            history.record_action("rerun", params, origin, "refused: still running")
            raise Refused(f"run {run_id} is still running")
        assets = self._graph("rerun", params, origin, history)
        selection = rerun_selection(history, assets, run, from_failure=from_failure)
        if not selection:
            message = f"run {run_id} has nothing that failed or was skipped: nothing to rerun"
            history.record_action("rerun", params, origin, f"refused: {message}")
            raise Refused(message)
        with self._starting:
            if run.job:
                self._not_running(history, run.job, "rerun", params, origin)
            return self._launch("rerun", params, origin, lambda on_start: execute_run(
                self.settings, selection, job=run.job, trigger="rerun", rerun_of=run.run_id,
                stop=self.stop, observers=self.observers, origin=origin, on_start=on_start,
            ))  # fmt: skip

    def backfill(
        self, job: str, start: dt.date, end: dt.date, origin: str, *, chunk_days: int = 7
    ) -> str:
        """A backfill of `job` over [start, end]; the same as `runner.py backfill` (and resumed
        by it, or by this again)."""
        params = {"job": job, "start": start.isoformat(), "end": end.isoformat(),
                  "chunk_days": chunk_days}  # fmt: skip
        history = History(self.settings.state)
        if job not in self.settings.jobs:
            message = f"unknown job {job!r} (jobs: {', '.join(self.settings.jobs) or 'none'})"
            history.record_action("backfill", params, origin, f"refused: {message}")
            raise UnknownNameError(message)
        with self._starting:
            self._not_running(history, job, "backfill", params, origin)
            return self._launch("backfill", params, origin, lambda on_start: backfill(
                self.settings, job, start, end, chunk_size=chunk_days, stop=self.stop,
                observers=self.observers, origin=origin, on_start=on_start,
            ))  # fmt: skip

    def _graph(
        self, action: str, params: dict[str, Any], origin: str, history: History
    ) -> dict[str, catalogue.Asset]:
        """The asset graph, or a refusal that says why it cannot be built now (a dbt project
        that does not parse): recorded, never a bare 500."""
        try:
            return catalogue.catalogue(catalogue.build_driver(self.settings))
        except Exception as exc:
            message = f"the asset graph cannot be built: {redact(describe(exc))}"
            history.record_action(action, params, origin, f"refused: {message}")
            raise Refused(message) from None

    def _not_running(
        self, history: History, job: str, action: str, params: dict[str, Any], origin: str
    ) -> None:
        recovery.reap(self.settings, history)
        busy = running_job(history, job)
        if busy is not None:
            message = f"{job} is already running (run {busy.run_id})"
            history.record_action(action, params, origin, f"refused: {message}")
            raise Refused(message)
