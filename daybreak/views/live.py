"""Live progress on a terminal for `run`, `materialize`, `rerun` and `backfill` (rich).

A table under the log lines: each asset's state as it changes, a sync's files done of total, the
dbt models and tests as dbt reports them finished (its event callbacks, during the build, not
after it), and a backfill's days done with an estimate. When the output is not a terminal
(a pipe, a file, the Task Scheduler) nothing is drawn: the plain log lines say the same.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from daybreak import progress

STYLES = {
    "running": "yellow", "retrying": "yellow", "success": "green", "pass": "green",
    "fresh": "dim", "failed": "red", "error": "red", "fail": "red", "skipped": "magenta",
    "warn": "dark_orange", "interrupted": "red",
}  # fmt: skip
SHOWN_NODES = 3  # the dbt nodes last finished, shown by name


class LiveProgress:
    """What the progress events said so far, drawn as one rich renderable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.assets: dict[str, tuple[str, str]] = {}  # name -> (status, detail)
        self.files: dict[str, tuple[int, int]] = {}  # sync asset -> (done, total)
        self.nodes: list[tuple[str, str, str]] = []  # (name, status, resource type), in order
        self.backfill: progress.Event | None = None

    def __call__(self, event: progress.Event) -> None:
        with self._lock:
            if event.kind == "asset":
                self.assets[event.name] = (event.status, event.detail)
            elif event.kind == "files" and event.total:
                self.files[event.name] = (event.done or 0, event.total)
            elif event.kind == "node":
                self.nodes.append((event.name, event.status, event.detail))
                del self.nodes[:-500]
            elif event.kind == "backfill":
                self.backfill = event

    def __rich__(self) -> Any:
        with self._lock:
            parts: list[Any] = []
            if self.backfill is not None and self.backfill.total:
                parts.append(Text(self.backfill.detail))
                parts.append(ProgressBar(total=self.backfill.total,
                                         completed=self.backfill.done or 0, width=50))  # fmt: skip
            table = Table(box=None, show_header=False, pad_edge=False)
            table.add_column("asset", no_wrap=True, min_width=30)
            table.add_column("state", no_wrap=True)
            table.add_column("detail", overflow="ellipsis", no_wrap=True, max_width=70)
            for name, (status, detail) in self.assets.items():
                if status == "running" and name in self.files:
                    done, total = self.files[name]
                    detail = f"{done}/{total} files"
                # Text, never markup: an error message may hold anything, brackets included.
                table.add_row(Text(name), Text(status, style=STYLES.get(status, "")),
                              Text(detail))  # fmt: skip
            parts.append(table)
            if self.nodes:
                models = sum(1 for _, _, kind in self.nodes if kind == "model")
                tests = len(self.nodes) - models
                line = Text(f"dbt: {models} models, {tests} tests finished; last: ")
                for i, (name, status, _) in enumerate(self.nodes[-SHOWN_NODES:]):
                    line.append(", " if i else "")
                    line.append(f"{name} {status}", style=STYLES.get(status, ""))
                parts.append(line)
            return Group(*parts)


@contextlib.contextmanager
def shown(console: Console | None = None) -> Iterator[LiveProgress | None]:
    """Draw live progress while the block runs, if the output is a terminal; log lines go on
    printing above it."""
    if console is None:  # both streams on the terminal: the log lines are drawn above it
        console = Console()
        if not sys.stderr.isatty():
            yield None
            return
    if not console.is_terminal:
        yield None
        return
    view = LiveProgress()
    # daybreak's log handler writes to whatever sys.stderr is, which Live redirects above the
    # table while it runs (daybreak.logs).
    with Live(view, console=console, refresh_per_second=4, redirect_stderr=True),\
            progress.listening(view):  # fmt: skip
        yield view
