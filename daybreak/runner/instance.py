"""One scheduler per state folder, and what it says about itself: pid, since, last heartbeat.

The scheduler holds a file lock (`<state>/locks/scheduler.lock`, filelock: fcntl on POSIX,
msvcrt on Windows) for as long as it runs, so a second `runner.py` on the same state folder stops
with exit 2 naming the first one's pid and start time. A port is no guard: on Windows a second
process can bind the status page's port too. Beside the lock, `scheduler.json` says who holds
it and when it last beat; it stays after a stop, so `status` can say when the runner was last
seen.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from daybreak import clock, processes
from daybreak.errors import UsageError
from daybreak.files import write_atomic
from daybreak.state import StateLayout


class AlreadyRunning(UsageError):
    """Another scheduler holds this state folder."""


log = logging.getLogger(__name__)


def _info_path(layout: StateLayout) -> Path:
    return layout.locks / "scheduler.json"


def read_info(layout: StateLayout) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return dict(json.loads(_info_path(layout).read_text(encoding="utf-8")))
    return None


class RunnerInstance:
    """Held by the scheduler while it runs (`with RunnerInstance(layout) as me: ...`)."""

    def __init__(self, layout: StateLayout) -> None:
        self.layout = layout
        layout.locks.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(layout.lock("scheduler"))
        self.info: dict[str, Any] = {}

    def __enter__(self) -> RunnerInstance:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            other = read_info(self.layout) or {}
            raise AlreadyRunning(
                f"another runner is already running on {self.layout.root}: pid "
                f"{other.get('pid', '?')} on {other.get('host', '?')}, started "
                f"{other.get('started_at', '?')}; stop it first (one scheduler per state folder)"
            ) from None
        before = read_info(self.layout)
        if before is not None and before.get("stopped_at") is None:
            log.warning("took over the scheduler lock of pid %s on %s (started %s): it stopped "
                        "without saying so (killed, or the machine went down)", before.get("pid"),
                        before.get("host"), before.get("started_at"))  # fmt: skip
        self.info = {
            "pid": os.getpid(),
            "process_key": processes.own_key(),
            "host": socket.gethostname(),
            "started_at": clock.now().isoformat(timespec="seconds"),
            "last_heartbeat": None,
            "stopped_at": None,
        }
        self._write()
        return self

    def beat(self, **extra: Any) -> None:
        """Record that the runner is alive now (and anything else worth showing)."""
        self.info.update(last_heartbeat=clock.now().isoformat(timespec="seconds"), **extra)
        self._write()

    def _write(self) -> None:
        write_atomic(_info_path(self.layout), json.dumps(self.info, indent=2))

    def __exit__(self, *exc: object) -> None:
        self.info["stopped_at"] = clock.now().isoformat(timespec="seconds")
        with contextlib.suppress(OSError):
            self._write()
        self._lock.release()


def runner_state(layout: StateLayout) -> dict[str, Any]:
    """Whether a scheduler runs on this state folder now: alive with its pid, since when and its
    last heartbeat, or when it was last seen."""
    from daybreak.runner.history import process_alive

    info = read_info(layout)
    if info is None:
        return {"alive": False, "last_seen": None}
    same_host = info.get("host") == socket.gethostname()
    alive = (
        info.get("stopped_at") is None
        and same_host
        and isinstance(info.get("pid"), int)
        and process_alive(int(info["pid"]), info.get("process_key"))
    )
    seen = info.get("last_heartbeat") or info.get("started_at")
    state = {"alive": alive, **info, "last_seen": info.get("stopped_at") or seen}
    if not same_host and info.get("stopped_at") is None:
        state["note"] = f"recorded by host {info.get('host')}; cannot check its process from here"
    return state
