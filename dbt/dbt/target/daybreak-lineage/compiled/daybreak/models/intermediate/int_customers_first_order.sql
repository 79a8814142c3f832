

(
    with
    

    orders as (
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_uk_orders"
        where order_status <> 'cancelled'
        
    ),

    from_crm as (
        select market, customer_id, first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_uk_new_names"
        where first_order_date is not null and market = 'UK'
    ),

    candidates as (
        select * from orders
        union all
        select * from from_crm
        
    )

    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)

union all
(
    with
    

    orders as (
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_de_orders"
        where order_status <> 'cancelled'
        
    ),

    from_crm as (
        select market, customer_id, first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_uk_new_names"
        where first_order_date is not null and market = 'DE'
    ),

    candidates as (
        select * from orders
        union all
        select * from from_crm
        
    )

    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)

union all
(
    with
    

    orders as (
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_it_orders"
        where order_status <> 'cancelled'
        
    ),

    from_crm as (
        select market, customer_id, first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_uk_new_names"
        where first_order_date is not null and market = 'IT'
    ),

    candidates as (
        select * from orders
        union all
        select * from from_crm
        
    )

    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)

union all
(
    with
    

    orders as (
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_jp_orders"
        where order_status <> 'cancelled'
        
    ),

    from_crm as (
        select market, customer_id, first_order_date, synced_at as last_synced_at
        from "memory"."main"."stg_uk_new_names"
        where first_order_date is not null and market = 'JP'
    ),

    candidates as (
        select * from orders
        union all
        select * from from_crm
        
    )

    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)
