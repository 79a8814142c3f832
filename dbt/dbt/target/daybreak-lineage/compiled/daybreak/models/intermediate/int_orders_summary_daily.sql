with orders as not materialized (
    
    select * from "memory"."main"."stg_uk_orders"
    union all
    
    select * from "memory"."main"."stg_de_orders"
    union all
    
    select * from "memory"."main"."stg_it_orders"
    union all
    
    select * from "memory"."main"."stg_jp_orders"
    
    
),

new_customers as (
    select market, first_order_date as order_date, count(*) as new_customers
    from "memory"."main"."int_customers_first_order"
    group by market, first_order_date
),


market_orders_uk as not materialized (
    select * from "memory"."main"."stg_uk_orders"
),

lines_uk as not materialized (
    select
        market,
        order_date,
        order_id,
        quantity,
        quantity * unit_price_local - coalesce(discount_local, 0) as gross_sales_local,
        coalesce(returned_quantity, 0) * unit_price_local as returns_local,
        synced_at
    
    from market_orders_uk
    
    where order_status <> 'cancelled'
),

market_orders_de as not materialized (
    select * from "memory"."main"."stg_de_orders"
),

lines_de as not materialized (
    select
        market,
        order_date,
        order_id,
        quantity,
        quantity * unit_price_local - coalesce(discount_local, 0) as gross_sales_local,
        coalesce(returned_quantity, 0) * unit_price_local as returns_local,
        synced_at
    
    from market_orders_de
    
    where order_status <> 'cancelled'
),

market_orders_it as not materialized (
    select * from "memory"."main"."stg_it_orders"
),

lines_it as not materialized (
    select
        market,
        order_date,
        order_id,
        quantity,
        quantity * unit_price_local - coalesce(discount_local, 0) as gross_sales_local,
        coalesce(returned_quantity, 0) * unit_price_local as returns_local,
        synced_at
    
    from market_orders_it
    
    where order_status <> 'cancelled'
),

market_orders_jp as not materialized (
    select * from "memory"."main"."stg_jp_orders"
),

lines_jp as not materialized (
    select
        market,
        order_date,
        order_id,
        quantity,
        quantity * unit_price_local - coalesce(discount_local, 0) as gross_sales_local,
        coalesce(returned_quantity, 0) * unit_price_local as returns_local,
        synced_at
    
    from market_orders_jp
    
    where order_status <> 'cancelled'
),


currencies as (
    select market, budget_year, any_value(currency) as currency, any_value(fx_local_per_gbp) as fx
    from "memory"."main"."stg_budget"
    group by market, budget_year
),daily as (
    
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
    from lines_uk
    group by market, order_date
    union all
    
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
    from lines_de
    group by market, order_date
    union all
    
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
    from lines_it
    group by market, order_date
    union all
    
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
    from lines_jp
    group by market, order_date
    
    
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