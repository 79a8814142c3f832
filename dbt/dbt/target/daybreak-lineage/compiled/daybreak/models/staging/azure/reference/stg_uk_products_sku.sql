with source as (
    select * from read_parquet('/daybreak/lake/reference/uk_products_sku/*.parquet')
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