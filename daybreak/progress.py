"""Live progress of a run, as events: an asset's state, files done in a sync, a dbt node finished.

Whoever does the work emits (the materializer, a sync, dbt's event callbacks, a backfill); a view
that wants to show it listens (`runner.py run` on a terminal draws them with rich). Nothing
listens in the scheduler, and then `emit` costs one check. Listeners are called on the thread
that emits, so they must be quick and thread-safe; an exception in one is logged, never raised
into the work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str  # asset | files | node | backfill
    name: str  # the asset, dbt node or backfill it is about
    status: str  # running | success | failed | skipped | retrying | fresh | warn | pass | error
    done: int | None = None  # files or days done ...
    total: int | None = None  # ... of this many
    detail: str = ""


Listener = Callable[[Event], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def emit(event: Event) -> None:
    if not _listeners:
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a broken display must not break a run
            log.debug("progress listener failed", exc_info=True)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` with every event emitted while the block runs."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)
