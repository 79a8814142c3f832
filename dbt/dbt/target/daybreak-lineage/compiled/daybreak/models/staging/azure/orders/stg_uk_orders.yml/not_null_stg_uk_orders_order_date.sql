
    
    



select order_date
from "memory"."main"."stg_uk_orders"
where order_date is null


