
    
    



select sales_date
from "memory"."main"."int_market_calendar"
where sales_date is null


