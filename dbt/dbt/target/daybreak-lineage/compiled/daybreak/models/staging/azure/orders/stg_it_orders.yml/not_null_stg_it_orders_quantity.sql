
    
    



select quantity
from "memory"."main"."stg_it_orders"
where quantity is null


