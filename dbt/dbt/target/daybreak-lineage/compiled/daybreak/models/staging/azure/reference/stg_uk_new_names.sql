with source as (
    select * from read_parquet('/daybreak/lake/reference/uk_new_names/*.parquet')
),

renamed as (
    select
        customer_id,
        'UK' as market,
        first_name,
        last_name,
        email_opt_in as is_email_opt_in,
        first_order_date,
        synced_at
    from source
)

select * from renamed