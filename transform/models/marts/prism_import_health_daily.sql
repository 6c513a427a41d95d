-- Import health per day, object type and mode: how many imports started, how they
-- ended, and the share of rows that failed.
-- A view: it groups prism_imports (one row per import), which is small.
{{ config(materialized='view') }}

select
    cast(started_at as date) as import_date,
    object_type,
    mode,
    count(*) as imports,
    cast(sum(case when status = 'complete' then 1 else 0 end) as {{ dbt.type_bigint() }}) as imports_complete,
    cast(sum(case when status = 'failed' then 1 else 0 end) as {{ dbt.type_bigint() }}) as imports_failed,
    cast(sum(case when status = 'processing' then 1 else 0 end) as {{ dbt.type_bigint() }}) as imports_processing,
    cast(sum(case when is_expired_before_capture then 1 else 0 end) as {{ dbt.type_bigint() }}) as imports_expired_before_capture,
    cast(sum(case when is_stuck_processing then 1 else 0 end) as {{ dbt.type_bigint() }}) as imports_stuck_processing,
    cast(sum(rows_total) as {{ dbt.type_bigint() }}) as rows_total,
    cast(sum(rows_processed) as {{ dbt.type_bigint() }}) as rows_processed,
    cast(sum(rows_succeeded) as {{ dbt.type_bigint() }}) as rows_succeeded,
    cast(sum(rows_failed) as {{ dbt.type_bigint() }}) as rows_failed,
    round(
        cast(sum(rows_failed) as {{ dbt.type_numeric() }}) / nullif(sum(rows_processed), 0),
        4
    ) as failure_rate,
    cast(sum(rows_created) as {{ dbt.type_bigint() }}) as rows_created,
    cast(sum(rows_existing) as {{ dbt.type_bigint() }}) as rows_existing,
    avg(seconds_to_finish) as avg_seconds_to_finish,
    max(seconds_to_finish) as max_seconds_to_finish
from {{ ref('prism_imports') }}
group by cast(started_at as date), object_type, mode
