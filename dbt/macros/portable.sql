{#- What DuckDB and Spark spell differently, in one place (adapter.dispatch: a default for DuckDB
    and a spark__ version). Models call these; nothing engine-specific stays inline in a model. -#}

{#- A CTE the engine must not copy into a temporary result (DuckDB would, when it is read twice;
    Spark inlines CTEs anyway). -#}
{% macro cte_inline() %}{{ return(adapter.dispatch('cte_inline', 'daybreak')()) }}{% endmacro %}
{% macro default__cte_inline() %}not materialized{% endmacro %}
{% macro spark__cte_inline() %}{% endmacro %}

{#- Rows of `relation` (an alias) that have a match in `other` on `columns`: a semi join. -#}
{% macro semi_join(left, right, columns) %}{{ return(adapter.dispatch('semi_join', 'daybreak')(left, right, columns)) }}{% endmacro %}
{% macro default__semi_join(left, right, columns) -%}
    {{ left }} semi join {{ right }} using ({{ columns | join(', ') }})
{%- endmacro %}
{% macro spark__semi_join(left, right, columns) -%}
    {{ left }} left semi join {{ right }}
    on {% for c in columns %}{{ left }}.{{ c }} = {{ right }}.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
{%- endmacro %}

{#- One row per day from `first` to `last` (date columns of the same row), as a date column. -#}
{% macro days_between(first, last) %}{{ return(adapter.dispatch('days_between', 'daybreak')(first, last)) }}{% endmacro %}
{% macro default__days_between(first, last) -%}
    cast(unnest(generate_series({{ first }}, {{ last }}, interval 1 day)) as date)
{%- endmacro %}
{% macro spark__days_between(first, last) -%}
    explode(sequence({{ first }}, {{ last }}, interval 1 day))
{%- endmacro %}

{#- The date `days` days before the date `expr`. -#}
{% macro days_before(expr, days) %}{{ return(adapter.dispatch('days_before', 'daybreak')(expr, days)) }}{% endmacro %}
{% macro default__days_before(expr, days) %}cast({{ expr }} - interval {{ days }} day as date){% endmacro %}
{% macro spark__days_before(expr, days) %}date_sub({{ expr }}, {{ days }}){% endmacro %}

{#- A source of the Parquet lake: DuckDB reads it through the source's external_location
    (read_parquet(...), dbt-duckdb); Spark reads the same files as parquet.`path`. The lineage
    (source() in the graph) is the same on both. -#}
{% macro source(source_name, table_name) %}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if target.type != 'spark' or not execute -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == source_name and node.name == table_name -%}
            {%- set location = node.config.get('external_location') or node.external_location or '' -%}
            {%- set path = location | replace("read_parquet('", "") | replace("')", "") -%}
            {{ return("parquet.`" ~ path ~ "`") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(relation) }}
{% endmacro %}
