
    
    



select order_id
from "memory"."main"."stg_it_orders"
where order_id is null


