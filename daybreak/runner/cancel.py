"""Cancelling a run: asked for in the state database, seen by the run's own process.

`runner.py cancel RUN_ID` and the page's Cancel button only write the request on the run's row
(`History.request_cancel`: who, when). The process running it, whichever it is (the long-lived
runner, a CLI run, a backfill in another terminal), has a `CancelWatch` that reads the row every
`POLL_SECONDS` and sets the run's stop event. The run then stops at its next safe point:

- between assets: no asset starts once the run is stopping (daybreak.runner.materialize);
- between backfill chunks: the chunk running finishes or is cancelled inside, and the same
  `runner.py backfill` command later takes the backfill up again from its first chunk not done;
- inside dbt: dbt's own cancellation (daybreak.warehouse.dbt_project): the running statements are
  interrupted and rolled back, so each table is as it was before the build or as the build made it;
- during a retry's wait: the wait ends at once.

The run ends `cancelled` (with who and when in its error), which is not a failure: nothing is
alerted, and `why` and the page say who cancelled it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from types import TracebackType

from daybreak.runner.history import History

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # one indexed read of the state database per running run


def cancelled_error(asked: tuple[str, str]) -> str:
    at, by = asked
    return f"cancelled by {by} at {at}"


class CancelWatch:
    """Sets `stop` once a cancel is asked for any of `run_ids`, or once `outer` (the runner
    stopping) is set; one daemon thread per running run, ended with the run."""

    def __init__(
        self,
        history: History,
        run_ids: Sequence[str | None],
        outer: threading.Event | None = None,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.history = history
        self.run_ids = [r for r in run_ids if r]
        self.outer = outer
        self.poll = poll
        # The run's own: a cancel never stops the whole runner. `cancel` is set by a cancel only
        # (no asset starts, dbt is cancelled); `stop` by a cancel or the runner stopping (a retry
        # stops waiting; a runner stopping otherwise lets the run finish within its grace).
        self.cancel = threading.Event()
        self.stop = threading.Event()
        self.requested: tuple[str, str] | None = None  # (when, by whom)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="cancel-watch", daemon=True)

    def __enter__(self) -> CancelWatch:
        if self.outer is not None and self.outer.is_set():
            self.stop.set()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()

    def check(self) -> tuple[str, str] | None:
        """Read the request now (the watch also does, every `poll` seconds); a database that
        cannot be read just now answers with what is known."""
        with self._lock:
            if self.requested is None:
                try:
                    asked = self.history.cancel_request(self.run_ids)
                except Exception as exc:  # busy or locked: read again next time
                    log.debug("cancel watch: %s", exc)
                    return None
                if asked is not None:
                    self.requested = asked
                    log.warning("%s: stopping at the next safe point", cancelled_error(asked))
                    self.cancel.set()
                    self.stop.set()
            return self.requested

    def _watch(self) -> None:
        while not self._done.wait(self.poll):
            if self.outer is not None and self.outer.is_set():
                self.stop.set()
            if self.check() is not None:
                return
