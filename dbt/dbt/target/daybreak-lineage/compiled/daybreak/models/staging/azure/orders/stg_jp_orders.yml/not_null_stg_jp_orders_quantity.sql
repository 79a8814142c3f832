
    
    



select quantity
from "memory"."main"."stg_jp_orders"
where quantity is null


