"""Transform: the dbt project builds the warehouse from the lake and the budget.

Each dbt model is an asset of its own (generated from the manifest, see daybreak.dbt_assets);
`build_daily_sales_models` is the one step the daily flow runs: everything the executive daily
sales need, in one dbt invocation, with their tests.
"""

from __future__ import annotations

from hamilton.function_modifiers import ResolveAt, group, inject, resolve, source, tag

from dataflows.budget import BudgetReport
from daybreak.dbt import DbtBuildReport, DbtProject
from daybreak.sync import SyncReport

# Every model of the warehouse: the mart with all it needs, and the UK product reference.
DAILY_SALES_SELECTION = ["+qi_executive_daily_sales", "stg_uk_products_sku"]


def _order_syncs(markets: list[str]) -> inject:
    return inject(order_syncs=group(*[source(f"{m.lower()}_orders_azure") for m in markets]))


@resolve(when=ResolveAt.CONFIG_AVAILABLE, decorate_with=_order_syncs)
@tag(
    group="dbt_daily_sales",
    kind="dbt_build",
    dbt_duckdb="true",
    dbt_select=" ".join(DAILY_SALES_SELECTION),  # which models it builds (lineage, status)
)
def build_daily_sales_models(
    order_syncs: list[SyncReport],
    uk_new_names: SyncReport,
    uk_products_sku: SyncReport,
    daily_sales_budget_exchange_ingest: BudgetReport,
    dbt_project: DbtProject,
    full_refresh: bool,
) -> DbtBuildReport:
    """The warehouse models behind the executive daily sales (+qi_executive_daily_sales) and the
    UK product reference, built with their tests in one dbt invocation."""
    return dbt_project.build(DAILY_SALES_SELECTION, full_refresh=full_refresh)
