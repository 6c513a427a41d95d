{#- No row shares these columns' values with another (nulls equal, as in GROUP BY).
    dbt's own unique test takes one column, and dbt_utils is a dbt Hub package. -#}
{% test prism_unique_combination(model, columns) %}

select {{ columns | join(', ') }}, count(*) as rows_with_these_values
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1

{% endtest %}
