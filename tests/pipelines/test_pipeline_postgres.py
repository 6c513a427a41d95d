"""End to end: ``meltano run tap-prism-imports target-postgres`` into a real PostgreSQL.

Three runs against one in-process sandbox seeded with the demo jobs (3 complete, 1
processing, 1 failed, 1 expired):

1. everything the API serves is loaded, with the right column types and UTC values;
2. the processing job completes (sandbox clock advanced): its row is updated in place,
   its results appear once, and no terminal job is requested again;
3. nothing new: no rows change and no request is made at all.

The server runs with ``TimeZone = America/New_York`` so that a timestamp written in
local time instead of UTC would show.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from helpers.pipeline_helpers import Meltano, Postgres, job_refs_file, naive, now_utc, utc

from prism_sandbox import seed_demo

if TYPE_CHECKING:
    import datetime
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

PIPELINE = ("tap-prism-imports", "target-postgres")
SCHEMA = "prism"  # default_target_schema in meltano.yml
PROCESSING_COMPLETES_AFTER = 10 * 60.0  # seconds on the sandbox clock (see sandbox/seed.py)

JOB_COLUMNS = {
    "team_id": "uuid",
    "job_id": "text",
    "status": "text",
    "total": "bigint",
    "processed": "bigint",
    "succeeded": "bigint",
    "failed": "bigint",
    "error_code": "text",
    "error_message": "text",
    "created_at": "timestamp without time zone",
    "updated_at": "timestamp without time zone",
    "expires_at": "timestamp without time zone",
    "results_count": "bigint",
    "fetched_at": "timestamp without time zone",
    "mode": "text",
    "object_type": "text",
    "submitted_at": "timestamp without time zone",
}
RESULT_COLUMNS = {
    "team_id": "uuid",
    "job_id": "text",
    "row_index": "bigint",
    "record_id": "uuid",
    "outcome": "text",
    "created": "boolean",
    "existing": "boolean",
    "error_code": "text",
    "error_message": "text",
    "fetched_at": "timestamp without time zone",
    "source_key": "text",
}
JOB_FIELDS = ("status", "total", "processed", "succeeded", "failed")
JOB_TIMES = ("created_at", "updated_at", "expires_at")
RESULT_FIELDS = (
    "job_id",
    "row_index",
    "record_id",
    "outcome",
    "created",
    "existing",
    "error_code",
    "error_message",
)


# ---------------------------------------------------------------- expectations


def expected_job(snapshot: dict[str, Any]) -> dict[str, Any]:
    error = snapshot.get("error") or {}
    results = snapshot.get("results")
    return {
        **{name: snapshot.get(name) for name in JOB_FIELDS},
        **{name: utc(snapshot[name]) for name in JOB_TIMES},
        "error_code": error.get("code"),
        "error_message": error.get("message"),
        "results_count": None if results is None else len(results),
    }


def expected_results(job_id: str, snapshot: dict[str, Any]) -> set[tuple[Any, ...]]:
    rows: set[tuple[Any, ...]] = set()
    for index, result in enumerate(snapshot["results"]):
        error = result["error"] or {}
        if error:
            outcome = "failed"
        elif result["created"]:
            outcome = "created"
        else:
            outcome = "existing"
        rows.add(
            (
                job_id,
                index,
                result["id"],
                outcome,
                result["created"],
                result["existing"],
                error.get("code"),
                error.get("message"),
            )
        )
    return rows


# ---------------------------------------------------------------- warehouse


def loaded_jobs(postgres: Postgres) -> dict[str, dict[str, Any]]:
    rows = postgres.rows(f"SELECT * FROM {SCHEMA}.import_jobs")
    keys = Counter((row["team_id"], row["job_id"]) for row in rows)
    assert all(count == 1 for count in keys.values()), f"duplicate job rows: {keys}"
    jobs: dict[str, dict[str, Any]] = {}
    for row in rows:
        jobs[row["job_id"]] = {
            **{name: row[name] for name in (*JOB_FIELDS, "error_code", "error_message")},
            **{name: naive(row[name]) for name in JOB_TIMES},
            "results_count": row["results_count"],
            "team_id": row["team_id"],
            "fetched_at": naive(row["fetched_at"]),
        }
    return jobs


def loaded_results(postgres: Postgres) -> list[dict[str, Any]]:
    return postgres.rows(f"SELECT * FROM {SCHEMA}.import_results")


def result_set(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    keys = Counter((row["team_id"], row["job_id"], row["row_index"]) for row in rows)
    duplicated = {key: n for key, n in keys.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} result rows loaded more than once"
    found = {tuple(row[name] for name in RESULT_FIELDS) for row in rows}
    assert len(found) == len(rows)
    return found


def column_types(postgres: Postgres, table: str) -> dict[str, str]:
    rows = postgres.rows(
        "SELECT column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = '{SCHEMA}' AND table_name = '{table}' "
        "AND column_name NOT LIKE '\\_sdc\\_%'"
    )
    return {row["column_name"]: row["data_type"] for row in rows}


def primary_key(postgres: Postgres, table: str) -> str:
    rows = postgres.rows(
        "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint "
        f"WHERE conrelid = '{SCHEMA}.{table}'::regclass AND contype = 'p'"
    )
    assert len(rows) == 1
    return str(rows[0]["definition"])


def full_dump(postgres: Postgres) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both tables, every column (metadata included), in key order."""
    return (
        postgres.rows(f"SELECT * FROM {SCHEMA}.import_jobs ORDER BY team_id, job_id"),
        postgres.rows(f"SELECT * FROM {SCHEMA}.import_results ORDER BY team_id, job_id, row_index"),
    )


def requested_jobs(sandbox: Sandbox) -> Counter[str]:
    return Counter(str(entry["job_id"]) for entry in sandbox.requests)


# ---------------------------------------------------------------- the test


@dataclass(frozen=True)
class DemoJobs:
    """The seeded demo jobs, by role (see packages/prism-sandbox/prism_sandbox/seed.py)."""

    complete: tuple[str, ...]
    processing: str
    failed: str
    expired: str

    @classmethod
    def seed(cls, sandbox: Sandbox) -> DemoJobs:
        ids = [ref.split("/", 1)[1] for ref in seed_demo(sandbox)]
        return cls(complete=tuple(ids[:3]), processing=ids[3], failed=ids[4], expired=ids[5])

    @property
    def all(self) -> list[str]:
        return [*self.complete, self.processing, self.failed, self.expired]

    @property
    def loaded(self) -> set[str]:
        return {*self.complete, self.processing, self.failed}


def check_first_run(
    postgres: Postgres,
    sandbox: Sandbox,
    demo: DemoJobs,
    window: tuple[datetime.datetime, datetime.datetime],
) -> tuple[dict[str, dict[str, Any]], set[tuple[Any, ...]]]:
    """Everything served is loaded, typed, in UTC; returns the jobs and result rows."""
    assert requested_jobs(sandbox) == Counter(demo.all), "each configured job requested once"
    assert column_types(postgres, "import_jobs") == JOB_COLUMNS
    assert column_types(postgres, "import_results") == RESULT_COLUMNS
    assert primary_key(postgres, "import_jobs") == "PRIMARY KEY (team_id, job_id)"
    assert primary_key(postgres, "import_results") == "PRIMARY KEY (team_id, job_id, row_index)"

    jobs = loaded_jobs(postgres)
    assert set(jobs) == demo.loaded
    assert demo.expired not in jobs, "the expired job (404) is not loaded"
    # Refs from a refs file: followed at GET, with nothing an import log would add.
    assert postgres.rows(
        f"SELECT DISTINCT mode, object_type, submitted_at FROM {SCHEMA}.import_jobs"
    ) == [{"mode": "async", "object_type": None, "submitted_at": None}]
    snapshots = {job_id: sandbox.snapshot(job_id) for job_id in demo.loaded}
    for job_id in (*demo.complete, demo.failed):
        loaded, expected = jobs[job_id], expected_job(snapshots[job_id])
        assert loaded["team_id"] == sandbox.team_id
        assert {name: loaded[name] for name in expected} == expected, job_id
        assert window[0] <= loaded["fetched_at"] <= window[1]
    assert jobs[demo.failed]["error_code"] == "import_aborted"
    assert jobs[demo.failed]["results_count"] is None
    processing, snapshot = jobs[demo.processing], snapshots[demo.processing]
    assert processing["status"] == "processing"
    assert processing["results_count"] is None
    assert processing["total"] == snapshot["total"]
    assert processing["created_at"] == utc(snapshot["created_at"])
    assert processing["expires_at"] == utc(snapshot["expires_at"])

    expected_rows = set().union(*(expected_results(j, snapshots[j]) for j in demo.complete))
    results = loaded_results(postgres)
    assert len(results) == sum(len(snapshots[j]["results"]) for j in demo.complete) == 5_430
    assert result_set(results) == expected_rows
    assert {row["team_id"] for row in results} == {sandbox.team_id}
    assert {row["source_key"] for row in results} == {None}
    for row in results:
        assert naive(row["fetched_at"]) == jobs[row["job_id"]]["fetched_at"]
    return jobs, expected_rows


def check_second_run(
    postgres: Postgres,
    sandbox: Sandbox,
    demo: DemoJobs,
    window: tuple[datetime.datetime, datetime.datetime],
    before: tuple[dict[str, dict[str, Any]], set[tuple[Any, ...]]],
) -> None:
    """The completed job is updated in place and its rows added once; nothing else moves."""
    jobs_before, rows_before = before
    assert requested_jobs(sandbox) == Counter([demo.processing]), (
        "only the job that was processing is requested: terminal and expired jobs are not"
    )
    completed = sandbox.snapshot(demo.processing)
    jobs = loaded_jobs(postgres)
    assert set(jobs) == demo.loaded
    updated = jobs[demo.processing]
    expected = expected_job(completed)
    assert {name: updated[name] for name in expected} == expected
    assert updated["status"] == "complete"
    assert updated["results_count"] == 3_000
    assert window[0] <= updated["fetched_at"] <= window[1]
    for job_id in (*demo.complete, demo.failed):
        assert jobs[job_id] == jobs_before[job_id], f"{job_id} was rewritten"

    results = loaded_results(postgres)
    assert len(results) == 5_430 + 3_000
    assert result_set(results) == rows_before | expected_results(demo.processing, completed)
    new_rows = [row for row in results if row["job_id"] == demo.processing]
    assert sorted(row["row_index"] for row in new_rows) == list(range(3_000))
    assert {naive(row["fetched_at"]) for row in new_rows} == {updated["fetched_at"]}


def test_three_runs_load_exactly_what_the_api_served(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    demo = DemoJobs.seed(sandbox)
    meltano = Meltano.for_sandbox(sandbox, tmp_path, job_refs_file(sandbox, tmp_path / "refs"))
    target = postgres.target_env

    # Run 1: everything the API serves is loaded.
    started = now_utc()
    meltano.run(*PIPELINE, extra_env=target)
    first = check_first_run(postgres, sandbox, demo, (started, now_utc()))

    # Run 2: the processing job has completed.
    sandbox.advance_clock(PROCESSING_COMPLETES_AFTER)
    assert sandbox.snapshot(demo.processing)["status"] == "complete"
    sandbox.clear_requests()
    started = now_utc()
    meltano.run(*PIPELINE, extra_env=target)
    check_second_run(postgres, sandbox, demo, (started, now_utc()), first)

    # Run 3: nothing new, so no request and no change.
    before = full_dump(postgres)
    sandbox.clear_requests()
    meltano.run(*PIPELINE, extra_env=target)
    assert sandbox.requests == [], "no request at all: every job is terminal or expired"
    assert full_dump(postgres) == before
    assert (len(before[0]), len(before[1])) == (5, 5_430 + 3_000)
