"""`[concurrency]` limits: at most N assets with a tag run at once, across threads and processes.

The warehouse tag (`dbt_duckdb`) with limit 1 is the warehouse writer lock itself
(daybreak.warehouse.lock), so the writers' own locking and the configured limit are one and the
same; other tags get N slot files under `<state>/locks`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from filelock import FileLock, Timeout

from daybreak.state import StateLayout
from daybreak.warehouse.lock import warehouse_lock

log = logging.getLogger(__name__)

WAREHOUSE_TAG = "dbt_duckdb"


@contextlib.contextmanager
def tag_slot(layout: StateLayout, tag: str, limit: int, what: str) -> Iterator[None]:
    """Hold one of `limit` slots for assets tagged `tag` for the block; wait for one if needed."""
    if tag == WAREHOUSE_TAG and limit == 1:
        with warehouse_lock(layout, what):
            yield
        return
    layout.locks.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        for i in range(limit):
            # A fresh handle per attempt excludes this process's other threads too.
            slot = FileLock(layout.lock(f"tag-{tag}-{i}"))
            try:
                slot.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield
            finally:
                slot.release()
            return
        if not said:
            log.info("%s is waiting for one of %d %r slots", what, limit, tag)
            said = True
        time.sleep(0.2)
