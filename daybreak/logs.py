"""Logging for daybreak: every line names its asset, and no secret ever reaches a handler.

Redaction is a filter on the handlers, so it also covers messages and tracebacks that come from
third-party libraries (an Azure SDK error can quote a URL with a SAS signature).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

current_asset: contextvars.ContextVar[str] = contextvars.ContextVar("current_asset", default="-")
# The run whose log file a line also goes to (set by history.History.run_log).
current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_run", default=None
)

# Secret-shaped fragments that are redacted even when their value was never registered.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(AccountKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"]+"),
    re.compile(r"(?i)([?&]sig=)[^&\s'\"]+"),
    re.compile(r"(?i)(client_secret=)[^&\s'\"]+"),
    re.compile(r"(?i)(Authorization:\s*Bearer\s+)\S+"),
]
MASK = "***"


class Redactor:
    """Replaces registered secret values, and anything secret-shaped, with ***."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def register(self, values: Iterable[str]) -> None:
        # Very short values would mask ordinary words; real secrets are long.
        self._values.update(v for v in values if v and len(v) >= 6)

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


redact = Redactor()


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.asset = current_asset.get()
        return True


FORMAT = "%(asctime)s %(levelname)-7s %(asset)s: %(message)s"


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever sys.stderr is at the time, not the one there was at set-up."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def make_handler(stream_or_handler: logging.Handler | None = None) -> logging.Handler:
    """A handler with daybreak's format and the redacting filter."""
    handler = stream_or_handler or _CurrentStderr()
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_RedactingFilter())
    return handler


def setup_logging(level: int = logging.INFO) -> None:
    """Send daybreak's log lines to stderr, once per process."""
    root = logging.getLogger()
    if any(getattr(h, "_daybreak", False) for h in root.handlers):
        return
    handler = make_handler()
    handler._daybreak = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # The Azure SDK logs every HTTP request at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask: every connection at INFO
    # Hamilton logs a banner for every failing node; daybreak reports failures itself.
    logging.getLogger("hamilton.execution.graph_functions").setLevel(logging.CRITICAL)
    logging.getLogger("hamilton.driver").addFilter(
        lambda record: "Need help with Hamilton?" not in str(record.msg)
    )


@contextlib.contextmanager
def asset_context(name: str) -> Iterator[None]:
    """Log lines inside the block are attributed to asset `name`."""
    token = current_asset.set(name)
    try:
        yield
    finally:
        current_asset.reset(token)
