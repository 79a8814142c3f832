
    
    

select
    market || '|' || sales_date as unique_field,
    count(*) as n_records

from "memory"."main"."qi_executive_daily_sales"
where market || '|' || sales_date is not null
group by market || '|' || sales_date
having count(*) > 1


