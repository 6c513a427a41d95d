-- One row per input row of a finished import: the loaded import_results, typed alike
-- on every warehouse, one row per key.
-- A table, unlike the other staging model: every row-level test and model reads it, and
-- as a view each of them would sort all rows again to drop duplicates (1M rows in
-- PostgreSQL: 25 s for a build as views, docs/models.md). Rebuilt whole each run,
-- so it always equals the load; see docs/models.md for why not incremental.
{{ config(materialized='table') }}

with loaded as (

{% if var('prism_results_loaded') %}
    select * from {{ source('prism', 'import_results') }}
{% else %}
    -- import_results is deselected in the tap: no table, so no rows, typed as if loaded.
    select
        cast(null as {{ dbt.type_string() }}) as team_id,
        cast(null as {{ dbt.type_string() }}) as job_id,
        cast(null as {{ dbt.type_bigint() }}) as row_index,
        cast(null as {{ dbt.type_string() }}) as record_id,
        cast(null as {{ dbt.type_string() }}) as outcome,
        cast(null as {{ dbt.type_boolean() }}) as created,
        cast(null as {{ dbt.type_boolean() }}) as existing,
        cast(null as {{ dbt.type_string() }}) as error_code,
        cast(null as {{ dbt.type_string() }}) as error_message,
        cast(null as {{ prism_type_timestamp() }}) as fetched_at,
        cast(null as {{ dbt.type_string() }}) as source_key
    where 1 = 0
{% endif %}

),

typed as (

    select
        lower(cast(team_id as {{ dbt.type_string() }})) as team_id,
        cast(job_id as {{ dbt.type_string() }}) as job_id,
        cast(row_index as {{ dbt.type_bigint() }}) as row_index,
        cast(source_key as {{ dbt.type_string() }}) as source_key,
        lower(cast(record_id as {{ dbt.type_string() }})) as record_id,
        cast(outcome as {{ dbt.type_string() }}) as outcome,
        cast(created as {{ dbt.type_boolean() }}) as is_created,
        cast(existing as {{ dbt.type_boolean() }}) as is_existing,
        cast(error_code as {{ dbt.type_string() }}) as error_code,
        cast(error_message as {{ dbt.type_string() }}) as error_message,
        cast(fetched_at as {{ prism_type_timestamp() }}) as fetched_at
    from loaded

),

ranked as (

    select
        typed.*,
        -- An append-only load or a refresh of a finished job can hold a row twice.
        row_number() over (
            partition by team_id, job_id, row_index
            order by fetched_at desc
        ) as load_rank
    from typed

)

select
    team_id || '/' || job_id as job_ref,
    team_id,
    job_id,
    row_index,
    source_key,
    record_id,
    outcome,
    is_created,
    is_existing,
    error_code,
    error_message,
    fetched_at
from ranked
where load_rank = 1
