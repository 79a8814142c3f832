"""Is the process that wrote this record still alive? Liveness by host, pid and start time.

A pid alone is not enough: after a reboot (or on a busy machine) the pid a killed runner had is
reused by another program, and a run recorded by that pid would look alive forever. Every record
of a live process (a run, the scheduler, the warehouse lock's holder) keeps the process's start
time beside its pid, read from the OS through psutil (Linux, Windows and macOS alike); a record
is alive when a process with that pid exists on this host and started when the record says.
"""

from __future__ import annotations

import functools
import os
import socket


def started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), None if there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return None
    except psutil.AccessDenied:  # exists, owned by someone else: alive, start unknown
        return -1.0


@functools.cache
def _start_of(pid: int) -> float | None:
    return started(pid)


def own_start() -> float | None:
    """This process's start time (what a record of this process keeps)."""
    return _start_of(os.getpid())  # keyed by pid: a forked child asks for its own


def alive(pid: int, start: float | None = None, host: str | None = None) -> bool:
    """Whether the process a record names still runs. Another host's process cannot be seen
    from here: it counts as alive. Without a start time (a record from an older daybreak), the
    pid alone decides."""
    if host is not None and host != socket.gethostname():
        return True
    now = started(pid)
    if now is None:
        return False
    if start is None or now < 0:
        return True
    return abs(now - start) < 1.0  # psutil rounds; a reused pid started much later
