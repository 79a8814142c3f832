
    
    



select customer_id
from "memory"."main"."stg_uk_orders"
where customer_id is null


