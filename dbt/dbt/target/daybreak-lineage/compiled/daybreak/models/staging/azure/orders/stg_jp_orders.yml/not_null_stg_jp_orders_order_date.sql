
    
    



select order_date
from "memory"."main"."stg_jp_orders"
where order_date is null


