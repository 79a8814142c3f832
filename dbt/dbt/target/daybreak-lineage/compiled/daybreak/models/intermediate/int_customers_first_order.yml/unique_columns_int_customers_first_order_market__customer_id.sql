
select market, customer_id, count(*) as n_records
from "memory"."main"."int_customers_first_order"
group by market, customer_id
having count(*) > 1
