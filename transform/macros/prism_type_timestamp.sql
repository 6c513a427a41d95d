{#- The type of the loaded timestamps: UTC, without time zone. dbt's type_timestamp()
    is Snowflake's TIMESTAMP, whose meaning is the account's TIMESTAMP_TYPE_MAPPING
    (LTZ there would shift every value into the session's time zone). -#}
{% macro prism_type_timestamp() -%}
    {{ return(adapter.dispatch('prism_type_timestamp', 'prism_imports')()) }}
{%- endmacro %}

{% macro default__prism_type_timestamp() -%}
    {{ dbt.type_timestamp() }}
{%- endmacro %}

{% macro snowflake__prism_type_timestamp() -%}
    timestamp_ntz
{%- endmacro %}
