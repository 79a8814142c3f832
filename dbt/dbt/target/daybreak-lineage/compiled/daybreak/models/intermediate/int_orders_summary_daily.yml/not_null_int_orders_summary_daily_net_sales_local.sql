
    
    



select net_sales_local
from "memory"."main"."int_orders_summary_daily"
where net_sales_local is null


