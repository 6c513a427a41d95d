-- Import health per day, object type and mode: how many imports started, how they
-- ended, how many need attention, and the share of rows that failed.
-- A view: it groups prism_imports (one row per import), which is small.
{{ config(materialized='view') }}

with imports as (

    select
        cast(started_at as date) as import_date,
        object_type,
        mode,
        case when status = 'complete' then 1 else 0 end as is_complete,
        case when status = 'failed' then 1 else 0 end as is_failed,
        case when status = 'processing' then 1 else 0 end as is_processing,
        case when is_expired_before_capture then 1 else 0 end as is_expired,
        case when is_stuck_processing then 1 else 0 end as is_stuck,
        rows_total,
        rows_processed,
        rows_succeeded,
        rows_failed,
        rows_created,
        rows_existing,
        rows_rejected,
        seconds_to_finish
    from {{ ref('prism_imports') }}

)

select
    import_date,
    object_type,
    mode,
    count(*) as imports,
    {{ prism_sum('is_complete') }} as imports_complete,
    {{ prism_sum('is_failed') }} as imports_failed,
    {{ prism_sum('is_processing') }} as imports_processing,
    {{ prism_sum('is_expired') }} as imports_expired_before_capture,
    {{ prism_sum('is_stuck') }} as imports_stuck_processing,
    {{ prism_sum('rows_total') }} as rows_total,
    {{ prism_sum('rows_processed') }} as rows_processed,
    {{ prism_sum('rows_succeeded') }} as rows_succeeded,
    {{ prism_sum('rows_failed') }} as rows_failed,
    round(
        cast(sum(rows_failed) as {{ dbt.type_numeric() }}) / nullif(sum(rows_processed), 0),
        4
    ) as failure_rate,
    {{ prism_sum('rows_created') }} as rows_created,
    {{ prism_sum('rows_existing') }} as rows_existing,
    {{ prism_sum('rows_rejected') }} as rows_rejected,
    avg(seconds_to_finish) as avg_seconds_to_finish,
    max(seconds_to_finish) as max_seconds_to_finish
from imports
group by import_date, object_type, mode
