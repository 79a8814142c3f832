
    
    



select file_date
from "memory"."main"."stg_de_orders"
where file_date is null


