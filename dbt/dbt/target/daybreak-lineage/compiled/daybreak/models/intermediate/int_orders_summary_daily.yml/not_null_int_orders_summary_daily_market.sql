
    
    



select market
from "memory"."main"."int_orders_summary_daily"
where market is null


