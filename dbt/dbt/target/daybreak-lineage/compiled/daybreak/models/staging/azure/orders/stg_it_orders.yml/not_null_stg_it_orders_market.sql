
    
    



select market
from "memory"."main"."stg_it_orders"
where market is null


