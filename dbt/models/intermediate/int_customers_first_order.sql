{{ config(unique_key=['market', 'customer_id'],
          materialized='table' if target.type == 'spark' else 'incremental',
          meta={'touched_by': 'last_synced_at'} if target.type != 'spark' else {}) }}
{#- On Spark a table: folding new orders into existing customers needs a merge, which plain
    Parquet tables do not have (Delta would; its jars cannot be fetched here); so its tests read
    the whole table there. On DuckDB the rows a build wrote are those with last_synced_at past
    the tests' high-water mark (macros/touched.sql). -#}
{#- The first day each customer ordered: from order history, and for the UK also from the CRM,
    which knows first orders placed before the lake's history begins. Incremental: a run folds
    the orders synced since the last build into the customers they touch.
    One market at a time: customers belong to one market, so each market is aggregated on its
    own and a build needs the memory of one market's customers, not of all of them (a single
    group-by over 160 M lines ran out of DuckDB's 1 GB at the benchmark's large scale). -#}

{% for market in var('markets') %}
{% if not loop.first %}union all{% endif %}
(
    with
    {% if is_incremental() %}
    {#- Customers the CRM changed, worked out again from all their orders (not folded into what
        the table had, which a min() would keep): those whose CRM row came with a CRM file
        synced since the last build (it may have moved their first order later), and those whose
        CRM row the table does not reflect (no row, or a later first order than the CRM's; a CRM
        file built after orders synced later than it). Any other CRM row is in the table. -#}
    crm_changed as (
        select crm.customer_id
        from {{ ref('stg_uk_new_names') }} as crm
        where crm.market = '{{ market | upper }}' and crm.customer_id is not null
          and (crm.synced_at > (select coalesce(max(last_synced_at), timestamp '1900-01-01') from {{ this }})
               or (crm.first_order_date is not null and not exists (
                   select 1 from {{ this }} as had
                   where had.market = crm.market and had.customer_id = crm.customer_id
                     and had.first_order_date <= crm.first_order_date)))
    ),
    {% endif %}

    {#- The lines synced since the last build (a filter on synced_at alone, so DuckDB skips the
        untouched row groups by their min/max); an OR with the CRM customers below made every
        build read every line of history: 4.0 s of a 5.5 s build at the large bench's 3x. -#}
    orders as (
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from {{ ref('stg_' ~ market ~ '_orders') }}
        where order_status <> 'cancelled'
        {% if is_incremental() %}
          and synced_at > (select coalesce(max(last_synced_at), timestamp '1900-01-01') from {{ this }})
        {% endif %}
    ),

    from_crm as (
        select market, customer_id, first_order_date, synced_at as last_synced_at
        from {{ ref('stg_uk_new_names') }}
        where first_order_date is not null and market = '{{ market | upper }}'
        {% if is_incremental() %}
          {#- A CRM row that has not changed was folded in when it came: only changed ones. -#}
          and customer_id in (select customer_id from crm_changed)
        {% endif %}
    ),

    candidates as (
        select * from orders
        union all
        select * from from_crm
        {% if is_incremental() %}
        {#- Every order of a customer the CRM changed: worked out again from all of them. -#}
        union all
        select market, customer_id, order_date as first_order_date, synced_at as last_synced_at
        from {{ ref('stg_' ~ market ~ '_orders') }}
        where order_status <> 'cancelled'
          and customer_id in (select customer_id from crm_changed)
        {#- What the table had for the other customers with new lines: folded by min() below. -#}
        union all
        select market, customer_id, first_order_date, last_synced_at
        from {{ this }}
        where market = '{{ market | upper }}'
          and customer_id in (select customer_id from orders)
          and customer_id not in (select customer_id from crm_changed)
        {% endif %}
    )

    select
        market,
        customer_id,
        min(first_order_date) as first_order_date,
        max(last_synced_at) as last_synced_at
    from candidates
    group by market, customer_id
)
{% endfor %}
