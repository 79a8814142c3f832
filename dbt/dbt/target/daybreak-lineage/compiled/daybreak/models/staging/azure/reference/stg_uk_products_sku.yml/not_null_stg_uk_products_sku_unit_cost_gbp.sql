
    
    



select unit_cost_gbp
from "memory"."main"."stg_uk_products_sku"
where unit_cost_gbp is null


