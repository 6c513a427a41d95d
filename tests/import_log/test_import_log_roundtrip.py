"""Imports made with the official SDK, logged by the writer, read back by the reader."""

from __future__ import annotations

import datetime
import io
from typing import TYPE_CHECKING, Any

import pytest
import requests
from helpers.log_reading import read_log

from tap_prism_imports.import_log import ImportLog
from tap_prism_imports.import_log.keys import attach_source_keys, read_input_keys
from tap_prism_imports.records.import_results import iter_result_records
from tap_prism_imports.snapshots import parse_snapshot
from tap_prism_imports.times import utc_now

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

micro_so = pytest.importorskip("micro_so")


SYNC_KEYS = [f"crm-{i}" for i in range(5)]
ASYNC_KEYS = [f"big-{i}" for i in range(120)]


def make_imports(sandbox: Sandbox, log: ImportLog) -> tuple[list[dict[str, Any]], str]:
    """A sync import and its replay, an async one and a conflict, each logged.

    Returns the results the sync import served and the async job's id.
    """
    team = sandbox.team_id
    with micro_so.Micro(
        api_key=sandbox.api_key, team_id=team, base_url=sandbox.base_url, max_retries=0
    ) as client:
        contacts = client.prism.objects.contacts
        sync_rows: list[dict[str, Any]] = [
            {"default": {"email": f"s{i}@example.com"}} for i in range(4)
        ]
        sync_rows.append({"default": {"email": "not an email"}})
        sync = contacts.with_raw_response.bulk_create(
            objects=sync_rows, options={"dedupe_by": "email"}, idempotency_key="batch-1"
        )
        log.record(sync, team_id=team, object_type="contact", input_keys=SYNC_KEYS)
        # The same request again: the API replays it, and it is still one import.
        replay = contacts.with_raw_response.bulk_create(
            objects=sync_rows, options={"dedupe_by": "email"}, idempotency_key="batch-1"
        )
        assert replay.headers["idempotent-replay"] == "true"
        log.record(replay, team_id=team, object_type="contact", input_keys=SYNC_KEYS)

        started = contacts.with_raw_response.bulk_create(
            objects=[{"default": {"email": f"a{i}@example.com"}} for i in range(120)]
        )
        log.record(started, team_id=team, object_type="contact", input_keys=ASYNC_KEYS)

        with pytest.raises(micro_so.ConflictError) as conflict:
            contacts.bulk_create(objects=sync_rows[:1], idempotency_key="batch-1")
        log.record(conflict.value, team_id=team, object_type="contact", input_keys=["crm-0"])
    return sync.json()["results"], started.parse().job_id


def test_every_kind_of_import_comes_back_from_the_log(sandbox: Sandbox, tmp_path: Path) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    served, job_id = make_imports(sandbox, log)
    state: dict[str, Any] = {}
    with read_log(log.path, state, utc_now()) as batch:
        assert batch.errors == []
        assert batch.warnings == []
        sync_import, rejected = batch.imports
        assert sync_import.record["status"] == "complete"
        assert (sync_import.record["succeeded"], sync_import.record["failed"]) == (4, 1)
        assert sync_import.results is not None
        rows = list(iter_result_records(sync_import.results))
        assert [row["record_id"] for row in rows] == [result["id"] for result in served]
        assert [row["source_key"] for row in rows] == SYNC_KEYS
        assert rows[4]["outcome"] == "failed"
        assert rows[4]["error_code"] == "validation_error"

        assert rejected.record["error_code"] == "http_409"
        assert rejected.record["total"] == 1
        assert "different request body" in rejected.record["error_message"]

        (ref,) = batch.refs
        assert ref.ref.job_id == job_id
        keys_at = ref.input_keys_at
        assert keys_at is not None
        for item in (sync_import, rejected):
            batch.confirm(item)
        batch.confirm(ref)

    # Later the job completes; its results get the keys the log recorded for it.
    sandbox.advance_clock(10)
    response = requests.get(
        f"{sandbox.base_url}{ref.ref.path}", headers={"x-api-key": sandbox.api_key}, timeout=30
    )
    snapshot = parse_snapshot(
        io.BytesIO(response.content), ref.ref, datetime.datetime.now(datetime.timezone.utc)
    )
    assert snapshot.results is not None
    lookup = read_input_keys(keys_at.to_state(), ref.ref)
    assert lookup.warning is None
    keyed, warnings = attach_source_keys(
        snapshot.results, lookup.keys, import_name=f"job {ref.ref.key}"
    )
    assert warnings == []
    assert [row["source_key"] for row in iter_result_records(keyed)] == ASYNC_KEYS
    keyed.close()

    with read_log(log.path, state, utc_now()) as again:
        assert again.imports == []
        assert again.refs == []


def _validators() -> tuple[Any, Any]:
    from jsonschema import Draft202012Validator, FormatChecker  # noqa: PLC0415

    from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream  # noqa: PLC0415

    checker = FormatChecker()
    return (
        Draft202012Validator(ImportJobsStream.schema, format_checker=checker),
        Draft202012Validator(ImportResultsStream.schema, format_checker=checker),
    )


def test_the_tap_loads_every_import_from_the_log_exactly_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from helpers.tap_runner import job_requests, run_tap  # noqa: PLC0415

    log = ImportLog(tmp_path / "imports.jsonl")
    served, job_id = make_imports(sandbox, log)
    # The log alone: no team_id, no job_ids.
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "import_log": str(log.path)}

    first = run_tap(config, sandbox=sandbox)
    assert first.error is None, first.logs
    by_mode = {job["mode"]: job for job in first.jobs}
    assert sorted(job["mode"] for job in first.jobs) == ["async", "rejected", "sync"]
    sync, rejected, followed = by_mode["sync"], by_mode["rejected"], by_mode["async"]
    assert sync["job_id"].startswith("sync-")
    assert (sync["status"], sync["object_type"]) == ("complete", "contact")
    assert sync["submitted_at"] is not None
    assert (rejected["status"], rejected["error_code"]) == ("failed", "http_409")
    assert rejected["job_id"].startswith("rejected-")
    assert followed["job_id"] == job_id
    assert followed["status"] == "processing"
    assert followed["object_type"] == "contact"
    # Only the async job costs a request: sync and rejected imports come from the log.
    assert job_requests(first) == [job_id]
    rows = [r for r in first.results if r["job_id"] == sync["job_id"]]
    assert [r["source_key"] for r in rows] == SYNC_KEYS
    assert [r["record_id"] for r in rows] == [result["id"] for result in served]
    assert [r["job_id"] for r in first.results] == [sync["job_id"]] * len(SYNC_KEYS)
    jobs_schema, rows_schema = _validators()
    for record in first.jobs:
        jobs_schema.validate(record)
    for record in first.results:
        rows_schema.validate(record)

    sandbox.advance_clock(10)  # the async job completes
    second = run_tap(config, first.state, sandbox=sandbox)
    assert second.error is None, second.logs
    assert job_requests(second) == [job_id]
    assert [(j["job_id"], j["status"]) for j in second.jobs] == [(job_id, "complete")]
    assert [r["source_key"] for r in second.results] == ASYNC_KEYS
    for record in second.results:
        rows_schema.validate(record)

    third = run_tap(config, second.state, sandbox=sandbox)
    assert third.error is None, third.logs
    assert third.requests == []
    assert third.jobs == []
    assert third.results == []


def test_a_malformed_log_line_fails_the_run_naming_it_and_the_rest_still_loads(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from helpers.tap_runner import run_tap  # noqa: PLC0415

    from tap_prism_imports.errors import JobsFailedError  # noqa: PLC0415

    log = ImportLog(tmp_path / "imports.jsonl")
    make_imports(sandbox, log)
    with log.path.open("a", encoding="utf-8") as file:
        file.write('{"v": 1, "team_id": "not-a-uuid"}\n')
    broken_line = len(log.path.read_text(encoding="utf-8").splitlines())
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "import_log": str(log.path)}
    first = run_tap(config, sandbox=sandbox)
    assert isinstance(first.error, JobsFailedError)
    assert f"{log.path}:{broken_line}" in str(first.error)
    assert sorted(job["mode"] for job in first.jobs) == ["async", "rejected", "sync"]
    # The line is not claimed: the next run reports it again, and emits nothing twice.
    second = run_tap(config, first.state, sandbox=sandbox)
    assert isinstance(second.error, JobsFailedError)
    assert f"{log.path}:{broken_line}" in str(second.error)
    assert [job["mode"] for job in second.jobs] == ["async"]
    assert second.results == []
