"""Imports made with the official SDK, logged by the writer, read back by the reader."""

from __future__ import annotations

import datetime
import io
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tap_prism_imports.import_log import ImportLog
from tap_prism_imports.import_log_reader import (
    attach_source_keys,
    read_import_log,
    read_input_keys,
)
from tap_prism_imports.snapshots import iter_result_records, parse_snapshot, utc_now

if TYPE_CHECKING:
    from pathlib import Path

    from tap_prism_imports.sandbox import Sandbox

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
    with read_import_log(str(log.path), now=utc_now(), state=state) as batch:
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
        assert ref.rows == 120
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
    keyed, warning = attach_source_keys(
        snapshot.results, lookup.keys, import_name=f"job {ref.ref.key}"
    )
    assert warning is None
    assert [row["source_key"] for row in iter_result_records(keyed)] == ASYNC_KEYS
    keyed.close()

    with read_import_log(str(log.path), now=utc_now(), state=state) as again:
        assert again.imports == []
        assert again.refs == []
