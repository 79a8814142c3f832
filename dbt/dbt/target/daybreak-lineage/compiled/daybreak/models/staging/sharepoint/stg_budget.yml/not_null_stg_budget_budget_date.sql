
    
    



select budget_date
from "memory"."main"."stg_budget"
where budget_date is null


