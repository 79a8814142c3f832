
    
    



select file_date
from "memory"."main"."stg_it_orders"
where file_date is null


