
    
    



select sales_date
from "memory"."main"."qi_executive_daily_sales"
where sales_date is null


