
    
    



select market
from "memory"."main"."stg_de_orders"
where market is null


