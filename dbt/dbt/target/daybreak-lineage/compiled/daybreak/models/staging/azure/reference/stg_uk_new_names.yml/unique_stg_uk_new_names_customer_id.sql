
    
    

select
    customer_id as unique_field,
    count(*) as n_records

from "memory"."main"."stg_uk_new_names"
where customer_id is not null
group by customer_id
having count(*) > 1


