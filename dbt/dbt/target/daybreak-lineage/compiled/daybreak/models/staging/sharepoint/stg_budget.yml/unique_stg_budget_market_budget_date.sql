
    
    

select
    market || '|' || budget_date as unique_field,
    count(*) as n_records

from "memory"."main"."stg_budget"
where market || '|' || budget_date is not null
group by market || '|' || budget_date
having count(*) > 1


