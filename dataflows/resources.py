"""Resources the assets need (source client, lake, state), resolved from Settings at run time.

These nodes carry no `group` tag, so they are plumbing, not assets: they never show up in
`runner.py assets` and are rebuilt for every run, never cached.
"""

from __future__ import annotations

import datetime as dt

from hamilton.function_modifiers import config

from daybreak.config import Settings
from daybreak.dbt import DbtProject
from daybreak.sources import AzureSource, LocalSource, Source
from daybreak.state import StateStore
from daybreak.sync import SyncContext


@config.when(source_backend="local")
def landing_source__local(settings: Settings) -> Source:
    """The landing zone as a local folder laid out like the Azure container."""
    return LocalSource(settings.paths.landing)


@config.when(source_backend="azure")
def landing_source__azure(settings: Settings) -> Source:
    """The landing zone in an Azure Blob Storage container."""
    return AzureSource(settings)


def state_store(settings: Settings) -> StateStore:
    """daybreak's SQLite state in the state folder."""
    return StateStore(settings.paths.state)


def sync_context(
    settings: Settings,
    landing_source: Source,
    state_store: StateStore,
    run_date: dt.date,
    full_refresh: bool,
) -> SyncContext:
    """What every ingestion asset needs to sync a dataset into the lake."""
    return SyncContext(
        source=landing_source,
        lake_root=settings.paths.lake,
        state=state_store,
        state_dir=settings.paths.state,
        run_date=run_date,
        full_refresh=full_refresh,
        on_bad_file=settings.ingestion.on_bad_file,
    )


def dbt_project(settings: Settings) -> DbtProject:
    """daybreak's dbt project, building into the configured warehouse from the configured lake."""
    return DbtProject(settings)
