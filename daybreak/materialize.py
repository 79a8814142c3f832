"""Run a list of assets once, in dependency order, each in its own Hamilton execution.

One execution per asset is what lets a failure stay local: an asset whose upstream failed is
skipped (and says which upstream), while independent assets still run. Values of assets computed
earlier in the run are handed to later ones as overrides, so nothing runs twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

from hamilton import driver

from daybreak.graph import Asset
from daybreak.logs import asset_context, redact

log = logging.getLogger(__name__)


@dataclass
class AssetResult:
    """How one asset went in a run."""

    name: str
    status: str  # success | failed | skipped
    seconds: float = 0.0
    value: Any = None
    error: str | None = None
    traceback: str | None = None

    @property
    def summary(self) -> str:
        if self.status == "success":
            summary = getattr(self.value, "summary", None)
            return summary() if callable(summary) else type(self.value).__name__
        return (self.error or "").splitlines()[0] if self.error else ""


def run_inputs(*, full_refresh: bool = False, run_date: dt.date | None = None) -> dict[str, Any]:
    """The per-run inputs every execution gets besides Settings."""
    return {"full_refresh": full_refresh, "run_date": run_date or dt.date.today()}


def materialize(
    dr: driver.Driver,
    assets: dict[str, Asset],
    plan: list[str],
    inputs: dict[str, Any],
) -> list[AssetResult]:
    """Execute the assets in `plan` (already in dependency order); never raises for an asset."""
    results: dict[str, AssetResult] = {}
    for name in plan:
        failed_upstream = [
            up for up in assets[name].upstream if up in results and results[up].status != "success"
        ]
        if failed_upstream:
            results[name] = AssetResult(
                name, "skipped", error=f"upstream failed: {', '.join(failed_upstream)}"
            )
            log.warning("%s skipped: upstream failed: %s", name, ", ".join(failed_upstream))
            continue
        overrides = {up: results[up].value for up in assets[name].upstream if up in results}
        started = time.monotonic()
        with asset_context(name):
            try:
                value = dr.execute([name], inputs=inputs, overrides=overrides)[name]
            except Exception as exc:  # recorded, reported and turned into a non-zero exit
                seconds = time.monotonic() - started
                error = redact(f"{type(exc).__name__}: {exc}")
                log.error("failed after %.1f s: %s", seconds, error)
                results[name] = AssetResult(
                    name,
                    "failed",
                    seconds=seconds,
                    error=error,
                    traceback=redact(traceback.format_exc()),
                )
                continue
        results[name] = AssetResult(name, "success", time.monotonic() - started, value)
    return [results[name] for name in plan]


def format_summary(results: list[AssetResult]) -> str:
    """The per-asset table printed at the end of a run."""
    width = max([len(r.name) for r in results] + [5])
    lines = [f"{'asset':<{width}}  {'status':<8} {'seconds':>8}  summary"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.status:<8} {r.seconds:>8.2f}  {r.summary}")
    failed = [r for r in results if r.status != "success"]
    lines.append(
        f"{len(results) - len(failed)} of {len(results)} assets succeeded"
        + (f"; failed or skipped: {', '.join(r.name for r in failed)}" if failed else "")
    )
    return "\n".join(lines)
