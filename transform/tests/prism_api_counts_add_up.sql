-- The API's own arithmetic on a job's counters: succeeded + failed = processed,
-- processed never above total, and a complete job processed and returned every row.
-- Counters the API left out (null) are not checked. A warning: a failure here is
-- the API's answer, loaded faithfully, not a bad load.
{{ config(severity='warn') }}

select
    job_ref,
    status,
    rows_total,
    rows_processed,
    rows_succeeded,
    rows_failed,
    rows_captured
from {{ ref('stg_prism__import_jobs') }}
where
    rows_succeeded + rows_failed <> rows_processed
    or rows_processed > rows_total
    or (status = 'complete' and rows_processed <> rows_total)
    or (status = 'complete' and rows_captured <> rows_total)
