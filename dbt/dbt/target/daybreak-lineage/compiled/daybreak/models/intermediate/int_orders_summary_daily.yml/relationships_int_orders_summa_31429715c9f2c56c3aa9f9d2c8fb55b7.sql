
    
    

with child as (
    select currency as from_field
    from "memory"."main"."int_orders_summary_daily"
    where currency is not null
),

parent as (
    select currency as to_field
    from "memory"."main"."stg_budget"
)

select
    from_field

from child
left join parent
    on child.from_field = parent.to_field

where parent.to_field is null


