-- The most common row errors: how many rows and imports each error code and message
-- rejected, ranked, with when it was first and last seen.
-- A table: it groups every rejected row, once per build.

with failed_rows as (

    select * from {{ ref('prism_failed_rows') }}

),

by_error as (

    select
        error_code,
        error_message,
        count(*) as rows_failed,
        count(distinct job_ref) as imports_affected,
        min(started_at) as first_seen_at,
        max(started_at) as last_seen_at
    from failed_rows
    group by error_code, error_message

)

select
    rank() over (order by rows_failed desc) as error_rank,
    error_code,
    error_message,
    rows_failed,
    imports_affected,
    round(
        cast(rows_failed as {{ dbt.type_numeric() }})
        / sum(rows_failed) over (),
        4
    ) as share_of_failed_rows,
    first_seen_at,
    last_seen_at
from by_error
