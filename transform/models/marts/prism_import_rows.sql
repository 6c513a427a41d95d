-- One row per input row of every finished import: which of the caller's records
-- (source_key) it was, and whether it created a Prism record, matched an existing one
-- (record_id either way) or was rejected, with its import's mode and object type.
-- A view: stg_prism__import_results is already a deduplicated table, and joining
-- each row to its import's attributes costs less than storing a second copy.
{{ config(materialized='view') }}

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
from {{ ref('stg_prism__import_results') }} as result_rows
left join {{ ref('stg_prism__import_jobs') }} as jobs on jobs.job_ref = result_rows.job_ref
