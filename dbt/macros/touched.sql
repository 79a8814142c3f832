{#- dbt's tests check what the build touched (docs/PERFORMANCE.md, "dbt's tests by change").

    A model says which column marks the rows a build wrote, in its config:
    `meta: {touched_by: synced_at}` (the lake file's sync time, carried by every row; for
    int_customers_first_order, last_synced_at). Its tests carry `where: "__touched__"` (set for
    whole folders in dbt_project.yml). daybreak passes, per model, the high-water mark of that
    column when its tests last passed (var `test_since`: {model: timestamp}); the test then reads
    only rows past it, which are the rows written since. A model missing from `test_since` (the
    first build, `--full`, the weekly full run, the dbt CLI) is tested whole.

    This overrides dbt's own get_where_subquery, the documented hook for a `where` worked out at
    run time (the vars of a build are not part of the parsed project, so a new high-water mark
    does not make dbt parse the project again). -#}
{% macro get_where_subquery(relation) -%}
    {%- set found = namespace(where=config.get('where')) -%}
    {%- if found.where and '__touched__' in found.where -%}
        {%- set since = (var('test_since', {}) or {}).get(relation.identifier) -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.alias == relation.identifier -%}
            {%- set column = node.config.meta.get('touched_by') -%}
            {%- if since and column -%}
                {%- set found.where = found.where | replace('__touched__', column ~ " > timestamp '" ~ since ~ "'") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if '__touched__' in found.where -%}
            {%- set found.where = none -%}
        {%- endif -%}
    {%- endif -%}
    {%- if found.where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ found.where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
