
    
    



select market
from "memory"."main"."stg_jp_orders"
where market is null


