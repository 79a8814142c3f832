
    
    



select first_order_date
from "memory"."main"."int_customers_first_order"
where first_order_date is null


