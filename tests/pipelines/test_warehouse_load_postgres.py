"""Records parsed from hostile bodies load into PostgreSQL columns of the loader's types.

The table definitions are the ones MeltanoLabs target-postgres creates for the two streams
(see README, Warehouse tables). Only the server is needed, not Meltano: rows are inserted
with json_populate_recordset, which converts each JSON value to its column's type and
refuses what the column cannot hold (a NUL in text, a non-UUID in a uuid column, a count
past bigint, an unreadable timestamp).
"""

from __future__ import annotations

import datetime
import io
import json
import typing as t

import pytest
from helpers.hostile_bodies import snapshot_bodies
from helpers.pipeline_helpers import postgres_server
from hypothesis import HealthCheck, given, settings

from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.snapshots import parse_snapshot

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from helpers.pipeline_helpers import Postgres

pytestmark = pytest.mark.pipeline

REF = JobRef("1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c", "job_1")
FETCHED = datetime.datetime(2026, 11, 20, 10, 5, tzinfo=datetime.timezone.utc)

TABLES = """
CREATE SCHEMA prism;
CREATE TABLE prism.import_jobs (
    team_id uuid NOT NULL, job_id text NOT NULL, status text,
    total bigint, processed bigint, succeeded bigint, failed bigint,
    error_code text, error_message text,
    created_at timestamp, updated_at timestamp, expires_at timestamp,
    results_count bigint, fetched_at timestamp,
    PRIMARY KEY (team_id, job_id)
);
CREATE TABLE prism.import_results (
    team_id uuid NOT NULL, job_id text NOT NULL, row_index bigint NOT NULL,
    record_id uuid, outcome text, created boolean, existing boolean,
    error_code text, error_message text, fetched_at timestamp,
    PRIMARY KEY (team_id, job_id, row_index)
);
"""


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Postgres]:
    with postgres_server(timezone="America/New_York") as server:
        server.psql(TABLES)
        yield server


def load(warehouse: Postgres, body: bytes) -> tuple[int, int]:
    """Insert the body's records in one transaction; the numbers of rows that went in."""
    snapshot = parse_snapshot(io.BytesIO(body), REF, FETCHED)
    try:
        results = [] if snapshot.results is None else list(snapshot.results.lines())
        jobs_json = json.dumps([snapshot.record])
    finally:
        snapshot.close()
    results_json = "[" + b",".join(line.rstrip(b"\n") for line in results).decode() + "]"
    tag = "$rows$"
    while tag in jobs_json or tag in results_json:
        tag = tag[:-1] + "x$"
    sql = (
        "BEGIN;"
        "DELETE FROM prism.import_results; DELETE FROM prism.import_jobs;"
        "INSERT INTO prism.import_jobs SELECT * FROM "
        f"json_populate_recordset(NULL::prism.import_jobs, {tag}{jobs_json}{tag}::json);"
        "INSERT INTO prism.import_results SELECT * FROM "
        f"json_populate_recordset(NULL::prism.import_results, {tag}{results_json}{tag}::json);"
        "SELECT (SELECT count(*) FROM prism.import_jobs) || ' ' || "
        "(SELECT count(*) FROM prism.import_results);"
        "COMMIT;"
    )
    jobs, rows = warehouse.psql(sql).split()
    return int(jobs), int(rows)


def test_a_body_of_every_bad_value_loads(warehouse: Postgres) -> None:
    body = (
        b'{"job_id": "other", "status": "failed", "total": 9223372036854775807,'
        b' "processed": -1, "succeeded": 9223372036854775808, "failed": 1e400,'
        b' "error": "worker\\u0000 crashed \\ud800", "created_at": "0001-01-01T00:00:00+01:00",'
        b' "updated_at": "9999-12-31T23:59:59-05:00", "expires_at": "soon",'
        b' "results": ['
        b'{"id": "rec_1", "created": "yes", "existing": 1, "error": null},'
        b'{"id": "182BD5E5-6E1A-4FE4-A799-AA6D9A6AB26E", "created": true},'
        b'{"id": 7, "error": {"code": "bad\\u0000", "message": "\\udc00\\u0000 \\ud83d\\ude00"}},'
        b'{"id": null, "error": {"code": 12, "message": ["not", "text"]}}'
        b"]}"
    )
    assert load(warehouse, body) == (1, 4)
    loaded = warehouse.rows(
        "SELECT row_index, record_id::text, error_message FROM prism.import_results "
        "ORDER BY row_index"
    )
    assert [row["record_id"] for row in loaded] == [
        None,
        "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e",
        None,
        None,
    ]
    assert loaded[2]["error_message"] == "\ufffd \U0001f600"
    job = warehouse.rows("SELECT job_id, total, processed, error_message FROM prism.import_jobs")
    assert job == [
        {
            "job_id": REF.job_id,
            "total": 9223372036854775807,
            "processed": None,
            "error_message": "worker crashed \ufffd",
        }
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=snapshot_bodies())
def test_any_body_the_parser_accepts_loads(warehouse: Postgres, body: bytes) -> None:
    jobs, _ = load(warehouse, body)
    assert jobs == 1
