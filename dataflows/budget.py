"""Budget: Finance's budget workbook (local landing zone or SharePoint), wide to long, for dbt.

`budget_workbook` fetches the workbook and keeps a timestamped copy of every version seen (so a bad
upstream edit can be compared with the last good one); `budget_long` reads it; the asset writes
the long budget as CSV (as the original deployment did) and Parquet (for the warehouse).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from hamilton.function_modifiers import config, tag

from daybreak.assets.tags import retry_policy
from daybreak.config import Settings
from daybreak.files import atomic_path, clean_stale_tmp, keep_version
from daybreak.ingest.sharepoint import GraphClient, GraphLocation
from daybreak.ingest.sync_state import sync_lock
from daybreak.ingest.workbook import BudgetTable, read_budget

log = logging.getLogger(__name__)

OUTPUT_STEM = "daily_sales_budget_exchange"


@dataclass
class BudgetReport:
    """What the budget ingest wrote."""

    years: list[int]
    rows: int
    rows_per_year: dict[int, int]
    workbook: str
    parquet: str
    csv: str
    seconds: float
    source: str

    def summary(self) -> str:
        years = ", ".join(f"{y}: {n:,} rows" for y, n in sorted(self.rows_per_year.items()))
        return f"{self.rows:,} budget rows ({years}) from {self.source}"


def _downloads(settings: Settings) -> Path:
    folder = settings.state.downloads("budget")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@config.when(budget_source="local")
def budget_workbook__local(settings: Settings) -> Path:
    """The budget workbook from the local landing zone's sharepoint/ folder, as kept this run."""
    source = settings.paths.landing / "sharepoint" / settings.budget.file
    if not source.is_file():
        raise FileNotFoundError(
            f"budget workbook not found at {source} (run `make demo-data`, or set budget.file)"
        )
    folder = _downloads(settings)
    fetched = folder / f".{source.name}.fetching"
    shutil.copyfile(source, fetched)
    return keep_version(fetched, folder, source.name, settings.budget.keep_downloads)


@config.when(budget_source="sharepoint")
def budget_workbook__sharepoint(settings: Settings) -> Path:
    """The budget workbook downloaded from SharePoint through Microsoft Graph, as kept this run."""
    sp, secrets = settings.budget.sharepoint, settings.secrets
    # load_settings has checked these are present for budget.source = "sharepoint".
    assert sp is not None and secrets.sharepoint_client_secret is not None
    client = GraphClient(
        tenant_id=secrets.sharepoint_tenant_id or "",
        client_id=secrets.sharepoint_client_id or "",
        client_secret=secrets.sharepoint_client_secret.get_secret_value(),
        authority_host=sp.authority_host,
        graph_url=sp.graph_url,
        max_attempts=sp.max_attempts,
        backoff_seconds=sp.backoff_seconds,
    )
    name = Path(settings.budget.file).name
    folder = _downloads(settings)
    fetched = folder / f".{name}.fetching"
    client.download(GraphLocation(sp.site_hostname, sp.site_path, settings.budget.file), fetched)
    return keep_version(fetched, folder, name, settings.budget.keep_downloads)


def budget_long(budget_workbook: Path, settings: Settings) -> BudgetTable:
    """The budget, one row per date and market, in local currency and GBP at budget rates."""
    currencies = {code: market.currency for code, market in settings.markets.items()}
    return read_budget(budget_workbook, currencies, name=settings.budget.file)


@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="budget_ingestion", kind="ingestion", source="workbook")
def daily_sales_budget_exchange_ingest(
    budget_long: BudgetTable, budget_workbook: Path, settings: Settings
) -> BudgetReport:
    """Daily budget per market with currency, budget exchange rate to GBP and budget in GBP."""
    started = time.monotonic()
    folder = settings.paths.lake / "budget"
    parquet, csv = folder / f"{OUTPUT_STEM}.parquet", folder / f"{OUTPUT_STEM}.csv"
    table = budget_long.table
    # One writer at a time (the runner and a command line may both run it); what a killed one
    # left is swept first. Both files change together or not at all: the CSV is renamed first,
    # the Parquet file last.
    with sync_lock(settings.state, "daily_sales_budget_exchange_ingest"):
        clean_stale_tmp(folder)
        with atomic_path(parquet) as tmp_parquet, atomic_path(csv) as tmp_csv:
            pq.write_table(table, tmp_parquet, compression="zstd")
            pa_csv.write_csv(table, tmp_csv)
    per_year = Counter(table.column("budget_year").to_pylist())
    for year in budget_long.years:
        log.info("Budget year: %d, rows: %s", year, f"{per_year.get(year, 0):,}")
    source = (
        f"SharePoint {settings.budget.sharepoint.site_hostname}"
        if settings.budget.sharepoint is not None and settings.budget.source == "sharepoint"
        else "the local landing zone"
    )
    return BudgetReport(
        years=budget_long.years,
        rows=table.num_rows,
        rows_per_year=dict(sorted(per_year.items())),
        workbook=str(budget_workbook),
        parquet=str(parquet),
        csv=str(csv),
        seconds=round(time.monotonic() - started, 3),
        source=source,
    )
