
    
    



select customer_id
from "memory"."main"."int_customers_first_order"
where customer_id is null


