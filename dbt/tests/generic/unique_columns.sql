{#- Rows that share the values of `columns`: the grain test of a table keyed on several columns.
    What dbt_utils.unique_combination_of_columns does (dbt packages cannot be fetched here).
    Grouping on the columns themselves costs half what `unique` on a concatenated string does:
    1.3 s against 2.6 s for int_customers_first_order's 16 M rows at the benchmark's large scale
    (docs/PERFORMANCE.md). -#}
{% test unique_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_records
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
