
    
    



select customer_id
from "memory"."main"."stg_de_orders"
where customer_id is null


