
    
    



select order_date
from "memory"."main"."stg_it_orders"
where order_date is null


