
    
    



select market
from "memory"."main"."stg_uk_orders"
where market is null


