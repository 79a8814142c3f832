"""Resources the assets need (source client, lake, state), resolved from Settings at run time.

These nodes carry no `group` tag, so they are plumbing, not assets: they never show up in
`runner.py assets` and are rebuilt for every run, never cached.
"""

from __future__ import annotations

import datetime as dt

from hamilton.function_modifiers import config

from daybreak.config import Settings
from daybreak.ingest.sources import AzureSource, LocalSource, Source
from daybreak.ingest.sync import SyncContext
from daybreak.ingest.sync_state import SyncState
from daybreak.warehouse.dbt_project import DbtProject


@config.when(source_backend="local")
def landing_source__local(settings: Settings) -> Source:
    """The landing zone as a local folder laid out like the Azure container."""
    return LocalSource(settings.paths.landing)


@config.when(source_backend="azure")
def landing_source__azure(settings: Settings) -> Source:
    """The landing zone in an Azure Blob Storage container."""
    return AzureSource(settings)


def sync_state(settings: Settings) -> SyncState:
    """What each ingestion asset has synced, kept in the state folder's database."""
    return SyncState(settings.state)


def sync_context(
    settings: Settings,
    landing_source: Source,
    sync_state: SyncState,
    run_date: dt.date,
    full_refresh: bool,
    dry_run: bool = False,
    backfill_window: tuple | None = None,
) -> SyncContext:
    """What every ingestion asset needs to sync a dataset into the lake."""
    return SyncContext(
        source=landing_source,
        lake_root=settings.paths.lake,
        state=sync_state,
        layout=settings.state,
        run_date=run_date,
        full_refresh=full_refresh,
        on_bad_file=settings.ingestion.on_bad_file,
        days_back=settings.ingestion.days_back,
        dry_run=dry_run,
        volume_ratio=settings.ingestion.volume_ratio,
        volume_weeks=settings.ingestion.volume_weeks,
        min_rows=settings.ingestion.min_rows,
        window=backfill_window,
    )


def dbt_project(settings: Settings) -> DbtProject:
    """daybreak's dbt project, building into the configured warehouse from the configured lake."""
    return DbtProject(settings)
