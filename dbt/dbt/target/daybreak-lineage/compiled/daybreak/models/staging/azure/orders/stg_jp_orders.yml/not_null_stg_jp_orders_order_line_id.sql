
    
    



select order_line_id
from "memory"."main"."stg_jp_orders"
where order_line_id is null


