"""End to end from an import log: ``meltano run tap-prism-imports target-postgres``.

The imports are made as a caller makes them (POST to the sandbox with ``requests``) and
each answer is logged with ``ImportLog``. Three runs into a real PostgreSQL:

1. the log holds a sync import (logged twice: a retry the API replayed) and a rejected
   request: both are loaded with zero API requests, the sync import's rows keyed by the
   caller's ``input_keys`` and the rejected request as a failed job;
2. nothing new: zero requests, the tables unchanged;
3. an async import is appended to the log: only its job is requested, and its rows get
   their keys from the log too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from helpers.api_requests import SYNC_KEYS, SYNC_ROWS, post_and_log
from helpers.pipeline_helpers import Meltano, Postgres, naive, now_utc, utc

from tap_prism_imports.import_log import ImportLog

if TYPE_CHECKING:
    import datetime
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

PIPELINE = ("tap-prism-imports", "target-postgres")
SCHEMA = "prism"  # default_target_schema in meltano.yml
NEW_JOB_COLUMNS = {
    "team_id": "uuid",
    "job_id": "text",
    "mode": "text",
    "object_type": "text",
    "submitted_at": "timestamp without time zone",
}
NEW_RESULT_COLUMNS = {"team_id": "uuid", "job_id": "text", "source_key": "text"}

REJECTED_KEYS = ["lead-1", "lead-2", "lead-3"]
REJECTED_ROWS: list[Any] = [
    {"default": {"name": "Lead 1"}},
    "Lead 2,lead2@example.com",  # never parsed: the API refuses the whole request
    {"default": {"name": "Lead 3"}},
]
ASYNC_KEYS = [f"D-{number}" for number in range(150)]


def column_types(postgres: Postgres, table: str) -> dict[str, str]:
    rows = postgres.rows(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}'"
    )
    return {row["column_name"]: row["data_type"] for row in rows}


def jobs_by_mode(postgres: Postgres) -> dict[str, list[dict[str, Any]]]:
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for row in postgres.rows(f"SELECT * FROM {SCHEMA}.import_jobs ORDER BY job_id"):
        by_mode.setdefault(row["mode"], []).append(row)
    return by_mode


def results_of(postgres: Postgres, job_id: str) -> list[dict[str, Any]]:
    return postgres.rows(
        f"SELECT * FROM {SCHEMA}.import_results WHERE job_id = '{job_id}' ORDER BY row_index"
    )


def full_dump(postgres: Postgres) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        postgres.rows(f"SELECT * FROM {SCHEMA}.import_jobs ORDER BY team_id, job_id"),
        postgres.rows(f"SELECT * FROM {SCHEMA}.import_results ORDER BY team_id, job_id, row_index"),
    )


def expected_rows(job_id: str, response: dict[str, Any], keys: list[str]) -> list[tuple[Any, ...]]:
    rows = []
    for index, (result, key) in enumerate(zip(response["results"], keys, strict=True)):
        error = result["error"] or {}
        outcome = "failed" if error else "created" if result["created"] else "existing"
        rows.append((job_id, index, key, result["id"], outcome, error.get("code")))
    return rows


def loaded_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["job_id"],
            r["row_index"],
            r["source_key"],
            r["record_id"],
            r["outcome"],
            r["error_code"],
        )
        for r in rows
    ]


def check_log_only_run(
    postgres: Postgres,
    sandbox: Sandbox,
    logged: tuple[dict[str, Any], dict[str, Any], dict[str, Any]],
    window: tuple[datetime.datetime, datetime.datetime],
) -> None:
    """The sync import and the rejected request are loaded, typed and keyed; no request."""
    sync_line, replay_line, rejected_line = logged
    assert sandbox.requests == [], "sync and rejected imports come from the log alone"
    jobs_columns = column_types(postgres, "import_jobs")
    results_columns = column_types(postgres, "import_results")
    assert {name: jobs_columns.get(name) for name in NEW_JOB_COLUMNS} == NEW_JOB_COLUMNS
    assert {name: results_columns.get(name) for name in NEW_RESULT_COLUMNS} == NEW_RESULT_COLUMNS

    jobs = jobs_by_mode(postgres)
    assert sorted(jobs) == ["rejected", "sync"]
    (sync,) = jobs["sync"]  # the replayed retry is the same import: one job
    response = sync_line["response"]
    assert replay_line["response"] == response
    assert sync["job_id"].startswith("sync-")
    assert sync["team_id"] == sandbox.team_id
    assert (sync["status"], sync["object_type"]) == ("complete", "contact")
    assert naive(sync["submitted_at"]) == utc(sync_line["submitted_at"])
    assert naive(sync["created_at"]) == utc(response["created_at"])
    assert (sync["total"], sync["succeeded"], sync["failed"]) == (6, 4, 2)
    assert sync["results_count"] == len(SYNC_KEYS)
    fetched_at = naive(sync["fetched_at"])
    assert fetched_at is not None
    assert window[0] <= fetched_at <= window[1]

    rows = results_of(postgres, sync["job_id"])
    assert loaded_rows(rows) == expected_rows(sync["job_id"], response, SYNC_KEYS)
    by_key = {row["source_key"]: row for row in rows}
    assert (by_key["crm-3"]["outcome"], by_key["crm-3"]["error_code"]) == (
        "failed",
        "validation_error",
    )
    assert by_key["crm-4"]["outcome"] == "existing"
    assert by_key["crm-4"]["record_id"] == by_key["crm-1"]["record_id"]
    assert by_key["crm-5"]["error_code"] == "missing_required_property"

    (rejected,) = jobs["rejected"]
    assert rejected_line["http_status"] == 400
    assert rejected["job_id"].startswith("rejected-")
    assert (rejected["status"], rejected["object_type"]) == ("failed", "contact")
    assert (rejected["error_code"], rejected["error_message"]) == (
        "http_400",
        "objects[1] must be an object",
    )
    assert rejected["total"] == len(REJECTED_KEYS)
    assert rejected["results_count"] is None
    assert naive(rejected["submitted_at"]) == utc(rejected_line["submitted_at"])
    assert results_of(postgres, rejected["job_id"]) == []
    total_rows = postgres.rows(f"SELECT count(*) AS n FROM {SCHEMA}.import_results")
    assert total_rows == [{"n": len(SYNC_KEYS)}]


def test_an_import_log_loads_into_postgres_with_zero_requests_for_what_it_answers(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    sync_line = post_and_log(sandbox, log, SYNC_ROWS, SYNC_KEYS, idempotency_key="crm-batch-1")
    replay_line = post_and_log(sandbox, log, SYNC_ROWS, SYNC_KEYS, idempotency_key="crm-batch-1")
    rejected_line = post_and_log(
        sandbox, log, REJECTED_ROWS, REJECTED_KEYS, idempotency_key="leads-batch-1"
    )
    assert [sync_line["http_status"], replay_line["http_status"]] == [200, 200]
    no_refs = tmp_path / "refs.txt"
    no_refs.write_text("# every import of this test comes from the import log\n", "utf-8")
    meltano = Meltano.for_sandbox(sandbox, tmp_path, no_refs)
    env = {**postgres.target_env, "TAP_PRISM_IMPORTS_IMPORT_LOG": str(log.path)}

    # Run 1: the log alone answers for both imports.
    sandbox.clear_requests()
    started = now_utc()
    meltano.run(*PIPELINE, extra_env=env)
    check_log_only_run(
        postgres, sandbox, (sync_line, replay_line, rejected_line), (started, now_utc())
    )

    # Run 2: nothing new in the log: no request, no change.
    before = full_dump(postgres)
    meltano.run(*PIPELINE, extra_env=env)
    assert sandbox.requests == []
    assert full_dump(postgres) == before

    # Run 3: an async import joins the log; only its job is requested.
    deals = [{"default": {"name": f"Deal {key}", "external_id": key}} for key in ASYNC_KEYS]
    async_line = post_and_log(
        sandbox, log, deals, ASYNC_KEYS, idempotency_key="deals-batch-1", object_type="deal"
    )
    assert async_line["http_status"] == 202
    job_id = async_line["response"]["job_id"]
    sandbox.advance_clock(len(ASYNC_KEYS) / sandbox.rows_per_second + 1)
    sandbox.clear_requests()
    meltano.run(*PIPELINE, extra_env=env)
    assert [(r["method"], r["job_id"]) for r in sandbox.requests] == [("GET", job_id)]
    jobs = jobs_by_mode(postgres)
    (followed,) = jobs["async"]
    assert (followed["job_id"], followed["status"], followed["object_type"]) == (
        job_id,
        "complete",
        "deal",
    )
    assert naive(followed["submitted_at"]) == utc(async_line["submitted_at"])
    snapshot = sandbox.snapshot(job_id)
    assert loaded_rows(results_of(postgres, job_id)) == expected_rows(job_id, snapshot, ASYNC_KEYS)
    after = full_dump(postgres)
    assert [job for job in after[0] if job["job_id"] != job_id] == before[0]
    assert [row for row in after[1] if row["job_id"] != job_id] == before[1]
