
    
    



select order_date
from "memory"."main"."int_orders_summary_daily"
where order_date is null


