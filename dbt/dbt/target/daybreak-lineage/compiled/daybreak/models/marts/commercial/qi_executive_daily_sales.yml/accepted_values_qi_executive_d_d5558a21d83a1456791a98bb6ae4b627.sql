
    
    

with all_values as (

    select
        market as value_field,
        count(*) as n_records

    from "memory"."main"."qi_executive_daily_sales"
    group by market

)

select *
from all_values
where value_field not in (
    'UK','DE','IT','JP','ALL'
)


