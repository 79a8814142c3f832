
    
    

with all_values as (

    select
        market as value_field,
        count(*) as n_records

    from "memory"."main"."stg_jp_orders"
    group by market

)

select *
from all_values
where value_field not in (
    'JP'
)


