
    
    



select customer_id
from "memory"."main"."stg_jp_orders"
where customer_id is null


