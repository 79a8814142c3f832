
    
    



select market
from "memory"."main"."int_market_calendar"
where market is null


