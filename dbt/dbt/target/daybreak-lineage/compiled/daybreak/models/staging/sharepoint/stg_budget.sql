with source as (
    select * from read_parquet('/daybreak/lake/budget/daily_sales_budget_exchange.parquet')
),

renamed as (
    select
        date as budget_date,
        market,
        budget_year,
        currency,
        budget_local,
        fx_local_per_gbp,
        budget_gbp
    from source
)

select * from renamed