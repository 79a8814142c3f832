"""Ingestion: order and reference CSVs from the landing zone (Azure or local) into the Parquet lake.

Each asset returns a SyncReport; the files it wrote are the lake's `orders/` and `reference/`
folders, which dbt reads.
"""

from __future__ import annotations

from hamilton.function_modifiers import ResolveAt, parameterize, resolve, tag, value

from daybreak.assets.tags import retry_policy
from daybreak.ingest import datasets
from daybreak.ingest.sync import SyncContext, SyncReport, sync_dataset


def _per_market_orders(markets: list[str]) -> parameterize:
    return parameterize(
        **{f"{market.lower()}_orders_azure": {"market": value(market)} for market in markets}
    )


@resolve(when=ResolveAt.CONFIG_AVAILABLE, decorate_with=_per_market_orders)
@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="azure_ingestion_orders", kind="ingestion", market_scoped="true")
def market_orders_azure(sync_context: SyncContext, market: str) -> SyncReport:
    """Daily order lines of one market ({market}), one Parquet file per day in the lake."""
    return sync_dataset(
        sync_context, f"{market.lower()}_orders_azure", datasets.orders(market), market=market
    )


@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="azure_ingestion_reference", kind="ingestion")
def uk_products_sku(sync_context: SyncContext) -> SyncReport:
    """UK product reference: one row per SKU with product name, category, brand and unit cost."""
    return sync_dataset(
        sync_context, "uk_products_sku", datasets.UK_PRODUCTS_SKU, market="UK", force=True
    )


@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="azure_ingestion_reference", kind="ingestion")
def uk_new_names(sync_context: SyncContext) -> SyncReport:
    """UK new customers: one row per customer with name, opt-in and first order date."""
    return sync_dataset(
        sync_context, "uk_new_names", datasets.UK_NEW_NAMES, market="UK", force=True
    )


@retry_policy(max_retries=5, delay=60, backoff="exponential")
@tag(group="azure_ingestion_scv", kind="ingestion")
def scv_customers_azure(sync_context: SyncContext) -> SyncReport:
    """Single Customer View: a monthly snapshot, one row per customer, landed early each month."""
    # Two months whatever [ingestion] days_back says: a snapshot lands once a month.
    return sync_dataset(
        sync_context, "scv_customers_azure", datasets.SCV_CUSTOMERS, market="UK", days_back=62
    )
