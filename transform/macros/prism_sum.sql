{#- A sum of integers as bigint on every warehouse: DuckDB sums them to HUGEINT, which
    clients read less readily than the BIGINT of PostgreSQL or Snowflake's NUMBER. -#}
{% macro prism_sum(expression) -%}
    cast(sum({{ expression }}) as {{ dbt.type_bigint() }})
{%- endmacro %}
