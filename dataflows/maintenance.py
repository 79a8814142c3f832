"""Maintenance: a consistent, rotated backup of the DuckDB warehouse (on Spark: the engine's)."""

from __future__ import annotations

from hamilton.function_modifiers import tag

from daybreak.assets.tags import retry_policy
from daybreak.config import Settings
from daybreak.warehouse.backup import BackupReport, back_up


@retry_policy(max_retries=3, delay=60, backoff="exponential")  # the warehouse may be held
@tag(group="warehouse_maintenance", kind="backup", dbt_duckdb="true", run_last="true")
def warehouse_backup(settings: Settings) -> BackupReport:
    """A consistent copy of the warehouse: checkpointed and copied while no one can write it."""
    return back_up(settings)
