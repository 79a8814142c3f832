
    
    



select customer_id
from "memory"."main"."stg_uk_new_names"
where customer_id is null


