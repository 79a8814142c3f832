{{ config(materialized='table') }}
{#- Every day from each market's first to its last day of sales: a day with no sales file still
    gets a row downstream (with 0 actual against its budget) instead of silently vanishing. -#}

with summary as (
    select market, order_date from {{ ref('int_orders_summary_daily') }}
),

bounds as (
    select market, min(order_date) as first_date, max(order_date) as last_date
    from summary
    group by market
)

select
    market,
    {{ days_between('first_date', 'last_date') }} as sales_date
from bounds
