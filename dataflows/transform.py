"""Transform: the dbt project builds the warehouse from the lake and the budget.

Each dbt model is an asset of its own (generated from the manifest, see daybreak.assets.dbt_models).
`build_daily_sales_models` is the one step the daily flow names: its parameters are the models it
stands for, selecting it selects them and every model they need, and the runner builds them in one
dbt invocation with their tests, as it builds any set of models.
"""

from __future__ import annotations

from hamilton.function_modifiers import tag

from daybreak.assets.dbt_models import DBT_BUILD_KIND
from daybreak.warehouse.dbt_project import DbtBuildReport


@tag(group="dbt_daily_sales", kind=DBT_BUILD_KIND)
def build_daily_sales_models(
    qi_executive_daily_sales: DbtBuildReport, stg_uk_products_sku: DbtBuildReport
) -> DbtBuildReport:
    """The warehouse models behind the executive daily sales (qi_executive_daily_sales and every
    model it needs) and the UK product reference, built with their tests in one dbt invocation."""
    return DbtBuildReport.combine([qi_executive_daily_sales, stg_uk_products_sku])
