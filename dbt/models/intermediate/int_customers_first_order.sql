{{ config(unique_key=['market', 'customer_id']) }}
{#- The first day each customer ordered: from order history, and for the UK also from the CRM,
    which knows first orders placed before the lake's history begins. Incremental: a run folds
    the orders synced since the last build into the customers they touch. -#}

with orders as (
    {% for market in var('markets') %}
    select market, customer_id, order_date, synced_at
    from {{ ref('stg_' ~ market ~ '_orders') }}
    where order_status <> 'cancelled'
    {% if is_incremental() %}
      and synced_at > (select coalesce(max(last_synced_at), timestamp '1900-01-01') from {{ this }})
    {% endif %}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

from_orders as (
    select market, customer_id, min(order_date) as first_order_date, max(synced_at) as last_synced_at
    from orders
    group by market, customer_id
),

from_crm as (
    select market, customer_id, first_order_date, null::timestamp as last_synced_at
    from {{ ref('stg_uk_new_names') }}
    where first_order_date is not null
),

candidates as (
    select * from from_orders
    union all
    select * from from_crm
    {% if is_incremental() %}
    union all
    select market, customer_id, first_order_date, last_synced_at
    from {{ this }}
    where (market, customer_id) in (
        select (market, customer_id) from from_orders
        union
        select (market, customer_id) from from_crm
    )
    {% endif %}
),

first_orders as (
    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)

select * from first_orders
