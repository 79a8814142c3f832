"""The DuckDB warehouse's single-writer lock, shared by threads and processes.

DuckDB lets one process write a database file at a time. Every daybreak writer (dbt builds,
backups, exports that read under a consistent view) takes this lock first; a second writer waits
and logs who holds it, instead of failing with DuckDB's lock error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from daybreak import clock
from daybreak.state import StateLayout

log = logging.getLogger(__name__)

_LOG_EVERY_SECONDS = 60.0
# One re-entrant thread lock and one FileLock (itself re-entrant) per lock file: threads of this
# process wait in turn, and a holder may take it again (an asset that calls a dbt build).
_locks: dict[Path, tuple[threading.RLock, FileLock]] = {}
_guard = threading.Lock()


def _paths(layout: StateLayout) -> tuple[Path, Path]:
    layout.locks.mkdir(parents=True, exist_ok=True)
    return layout.lock("warehouse"), layout.locks / "warehouse.holder.json"


def holder(layout: StateLayout) -> dict[str, object] | None:
    """Who holds the warehouse lock now (pid, host, what, since), if anyone says so."""
    _, info = _paths(layout)
    try:
        return dict(json.loads(info.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


def waiting(layout: StateLayout) -> list[dict[str, object]]:
    """Who is waiting for the warehouse lock now (what, pid, host, since)."""
    folder = layout.lock_waiters
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError, ValueError):
            found.append(dict(json.loads(path.read_text(encoding="utf-8"))))
    return found


def _stamp(what: str) -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "what": what,
            "since": clock.now().isoformat(timespec="seconds"),
        }
    )


_owners: dict[Path, int] = {}  # lock file -> the thread of this process that holds it


@contextlib.contextmanager
def warehouse_lock(layout: StateLayout, what: str) -> Iterator[None]:
    """Hold the warehouse's single-writer lock for the block; wait (and say so) if it is taken.

    Re-entrant for the thread that holds it (an asset holding it may call a dbt build).
    """
    lock_path, info = _paths(layout)
    with _guard:
        thread_lock, lock = _locks.setdefault(lock_path, (threading.RLock(), FileLock(lock_path)))
    if _owners.get(lock_path) == threading.get_ident():
        yield
        return
    waiter = layout.lock_waiters / f"{os.getpid()}-{threading.get_ident()}.json"
    waiter.parent.mkdir(parents=True, exist_ok=True)
    waiter.write_text(_stamp(what), encoding="utf-8")
    try:
        thread_lock.acquire()
        try:
            waited = 0.0
            while True:
                try:
                    lock.acquire(timeout=_LOG_EVERY_SECONDS if waited else 0.5)
                    break
                except Timeout:
                    waited += _LOG_EVERY_SECONDS if waited else 0.5
                    log.info(
                        "%s is waiting for the warehouse lock, held by %s",
                        what,
                        holder(layout) or "another process",
                    )
        except BaseException:
            thread_lock.release()
            raise
    finally:
        waiter.unlink(missing_ok=True)
    _owners[lock_path] = threading.get_ident()
    try:
        info.write_text(_stamp(what), encoding="utf-8")
        yield
    finally:
        _owners.pop(lock_path, None)
        with contextlib.suppress(FileNotFoundError):
            info.unlink()
        lock.release()
        thread_lock.release()
