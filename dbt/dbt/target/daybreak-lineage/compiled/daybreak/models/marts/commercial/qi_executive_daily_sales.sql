with summary as (
    select market, order_date, net_sales_gbp from "memory"."main"."int_orders_summary_daily"
),

budget as (
    select market, budget_date, budget_gbp from "memory"."main"."stg_budget"
),

market_days as (
    select market, sales_date from "memory"."main"."int_market_calendar"
),

by_market as (
    select
        market_days.market,
        market_days.sales_date,
        cast(coalesce(summary.net_sales_gbp, 0) as decimal(18, 2)) as net_sales_gbp,
        budget.budget_gbp
    from market_days
    left join summary
        on market_days.market = summary.market and market_days.sales_date = summary.order_date
    left join budget
        on market_days.market = budget.market and market_days.sales_date = budget.budget_date
),

with_total as (
    select * from by_market
    union all
    select
        'ALL' as market,
        sales_date,
        cast(sum(net_sales_gbp) as decimal(18, 2)),
        cast(sum(budget_gbp) as decimal(18, 2))
    from by_market
    group by sales_date
),

measured as (
    select
        market,
        sales_date,
        net_sales_gbp,
        budget_gbp,
        cast(net_sales_gbp - budget_gbp as decimal(18, 2)) as variance_gbp,
        round((net_sales_gbp - budget_gbp) / nullif(budget_gbp, 0), 4) as variance_pct,
        cast(sum(net_sales_gbp) over month_to_date as decimal(18, 2)) as mtd_net_sales_gbp,
        cast(sum(budget_gbp) over month_to_date as decimal(18, 2)) as mtd_budget_gbp,
        cast(sum(net_sales_gbp) over year_to_date as decimal(18, 2)) as ytd_net_sales_gbp,
        cast(sum(budget_gbp) over year_to_date as decimal(18, 2)) as ytd_budget_gbp
    from with_total
    window
        month_to_date as (
            partition by market, date_trunc('month', sales_date) order by sales_date
            rows between unbounded preceding and current row
        ),
        year_to_date as (
            partition by market, date_trunc('year', sales_date) order by sales_date
            rows between unbounded preceding and current row
        )
),

compared as (
    select
        measured.*,
        cast(measured.mtd_net_sales_gbp - measured.mtd_budget_gbp as decimal(18, 2)) as mtd_variance_gbp,
        cast(measured.ytd_net_sales_gbp - measured.ytd_budget_gbp as decimal(18, 2)) as ytd_variance_gbp,
        last_year.sales_date as last_year_date,
        last_year.net_sales_gbp as last_year_net_sales_gbp,
        round(
            (measured.net_sales_gbp - last_year.net_sales_gbp) / nullif(last_year.net_sales_gbp, 0),
            4
        ) as vs_last_year_pct
    from measured
    left join with_total as last_year
        on measured.market = last_year.market
        and last_year.sales_date = cast(measured.sales_date - interval 364 day as date)
)

select * from compared