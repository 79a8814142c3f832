
    
    

select
    market || '|' || sales_date as unique_field,
    count(*) as n_records

from "memory"."main"."int_market_calendar"
where market || '|' || sales_date is not null
group by market || '|' || sales_date
having count(*) > 1


