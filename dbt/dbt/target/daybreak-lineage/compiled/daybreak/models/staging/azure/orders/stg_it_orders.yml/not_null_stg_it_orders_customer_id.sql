
    
    



select customer_id
from "memory"."main"."stg_it_orders"
where customer_id is null


