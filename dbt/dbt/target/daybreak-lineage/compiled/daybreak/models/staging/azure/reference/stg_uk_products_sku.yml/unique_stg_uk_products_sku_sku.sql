
    
    

select
    sku as unique_field,
    count(*) as n_records

from "memory"."main"."stg_uk_products_sku"
where sku is not null
group by sku
having count(*) > 1


