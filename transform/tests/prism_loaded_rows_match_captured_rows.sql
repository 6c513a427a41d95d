-- A bad load: an import whose loaded rows are not the rows the tap captured with it.
-- A complete import must hold rows 0 … rows_captured - 1, each once (the tap's
-- results_count for the snapshot the job row came from); an import not complete
-- (processing, failed, rejected) has no rows to give. Rows lost, moved to another
-- job, renumbered or loaded for the wrong snapshot show here.
-- Not checked: jobs captured while still processing (no rows yet, rows_captured
-- null), jobs captured before import_results was selected (var
-- prism_results_selected_since), and nothing at all when import_results is not loaded.
{{ config(severity='error', enabled=var('prism_results_loaded')) }}

with jobs as (

    select * from {{ ref('stg_prism__import_jobs') }}

),

loaded as (

    select
        job_ref,
        count(*) as rows_loaded,
        min(row_index) as first_row_index,
        max(row_index) as last_row_index
    from {{ ref('stg_prism__import_results') }}
    group by job_ref

)

select
    jobs.job_ref,
    jobs.status,
    jobs.rows_captured,
    coalesce(loaded.rows_loaded, 0) as rows_loaded,
    loaded.first_row_index,
    loaded.last_row_index
from jobs
left join loaded on loaded.job_ref = jobs.job_ref
where
    (
        jobs.status = 'complete'
        and jobs.rows_captured is not null
        {% if var('prism_results_selected_since') %}
        and jobs.fetched_at >= cast('{{ var("prism_results_selected_since") }}' as {{ prism_type_timestamp() }})
        {% endif %}
        and (
            coalesce(loaded.rows_loaded, 0) <> jobs.rows_captured
            or loaded.first_row_index < 0
            or loaded.last_row_index >= jobs.rows_captured
        )
    )
    or (jobs.status <> 'complete' and loaded.rows_loaded > 0)
