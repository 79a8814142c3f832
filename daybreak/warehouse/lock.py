"""The DuckDB warehouse's single-writer lock, shared by threads and processes, and the wait for
programs outside daybreak that hold the file.

DuckDB lets one process write a database file at a time. Every daybreak writer (dbt builds,
backups, exports that read under a consistent view) takes `warehouse_lock` first; a second writer
waits and logs who holds it, instead of failing with DuckDB's lock error. A program outside
daybreak cannot take that lock, so a writer then also waits (`wait_until_free`) until DuckDB lets
it open the file, naming the holder, alerting once after a while and failing only after
`[warehouse] lock_timeout_minutes`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
from filelock import FileLock, Timeout

from daybreak import clock, processes
from daybreak.errors import LOCK_CONFLICT
from daybreak.files import write_atomic
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


def _recorded(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


def _live(record: dict[str, Any]) -> bool:
    """Whether the process a lock record names still runs (pid, start time, host)."""
    pid = record.get("pid")
    return not isinstance(pid, int) or processes.alive(pid, record.get("process_key"),
                                                       record.get("host"))  # fmt: skip


def holder(layout: StateLayout) -> dict[str, object] | None:
    """Who holds the warehouse lock now (pid, host, what, since), if anyone alive says so."""
    found = _recorded(_paths(layout)[1])
    return found if found is not None and _live(found) else None


def waiting(layout: StateLayout) -> list[dict[str, object]]:
    """Who is waiting for the warehouse lock now (what, pid, host, since)."""
    folder = layout.lock_waiters
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = _recorded(path)
        if record is not None and _live(record):
            found.append(record)
        elif record is not None:  # a waiter that died waiting
            path.unlink(missing_ok=True)
    return found


def _stamp(what: str) -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "process_key": processes.own_key(),
            "host": socket.gethostname(),
            "what": what,
            "since": clock.now().isoformat(timespec="seconds"),
        }
    )


_owners: dict[Path, int] = {}  # lock file -> the thread of this process that holds it


@contextlib.contextmanager
def warehouse_lock(layout: StateLayout, what: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the warehouse's single-writer lock for the block; wait (and say so) if it is taken.
    With `wait=False`, take it only if it is free now: the block gets False if it was not.

    Re-entrant for the thread that holds it (an asset holding it may call a dbt build). A holder
    that died left its record behind (the OS released its lock): that is said once, when the lock
    is taken over.
    """
    lock_path, info = _paths(layout)
    with _guard:
        thread_lock, lock = _locks.setdefault(lock_path, (threading.RLock(), FileLock(lock_path)))
    if _owners.get(lock_path) == threading.get_ident():
        yield True
        return
    if not wait:
        if not thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            lock.acquire(timeout=0)
        except Timeout:
            thread_lock.release()
            yield False
            return
    else:
        _acquire(layout, what, thread_lock, lock)
    _owners[lock_path] = threading.get_ident()
    try:
        left = _recorded(info)
        if left is not None:
            log.warning("took over the warehouse lock left by %s (pid %s on %s, since %s): its "
                        "process is gone", left.get("what"), left.get("pid"), left.get("host"),
                        left.get("since"))  # fmt: skip
        info.write_text(_stamp(what), encoding="utf-8")
        yield True
    finally:
        _owners.pop(lock_path, None)
        with contextlib.suppress(FileNotFoundError):
            info.unlink()
        lock.release()
        thread_lock.release()


def _acquire(layout: StateLayout, what: str, thread_lock: threading.RLock, lock: FileLock) -> None:
    """Wait for the lock, saying in the log who holds it, and (for status) that `what` waits."""
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


# -- programs outside daybreak -------------------------------------------------------------------
# DuckDB lets one process open a database file for writing, and a read-only session of another
# process (the DuckDB CLI, DBeaver, Tableau) is enough to keep every writer out. A daybreak writer
# therefore waits for the file to be free, saying who holds it, instead of failing at once.

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseBusy(Exception):
    """Another program held the warehouse for longer than `[warehouse] lock_timeout_minutes`."""


def lock_conflict(message: str) -> dict[str, Any] | None:
    """Who holds the warehouse, from DuckDB's lock error (None: not a lock error).

    On Linux DuckDB names the holder's program and pid; on Windows it says only that the file
    is in use, so the holder is looked up among the processes that have it open.
    """
    if not LOCK_CONFLICT.search(message):
        return None
    found = _HOLDER.search(message)
    if found:
        return _describe(int(found["pid"]), found["program"])
    return {"pid": None, "program": None}


def _describe(pid: int, program: str | None = None) -> dict[str, Any]:
    """pid, program and its command line where the OS tells (psutil)."""
    import psutil

    holder: dict[str, Any] = {"pid": pid, "program": program}
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        holder["program"] = process.name() or program
        holder["command"] = " ".join(process.cmdline())[:300]
    return holder


def holders_of(path: Path) -> list[dict[str, Any]]:
    """Processes other than this one that have `path` open (best effort: what the OS lets us
    see); how the holder is named where DuckDB's message does not say."""
    import psutil

    target = str(path.resolve())
    found = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if any(f.path == target for f in process.open_files()):
                found.append(_describe(process.pid))
    return found


def probe(warehouse: Path) -> dict[str, Any] | None:
    """Open the warehouse for writing and close it: None if that worked, else who holds it.

    Errors other than a lock conflict are raised (a damaged file is no reason to wait).
    """
    if not warehouse.exists():
        return None
    try:
        duckdb.connect(str(warehouse)).close()
    except duckdb.Error as exc:
        holder = lock_conflict(str(exc))
        if holder is None:
            raise
        if holder["pid"] is None:
            holder = next(iter(holders_of(warehouse)), holder)
        return {**holder, "message": str(exc).splitlines()[0][:300]}
    return None


def outside_holder(layout: StateLayout) -> dict[str, Any] | None:
    """The program outside daybreak that a writer is waiting for now, if one is."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        return dict(json.loads(_outside_path(layout).read_text(encoding="utf-8")))
    return None


def _outside_path(layout: StateLayout) -> Path:
    return layout.locks / "warehouse.outside.json"


def _named(holder: dict[str, Any]) -> str:
    program = holder.get("program") or "another program"
    return f"{program} (pid {holder['pid']})" if holder.get("pid") else program


def wait_until_free(
    warehouse: Path,
    layout: StateLayout,
    what: str,
    *,
    alert_after: dt.timedelta,
    timeout: dt.timedelta,
    on_long_wait: Callable[[dict[str, Any], dt.timedelta], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait, with backoff, until no program outside daybreak holds the warehouse; seconds waited.

    While it waits it says so in the log (at once, then every minute) and in
    `<state>/locks/warehouse.outside.json` (status and the page show it); `on_long_wait` is
    called once when the wait passes `alert_after`; after `timeout` it raises WarehouseBusy
    naming the holder and what to close.
    """
    started = time.monotonic()
    holder = probe(warehouse)
    if holder is None:
        return 0.0
    since = clock.now().isoformat(timespec="seconds")
    record = {**holder, "waiting": what, "since": since}
    write_atomic(_outside_path(layout), json.dumps(record, indent=2))
    log.warning("%s waits: the warehouse is held by %s outside daybreak (%s); close it there "
                "to let the build go on", what, _named(holder), holder.get("message"))  # fmt: skip
    alerted, pause, said = False, 0.5, started
    try:
        while holder is not None:
            waited = time.monotonic() - started
            if waited >= timeout.total_seconds():
                raise WarehouseBusy(
                    f"{what}: the warehouse {warehouse} was held by {_named(holder)} for "
                    f"{waited / 60:.0f} min ([warehouse] lock_timeout_minutes); close the "
                    "DuckDB CLI, DBeaver or Tableau session that has it open, or point them at "
                    "the read-only copy"
                )
            if not alerted and waited >= alert_after.total_seconds() and on_long_wait:
                on_long_wait(holder, dt.timedelta(seconds=waited))
                alerted = True
            if time.monotonic() - said >= 60:
                log.info("%s still waits for %s (%.0f min)", what, _named(holder), waited / 60)
                said = time.monotonic()
            sleep(pause)
            pause = min(pause * 2, 10.0)
            holder = probe(warehouse)
    finally:
        _outside_path(layout).unlink(missing_ok=True)
    seconds = time.monotonic() - started
    log.info("%s: the warehouse is free after %.0f s", what, seconds)
    return seconds
