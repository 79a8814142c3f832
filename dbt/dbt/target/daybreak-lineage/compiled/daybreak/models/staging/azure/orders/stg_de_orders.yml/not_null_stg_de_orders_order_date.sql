
    
    



select order_date
from "memory"."main"."stg_de_orders"
where order_date is null


