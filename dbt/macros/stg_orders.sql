{#- Staging for one market's orders: rename and cast only. One definition, one model per market. -#}
{% macro stg_orders(market) %}
with source as (
    select * from {{ source('azure_orders', market) }}
    {% if is_incremental() %}
    -- Only lake files synced since the last build; delete+insert on file_date replaces their days.
    where synced_at > (select coalesce(max(synced_at), timestamp '1900-01-01') from {{ this }})
    {% endif %}
),

renamed as (
    select
        order_id,
        order_line as order_line_number,
        order_id || '-' || order_line as order_line_id,
        upper(market) as market,
        order_ts as ordered_at,
        cast(order_ts as date) as order_date,
        customer_id,
        sku,
        quantity,
        unit_price as unit_price_local,
        discount as discount_local,
        returned_quantity,
        status as order_status,
        promo_code,
        file_date,
        source_blob,
        synced_at
    from source
)

select * from renamed
{% endmacro %}
