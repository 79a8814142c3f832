{{ config(unique_key=['market', 'order_date'],
          partition_by=['market', 'order_date'] if target.type == 'spark' else none) }}
{#- Incremental: a run recomputes only the market-days that have lines synced since the last build
    (a new day, or a re-synced old one), from all of their lines. -#}

{#- cte_inline (not materialized on DuckDB) here and below: DuckDB would otherwise copy every line
    of history into a temporary result before the filters could skip the untouched days. -#}
with orders as {{ cte_inline() }} (
    {% for market in var('markets') %}
    select * from {{ ref('stg_' ~ market ~ '_orders') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

new_customers as (
    select market, first_order_date as order_date, count(*) as new_customers
    from {{ ref('int_customers_first_order') }}
    group by market, first_order_date
),

{% if is_incremental() %}
{#- The days with lines synced since the last build, and the days whose count of new customers
    moved (the CRM corrected a first order: the day it left and the day it came to; a day with
    no lines has no row to correct). The second compares two small tables, a row a market-day
    each: no order line is read for it. -#}
changed_days as (
    select distinct market, order_date
    from orders
    where synced_at > (select coalesce(max(last_synced_at), timestamp '1900-01-01') from {{ this }})
    union
    select this_day.market, this_day.order_date
    from {{ this }} as this_day
    left join new_customers
        on this_day.market = new_customers.market
        and this_day.order_date = new_customers.order_date
    where coalesce(new_customers.new_customers, 0) <> this_day.new_customers
),

{% endif %}

{#- Each market's lines on their own: the aggregate below runs one market at a time. -#}
{% for market in var('markets') %}
market_orders_{{ market }} as {{ cte_inline() }} (
    select * from {{ ref('stg_' ~ market ~ '_orders') }}
),

lines_{{ market }} as {{ cte_inline() }} (
    select
        market,
        order_date,
        order_id,
        quantity,
        quantity * unit_price_local - coalesce(discount_local, 0) as gross_sales_local,
        coalesce(returned_quantity, 0) * unit_price_local as returns_local,
        synced_at
    {% if is_incremental() %}
    from {{ semi_join('market_orders_' ~ market, 'changed_days', ['market', 'order_date']) }}
    {% else %}
    from market_orders_{{ market }}
    {% endif %}
    where order_status <> 'cancelled'
),
{% endfor %}

currencies as (
    select market, budget_year, any_value(currency) as currency, any_value(fx_local_per_gbp) as fx
    from {{ ref('stg_budget') }}
    group by market, budget_year
),

{#- One aggregate per market, then their union (market is part of the key, so no market-day is
    split): the distinct count's hash table holds one market's orders at a time. All markets in
    one aggregate ran out of the profile's 1 GB at 5x the large bench's history (266 M lines,
    106 M orders: DuckDB could not spill it); one market at a time built it in 33 s. -#}
daily as (
    {% for market in var('markets') %}
    select
        market,
        order_date,
        count(distinct order_id) as orders,
        count(*) as order_lines,
        cast(sum(quantity) as bigint) as units,
        cast(sum(gross_sales_local) as decimal(18, 2)) as gross_sales_local,
        cast(sum(returns_local) as decimal(18, 2)) as returns_local,
        cast(sum(gross_sales_local) - sum(returns_local) as decimal(18, 2)) as net_sales_local,
        max(synced_at) as last_synced_at
    from lines_{{ market }}
    group by market, order_date
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

converted as (
    select
        daily.market,
        daily.order_date,
        currencies.currency,
        daily.orders,
        daily.order_lines,
        daily.units,
        daily.gross_sales_local,
        daily.returns_local,
        daily.net_sales_local,
        currencies.fx as fx_local_per_gbp,
        cast(round(daily.net_sales_local / currencies.fx, 2) as decimal(18, 2)) as net_sales_gbp,
        coalesce(new_customers.new_customers, 0) as new_customers,
        daily.last_synced_at
    from daily
    left join currencies
        on daily.market = currencies.market
        and year(daily.order_date) = currencies.budget_year
    left join new_customers
        on daily.market = new_customers.market
        and daily.order_date = new_customers.order_date
)

select * from converted
