"""The DuckDB warehouse's single-writer lock, shared by threads and processes.

DuckDB lets one process write a database file at a time. Every daybreak writer (dbt builds,
backups, exports that read under a consistent view) takes this lock first; a second writer waits
and logs who holds it, instead of failing with DuckDB's lock error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

_LOG_EVERY_SECONDS = 60.0
# One re-entrant thread lock and one FileLock (itself re-entrant) per lock file: threads of this
# process wait in turn, and a holder may take it again (an asset that calls a dbt build).
_locks: dict[Path, tuple[threading.RLock, FileLock]] = {}
_guard = threading.Lock()


def _paths(state_dir: Path) -> tuple[Path, Path]:
    folder = state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "warehouse.lock", folder / "warehouse.holder.json"


def holder(state_dir: Path) -> dict[str, object] | None:
    """Who holds the warehouse lock now (pid, host, what, since), if anyone says so."""
    _, info = _paths(state_dir)
    try:
        return dict(json.loads(info.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


@contextlib.contextmanager
def warehouse_lock(state_dir: Path, what: str) -> Iterator[None]:
    """Hold the warehouse's single-writer lock for the block; wait (and say so) if it is taken."""
    lock_path, info = _paths(state_dir)
    with _guard:
        thread_lock, lock = _locks.setdefault(lock_path, (threading.RLock(), FileLock(lock_path)))
    with thread_lock:
        if lock.is_locked:  # this thread holds it already
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
            return
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
                    holder(state_dir) or "another process",
                )
        try:
            info.write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "what": what,
                        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    }
                ),
                encoding="utf-8",
            )
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                info.unlink()
            lock.release()
