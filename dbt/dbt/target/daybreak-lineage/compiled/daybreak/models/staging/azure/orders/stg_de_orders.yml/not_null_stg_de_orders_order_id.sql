
    
    



select order_id
from "memory"."main"."stg_de_orders"
where order_id is null


