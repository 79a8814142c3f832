
    
    



select market
from "memory"."main"."stg_budget"
where market is null


