"""Is the process that wrote this record still alive? Liveness by host, pid and start.

A pid alone is not enough: after a reboot (or on a busy machine) the pid a killed runner had is
reused by another program, and a run recorded by that pid would look alive forever. Every record
of a live process (a run, the scheduler, the warehouse lock's holder) keeps the process's key
beside its pid: what tells it from a later process with the same pid. On Linux that is the boot's
id and the start in clock ticks since boot (/proc), both fixed for the process's life; the
wall-clock start that psutil gives there is derived from the boot time, which moves when the
clock is corrected (NTP), so it would make a live process look dead. On Windows and macOS the OS
keeps the start as a fixed time, which psutil reads.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

_PROC = Path("/proc")


@functools.cache
def _boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None


def key(pid: int) -> str | None:
    """Process `pid`'s key (see the module docstring); None if there is no such process, ""
    if it exists but cannot be read (another user's)."""
    boot = _boot_id()
    if boot is not None:  # Linux
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return ""
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie: it has ended
            return None
        return f"{boot}:{fields[19]}"  # field 22 of stat: the start in ticks since boot
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.3f}"
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return None
    except psutil.AccessDenied:
        return ""


@functools.cache
def _key_of(pid: int) -> str | None:
    return key(pid)


def own_key() -> str | None:
    """This process's key (what a record of this process keeps)."""
    return _key_of(os.getpid())  # keyed by pid: a forked child asks for its own


def alive(pid: int, recorded: str | None = None, host: str | None = None) -> bool:
    """Whether the process a record names still runs. Another host's process cannot be seen
    from here: it counts as alive. Without a recorded key (a record from an older daybreak), the
    pid alone decides."""
    if host is not None and host != socket.gethostname():
        return True
    now = key(pid)
    if now is None:
        return False
    if not recorded or now == "":
        return True
    return now == str(recorded)
