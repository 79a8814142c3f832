
    
    



select net_sales_gbp
from "memory"."main"."qi_executive_daily_sales"
where net_sales_gbp is null


