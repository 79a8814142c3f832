
    
    



select quantity
from "memory"."main"."stg_uk_orders"
where quantity is null


