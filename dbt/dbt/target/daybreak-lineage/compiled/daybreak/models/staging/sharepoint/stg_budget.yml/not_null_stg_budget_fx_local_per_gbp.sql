
    
    



select fx_local_per_gbp
from "memory"."main"."stg_budget"
where fx_local_per_gbp is null


