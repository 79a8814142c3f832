
    
    



select file_date
from "memory"."main"."stg_uk_orders"
where file_date is null


