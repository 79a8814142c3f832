
    
    



select quantity
from "memory"."main"."stg_de_orders"
where quantity is null


