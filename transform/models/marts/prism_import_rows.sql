-- One row per input row of every finished import: which of the caller's records
-- (source_key) it was, and whether it created a Prism record, matched an existing one
-- (record_id either way) or was rejected.
-- Incremental: a job's rows arrive once, when it is first captured finished, so each
-- build adds the rows fetched since the last one instead of copying every row again.
-- A refresh of finished jobs (refresh_terminal_jobs) re-sends rows with a newer
-- fetched_at, which replace the old ones by key. Rows deleted from import_results stay
-- here until `dbt build --full-refresh`.
{{ config(
    materialized='incremental',
    unique_key=['team_id', 'job_id', 'row_index'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns'
) }}

with result_rows as (

    select * from {{ ref('stg_prism__import_results') }}
    {% if is_incremental() %}
    where fetched_at >= (select max(fetched_at) from {{ this }})
    {% endif %}

),

jobs as (

    select * from {{ ref('stg_prism__import_jobs') }}

)

select
    result_rows.job_ref,
    result_rows.team_id,
    result_rows.job_id,
    result_rows.row_index,
    result_rows.source_key,
    result_rows.outcome,
    result_rows.record_id,
    result_rows.is_created,
    result_rows.is_existing,
    result_rows.error_code,
    result_rows.error_message,
    jobs.mode,
    jobs.object_type,
    jobs.started_at,
    result_rows.fetched_at
from result_rows
left join jobs on jobs.job_ref = result_rows.job_ref
