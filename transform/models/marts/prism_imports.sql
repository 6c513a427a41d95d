-- One row per import: what it was, how it ended, how many of its rows were created,
-- matched or rejected, how long it took, and whether it needs attention (expired
-- before its rows were captured, or stuck processing).
-- A table: it counts every loaded row per import, which is worth doing once per build.

with jobs as (

    select * from {{ ref('stg_prism__import_jobs') }}

),

loaded_rows as (

    select
        job_ref,
        count(*) as rows_loaded,
        {{ prism_sum("case when outcome = 'created' then 1 else 0 end") }} as rows_created,
        {{ prism_sum("case when outcome = 'existing' then 1 else 0 end") }} as rows_existing,
        {{ prism_sum("case when outcome = 'failed' then 1 else 0 end") }} as rows_rejected,
        {{ prism_sum("case when outcome is null then 1 else 0 end") }} as rows_without_outcome
    from {{ ref('stg_prism__import_results') }}
    group by job_ref

),

now_utc as (

    select {{ prism_utc_now() }} as as_of

)

select
    jobs.job_ref,
    jobs.team_id,
    jobs.job_id,
    jobs.mode,
    jobs.object_type,
    jobs.status,
    jobs.is_finished,
    jobs.job_error_code,
    jobs.job_error_message,
    jobs.rows_total,
    jobs.rows_processed,
    jobs.rows_succeeded,
    jobs.rows_failed,
    -- From the job's own counters, so right for processing and failed jobs too.
    round(
        cast(jobs.rows_failed as {{ dbt.type_numeric() }})
        / nullif(jobs.rows_processed, 0),
        4
    ) as failure_rate,
    jobs.rows_captured,
    coalesce(loaded_rows.rows_loaded, 0) as rows_loaded,
    coalesce(loaded_rows.rows_created, 0) as rows_created,
    coalesce(loaded_rows.rows_existing, 0) as rows_existing,
    coalesce(loaded_rows.rows_rejected, 0) as rows_rejected,
    coalesce(loaded_rows.rows_without_outcome, 0) as rows_without_outcome,
    jobs.started_at,
    jobs.submitted_at,
    jobs.created_at,
    jobs.updated_at,
    jobs.expires_at,
    case
        when jobs.is_finished and jobs.created_at is not null
            then cast(
                {{ dbt.datediff('jobs.created_at', 'jobs.updated_at', 'second') }}
                as {{ dbt.type_bigint() }}
            )
    end as seconds_to_finish,
    -- The API forgets a job 7 days after creating it; one still processing at its last
    -- snapshot and past that can never have its rows captured.
    coalesce(
        jobs.status = 'processing'
        and coalesce(
            jobs.expires_at, {{ dbt.dateadd('day', 7, 'jobs.created_at') }}
        ) <= now_utc.as_of,
        false
    ) as is_expired_before_capture,
    -- Still processing, and its last snapshot showed no progress for
    -- prism_stuck_after_hours: the API's updated_at lags the time the tap asked.
    coalesce(
        jobs.status = 'processing'
        and {{ dbt.datediff(
            'coalesce(jobs.updated_at, jobs.created_at)', 'jobs.fetched_at', 'second'
        ) }} >= {{ var('prism_stuck_after_hours') }} * 3600,
        false
    ) as is_stuck_processing,
    jobs.fetched_at,
    now_utc.as_of
from jobs
left join loaded_rows on loaded_rows.job_ref = jobs.job_ref
cross join now_utc
