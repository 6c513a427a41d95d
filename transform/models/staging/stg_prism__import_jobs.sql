-- One row per import: the loaded import_jobs, typed alike on every warehouse, the
-- row counters renamed for what they count, and the latest snapshot per key.

with loaded as (

    select * from {{ source('prism', 'import_jobs') }}

),

typed as (

    select
        -- uuid in PostgreSQL, VARCHAR(36) in Snowflake: text everywhere, so keys join.
        lower(cast(team_id as {{ dbt.type_string() }})) as team_id,
        cast(job_id as {{ dbt.type_string() }}) as job_id,
        cast(status as {{ dbt.type_string() }}) as status,
        -- Loads made before the import log existed have no mode: they were followed
        -- at the API unless the tap named them after a logged sync or rejected import.
        cast(coalesce(
            mode,
            case
                when job_id like 'sync-%' then 'sync'
                when job_id like 'rejected-%' then 'rejected'
                else 'async'
            end
        ) as {{ dbt.type_string() }}) as mode,
        cast(object_type as {{ dbt.type_string() }}) as object_type,
        cast(total as {{ dbt.type_bigint() }}) as rows_total,
        cast(processed as {{ dbt.type_bigint() }}) as rows_processed,
        cast(succeeded as {{ dbt.type_bigint() }}) as rows_succeeded,
        cast(failed as {{ dbt.type_bigint() }}) as rows_failed,
        cast(results_count as {{ dbt.type_bigint() }}) as rows_captured,
        cast(error_code as {{ dbt.type_string() }}) as job_error_code,
        cast(error_message as {{ dbt.type_string() }}) as job_error_message,
        cast(submitted_at as {{ prism_type_timestamp() }}) as submitted_at,
        cast(created_at as {{ prism_type_timestamp() }}) as created_at,
        cast(updated_at as {{ prism_type_timestamp() }}) as updated_at,
        cast(expires_at as {{ prism_type_timestamp() }}) as expires_at,
        cast(fetched_at as {{ prism_type_timestamp() }}) as fetched_at
    from loaded

),

ranked as (

    select
        typed.*,
        -- An append-only load keeps every snapshot of a job: the last one fetched wins.
        row_number() over (
            partition by team_id, job_id
            order by fetched_at desc, updated_at desc
        ) as snapshot_rank
    from typed

)

select
    team_id || '/' || job_id as job_ref,
    team_id,
    job_id,
    mode,
    object_type,
    status,
    status in ('complete', 'failed') as is_finished,
    rows_total,
    rows_processed,
    rows_succeeded,
    rows_failed,
    rows_captured,
    job_error_code,
    job_error_message,
    -- When the import began: the API's creation time, or for a rejected request
    -- (never created) when it was sent.
    coalesce(created_at, submitted_at, fetched_at) as started_at,
    submitted_at,
    created_at,
    updated_at,
    expires_at,
    fetched_at
from ranked
where snapshot_rank = 1
