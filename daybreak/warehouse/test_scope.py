"""dbt's tests by change: which rows each model's tests read in a build.

A model whose config has `meta.touched_by` (a column that grows with each build's rows:
`synced_at` for the staging orders, `last_synced_at` for int_customers_first_order) is tested on
the rows past its high-water mark, the largest value of that column when its tests last passed.
Those are exactly the rows written since, because the model's incremental filter is the same
column (`synced_at > max(synced_at)`). dbt reads the marks as the var `test_since` and the
project's `get_where_subquery` turns them into each test's `where` (dbt/macros/touched.sql).

A model is tested whole when there is no mark (first build, a recovered warehouse), on
`--full`, and at its first build `[warehouse] full_tests_every_days` after its last whole run:
that run catches what the daily tests do not look at (a duplicate planted in an old day).
A build with a failed model or test moves no mark, so what it wrote is tested again next time.

The marks live in `<state>/dbt/tests.json`; an unreadable file counts as no marks (a whole run).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from daybreak.files import write_atomic

log = logging.getLogger(__name__)


def scoped_models(manifest: Any) -> dict[str, str]:
    """Model name -> its `touched_by` column, for the models tested by change."""
    found = {}
    for node in manifest.nodes.values():
        if str(node.resource_type) != "model":
            continue
        column = (node.config.meta or {}).get("touched_by")
        if isinstance(column, str) and column.isidentifier():
            found[str(node.alias or node.name)] = column
    return found


@dataclass
class Mark:
    through: str  # the column's largest value when the tests last passed (DuckDB's text)
    whole_at: str  # when the tests last read the whole table (ISO, daybreak's clock)


class ChangeMarks:
    """The marks of one warehouse, read at a build's start and moved when its tests pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.marks: dict[str, Mark] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            for name, mark in dict(raw.get("models", {})).items():
                dt.datetime.fromisoformat(str(mark["through"]))  # a forged value is no mark
                dt.datetime.fromisoformat(str(mark["whole_at"]))
                self.marks[str(name)] = Mark(str(mark["through"]), str(mark["whole_at"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("%s cannot be read (%s): every test reads its whole table", path, e)
            self.marks = {}

    def since(
        self, models: Mapping[str, str], now: dt.datetime, whole_every: dt.timedelta | None,
        *, full: bool = False,
    ) -> dict[str, str]:  # fmt: skip
        """`test_since` for a build at `now`: the marks of the models not due a whole run."""
        if full or whole_every is None:
            return {}
        chosen = {}
        for name in models:
            mark = self.marks.get(name)
            if mark is None:
                continue
            last_whole = dt.datetime.fromisoformat(mark.whole_at)
            if last_whole.tzinfo is None:
                last_whole = last_whole.replace(tzinfo=dt.UTC)
            # A whole run "in the future" (a clock set back, a forged file) is due now, or the
            # whole run would never come.
            if dt.timedelta(0) <= now - last_whole < whole_every:
                chosen[name] = mark.through
        return chosen

    def passed(
        self, con: duckdb.DuckDBPyConnection, built: Iterable[str], models: Mapping[str, str],
        since: Mapping[str, str], now: dt.datetime,
    ) -> None:  # fmt: skip
        """Move the marks of the scoped models a passing build built: to their column's largest
        value now; a model tested whole this time also gets `now` as its whole run."""
        changed = False
        for name in built:
            column = models.get(name)
            if column is None:
                continue
            top = con.execute(f'SELECT max("{column}")::VARCHAR FROM main."{name}"').fetchone()
            if top is None or top[0] is None:
                self.marks.pop(name, None)  # an empty table: the next build tests it whole
                changed = True
                continue
            previous = self.marks.get(name)
            whole_at = (previous.whole_at if previous is not None and name in since
                        else now.isoformat())  # fmt: skip
            self.marks[name] = Mark(str(top[0]), whole_at)
            changed = True
        if changed:
            body = {"models": {n: m.__dict__ for n, m in sorted(self.marks.items())}}
            write_atomic(self.path, json.dumps(body, indent=2))

    @staticmethod
    def forget(path: Path) -> None:
        """No marks: the next build tests every row (the warehouse was replaced)."""
        path.unlink(missing_ok=True)
