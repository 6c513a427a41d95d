-- Every rejected row: which of the caller's records it was (source_key), in which
-- import, and why (error code and message).
-- A view: a filter over prism_import_rows, always current with it, nothing stored.
{{ config(materialized='view') }}

select
    job_ref,
    team_id,
    job_id,
    row_index,
    source_key,
    object_type,
    mode,
    error_code,
    error_message,
    started_at,
    fetched_at
from {{ ref('prism_import_rows') }}
where outcome = 'failed'
