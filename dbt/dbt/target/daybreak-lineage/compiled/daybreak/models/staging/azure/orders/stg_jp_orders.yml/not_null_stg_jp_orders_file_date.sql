
    
    



select file_date
from "memory"."main"."stg_jp_orders"
where file_date is null


