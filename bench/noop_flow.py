"""The orchestration benchmark's graph: daily_sales_flow's shape (names, groups, edges) with
assets that do nothing, so a run of it costs only what daybreak itself adds (imports, graph,
history, logs). The dbt models are still generated from the real manifest, as in production.
"""

from __future__ import annotations

from hamilton.function_modifiers import tag

from daybreak.warehouse.dbt_project import DbtProject

Report = dict[str, int]


def dbt_project() -> DbtProject:
    """Stands in for the dbt project resource; the no-op flow never builds a model."""
    return None  # type: ignore[return-value]


@tag(group="azure_ingestion_orders")
def uk_orders_azure() -> Report:
    return {}


@tag(group="azure_ingestion_orders")
def de_orders_azure() -> Report:
    return {}


@tag(group="azure_ingestion_orders")
def it_orders_azure() -> Report:
    return {}


@tag(group="azure_ingestion_orders")
def jp_orders_azure() -> Report:
    return {}


@tag(group="azure_ingestion_reference")
def uk_products_sku() -> Report:
    return {}


@tag(group="azure_ingestion_reference")
def uk_new_names() -> Report:
    return {}


@tag(group="azure_ingestion_scv")
def scv_customers_azure() -> Report:
    return {}


@tag(group="budget_ingestion")
def daily_sales_budget_exchange_ingest() -> Report:
    return {}


@tag(group="dbt_daily_sales", kind="dbt_build", dbt_duckdb="true")
def build_daily_sales_models(
    uk_orders_azure: Report,
    de_orders_azure: Report,
    it_orders_azure: Report,
    jp_orders_azure: Report,
    uk_new_names: Report,
    uk_products_sku: Report,
    daily_sales_budget_exchange_ingest: Report,
) -> Report:
    return {}


@tag(group="export", dbt_duckdb="true")
def daily_sales_tableau_export(build_daily_sales_models: Report) -> Report:
    return {}


@tag(group="export", dbt_duckdb="true")
def tableau_executive_daily_sales(build_daily_sales_models: Report) -> Report:
    return {}


@tag(group="warehouse_maintenance", dbt_duckdb="true", run_last="true")
def warehouse_backup() -> Report:
    return {}
