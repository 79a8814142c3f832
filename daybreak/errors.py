"""Error kinds daybreak treats differently, and the arithmetic of waiting before a retry.

- ConfigError and UsageError (its kinds: an unknown name, an unknown run) stop a command with
  exit code 2 and one line naming what is wrong; they are never retried.
- Transient failures (network, timeouts, throttling, 5xx, a lock held too long) may go away on
  their own: `is_transient` says which, `backoff_seconds` how long to wait before trying again.
"""

from __future__ import annotations

import errno
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

Backoff = Literal["constant", "linear", "exponential"]


class ConfigError(Exception):
    """A configuration file, key or environment variable is missing or wrong."""


class UsageError(ValueError):
    """A command was given something it cannot use (an argument, a name, a run id)."""


class UnknownNameError(UsageError):
    """An asset, group or job name that is not in the graph or the config."""


class UnknownRunError(UsageError):
    """A run id that is not in the history."""


class TransientError(Exception):
    """A failure that may go away on its own (network, timeout, throttling, a 5xx); retry it.

    `retry_after`: seconds the server asked to be left alone (a 429's Retry-After); the runner
    waits at least that long before the next attempt.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> Any:  # pickled whole (a Dask worker raises it to the runner)
        return (_transient, (str(self), self.retry_after))


def _transient(message: str, retry_after: float | None) -> TransientError:
    return TransientError(message, retry_after=retry_after)


def backoff_seconds(
    delay: float,
    attempt: int,
    kind: Backoff = "exponential",
    *,
    max_delay: float | None = None,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    exponential: delay, 2 delay, 4 delay, ...; linear: delay, 2 delay, 3 delay; constant: delay.
    Capped at `max_delay`, then up to `jitter` (a fraction) of the wait is added at random.
    """
    if kind == "constant":
        seconds = delay
    elif kind == "linear":
        seconds = delay * attempt
    else:
        seconds = delay * 2 ** (attempt - 1)
    if max_delay is not None:
        seconds = min(seconds, max_delay)
    return seconds * (1 + jitter * rand())


# DuckDB's words when another process holds a database file (Linux names it; Windows does not).
LOCK_CONFLICT = re.compile(
    r"Could not set lock on file|Conflicting lock is held|being used by another process|"
    r"cannot access the file",
    re.IGNORECASE,
)

_TRANSIENT_NAMES = {
    # requests / urllib3
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError",
    # azure-core
    "ServiceRequestError", "ServiceResponseError",
    # filelock's Timeout shares requests' name
    # distributed: the worker running the asset died (the retry goes to another worker)
    "KilledWorker",
}  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: network, timeouts, throttling, 5xx, a held lock."""
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return True
    if LOCK_CONFLICT.search(str(exc)):  # a program outside daybreak holds the warehouse
        return True
    if type(exc).__name__ in _TRANSIENT_NAMES:
        return True
    status = getattr(exc, "status_code", None)  # azure HttpResponseError and friends
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


# A full disk as the OS (errno 28, Windows' ERROR_DISK_FULL 112 and ERROR_HANDLE_DISK_FULL 39)
# and the libraries that wrap it (DuckDB, pyarrow, SQLite) say it.
_DISK_FULL = re.compile(r"No space left on device|not enough space on the disk|disk is full|"
                        r"database or disk is full", re.IGNORECASE)  # fmt: skip
_QUOTED_PATH = re.compile(r"""["']((?:/|[A-Za-z]:[\\/])[^"']+)["']""")


class DiskFull(OSError):
    """A write failed for want of space: errno ENOSPC with the path it was writing."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(errno.ENOSPC, "No space left on device", str(path))


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a full disk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        winerror = getattr(current, "winerror", None)
        if isinstance(current, OSError) and (
            current.errno == errno.ENOSPC or winerror in (39, 112)
        ):
            return True
        if _DISK_FULL.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException) -> str:
    """An exception as the history, the log and alerts say it: its kind and message, and for a
    full disk, the path and the free space on that disk, and what to do."""
    text = f"{type(exc).__name__}: {exc}"
    if not disk_full(exc):
        return text
    path = getattr(exc, "filename", None)
    if not path:
        found = _QUOTED_PATH.search(str(exc))
        path = found.group(1) if found else None
    where = ""
    if path:
        probe = Path(path)
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
            where = f" writing {path} ({free / 1e6:,.1f} MB free on that disk)"
        except OSError:
            where = f" writing {path}"
    return (f"{text} [disk full{where}: nothing half-written was published; free some space "
            "and run again]")  # fmt: skip
