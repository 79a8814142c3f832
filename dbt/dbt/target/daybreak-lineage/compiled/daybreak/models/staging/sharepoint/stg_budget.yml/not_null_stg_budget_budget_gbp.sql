
    
    



select budget_gbp
from "memory"."main"."stg_budget"
where budget_gbp is null


