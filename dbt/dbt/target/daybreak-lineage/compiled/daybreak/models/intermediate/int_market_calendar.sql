with summary as (
    select market, order_date from "memory"."main"."int_orders_summary_daily"
),

bounds as (
    select market, min(order_date) as first_date, max(order_date) as last_date
    from summary
    group by market
)

select
    market,
    cast(unnest(generate_series(first_date, last_date, interval 1 day)) as date) as sales_date
from bounds