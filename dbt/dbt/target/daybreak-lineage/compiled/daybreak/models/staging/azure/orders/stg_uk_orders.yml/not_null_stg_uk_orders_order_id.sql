
    
    



select order_id
from "memory"."main"."stg_uk_orders"
where order_id is null


