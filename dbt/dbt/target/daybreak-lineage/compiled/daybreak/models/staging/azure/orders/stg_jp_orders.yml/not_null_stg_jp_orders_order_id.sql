
    
    



select order_id
from "memory"."main"."stg_jp_orders"
where order_id is null


