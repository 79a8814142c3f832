
    
    



select net_sales_gbp
from "memory"."main"."int_orders_summary_daily"
where net_sales_gbp is null


