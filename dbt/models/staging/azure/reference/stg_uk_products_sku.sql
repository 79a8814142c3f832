with source as (
    select * from {{ source('azure', 'uk_products_sku') }}
),

renamed as (
    select
        sku,
        product_name,
        category as product_category,
        brand as product_brand,
        unit_cost_gbp,
        launch_date as product_launch_date,
        synced_at
    from source
)

select * from renamed
