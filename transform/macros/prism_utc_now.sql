{#- The current time as a UTC timestamp without time zone, like the loaded columns.
    current_timestamp is zoned (timestamptz, TIMESTAMP_LTZ): compared with a naive
    UTC column it would be read in the session's time zone. -#}
{% macro prism_utc_now() -%}
    {{ return(adapter.dispatch('prism_utc_now', 'prism_imports')()) }}
{%- endmacro %}

{% macro default__prism_utc_now() -%}
    cast(current_timestamp at time zone 'UTC' as {{ prism_type_timestamp() }})
{%- endmacro %}

{% macro snowflake__prism_utc_now() -%}
    sysdate()
{%- endmacro %}
