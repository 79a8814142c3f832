
select market, order_date, count(*) as n_records
from "memory"."main"."int_orders_summary_daily"
group by market, order_date
having count(*) > 1
