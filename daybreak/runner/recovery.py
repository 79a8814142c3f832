"""After the plug is pulled: what a killed process left behind, found and put right.

Called by every command that reads or writes history (`reap`) and by the runner at start
(`at_start`). Policies (tests/test_crash.py, tests/test_recovery.py):
- A run whose process is gone (this host; pid and the process's start time, so a pid reused
  after a reboot does not count) ends `interrupted`, with its running attempts and backfill
  chunks, and is alerted once.
- The state database is checked at the runner's start (SQLite's quick check); one that fails it,
  or does not open at all in any command, is kept aside under <state>/broken and a new one
  started (daybreak.state); that is alerted once, saying what is lost.
- The DuckDB warehouse that does not open is kept aside, the newest backup that opens is put in
  its place or, with none, dbt rebuilds it from the lake; the plan builds every model again
  (daybreak.warehouse.backup.recover_warehouse); alerted once.
Locks need no recovery: they are OS locks (filelock), released when their owner dies; the record
a dead holder left is said once, when the lock is taken over.
"""

from __future__ import annotations

import logging

from daybreak.config import Settings
from daybreak.runner.alerts import Alerter, alert_urls
from daybreak.runner.history import History
from daybreak.state import RECOVERED_NOTE, StateDb
from daybreak.warehouse.backup import Recovery, recover_warehouse

log = logging.getLogger(__name__)


def reap(settings: Settings, history: History | None = None) -> list[str]:
    """Runs left `running` by a process that is gone end `interrupted`; each is alerted once,
    and so is each recovery noted under <state>/broken. Returns the runs."""
    history = history or History(settings.state)
    gone = history.mark_interrupted()
    alerter = Alerter(settings.state, alert_urls(settings))
    for run_id in gone:
        run = history.run(run_id)
        if run is not None:
            log.warning("run %s (%s) was left running by a process that is gone: interrupted",
                        run_id, run.job or "materialize")  # fmt: skip
            alerter.interrupted(run.job, run_id, run.started_at)
    folder = settings.state.broken
    for note in sorted(folder.glob(f"*/{RECOVERED_NOTE}")) if folder.is_dir() else []:
        alerter.recovered(note.parent.name, note.read_text(encoding="utf-8", errors="replace"))
    return gone


def warehouse(settings: Settings, *, wait: bool = False) -> Recovery | None:
    """The warehouse checked (and recovered if it does not open), the recovery alerted."""
    recovery = recover_warehouse(settings, wait=wait)
    if recovery is not None:
        reap(settings)  # its note is under <state>/broken: alerted once
    return recovery


def at_start(settings: Settings, history: History) -> None:
    """The runner's start: the state database's integrity, the warehouse, the dead runs."""
    StateDb(settings.state).check()
    warehouse(settings)
    reap(settings, history)
