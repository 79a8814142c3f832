
    
    



select market
from "memory"."main"."qi_executive_daily_sales"
where market is null


