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

DAILY_SALES_SELECTION = ["+qi_executive_daily_sales"]


def _order_syncs(markets: list[str]) -> inject:
    return inject(order_syncs=group(*[source(f"{m.lower()}_orders_azure") for m in markets]))


@resolve(when=ResolveAt.CONFIG_AVAILABLE, decorate_with=_order_syncs)
@tag(group="dbt_daily_sales", kind="dbt_build", dbt_duckdb="true")
def build_daily_sales_models(
    order_syncs: list[SyncReport],
    uk_new_names: SyncReport,
    daily_sales_budget_exchange_ingest: BudgetReport,
    dbt_project: DbtProject,
    full_refresh: bool,
) -> DbtBuildReport:
    """The warehouse models behind the executive daily sales (+qi_executive_daily_sales), built."""
    return dbt_project.build(DAILY_SALES_SELECTION, full_refresh=full_refresh)
