
    
    



select order_line_id
from "memory"."main"."stg_de_orders"
where order_line_id is null


