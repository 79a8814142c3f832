
    
    



select sku
from "memory"."main"."stg_uk_products_sku"
where sku is null


