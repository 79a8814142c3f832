with source as (
    select * from {{ source('azure', 'uk_new_names') }}
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
