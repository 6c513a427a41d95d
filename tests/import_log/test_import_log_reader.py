"""Reading the import log: what each line becomes, and each import emitted once across runs."""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from helpers.log_reading import Batch, read_log
from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.import_log import files
from tap_prism_imports.import_log.keys import read_input_keys
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.records.import_results import iter_result_records

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

TEAM = "5eed0d3e-0000-4000-8000-000000000001"
OTHER_TEAM = "0f0f0f0f-0000-4000-8000-000000000002"
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
FETCHED_AT = "2026-11-21T12:00:00.000000+00:00"
UTC = datetime.timezone.utc


def record_id(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def sync_response(rows: int = 3, *, first_failed: bool = False) -> dict[str, Any]:
    results: list[dict[str, Any]] = [
        {"id": record_id(i), "created": True, "existing": False, "error": None} for i in range(rows)
    ]
    if first_failed and results:
        results[0] = {
            "id": None,
            "created": False,
            "existing": False,
            "error": {"code": "validation_error", "message": "email is invalid"},
        }
    failed = 1 if first_failed else 0
    return {
        "job_id": None,
        "status": "complete",
        "total": rows,
        "processed": rows,
        "succeeded": rows - failed,
        "failed": failed,
        "created_at": "2026-11-21T10:00:00.000Z",
        "updated_at": "2026-11-21T10:00:00.250Z",
        "results": results,
    }


def async_response(job_id: str, rows: int = 500) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": "processing",
        "total": rows,
        "processed": 0,
        "created_at": "2026-11-21T10:00:00.000Z",
    }


def entry(
    status: int = 200,
    response: dict[str, Any] | None = None,
    *,
    submitted_at: str = "2026-11-21T10:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    if response is None:
        response = sync_response() if status == 200 else {"message": "objects must be an array"}
    line: dict[str, Any] = {
        "v": 1,
        "team_id": TEAM,
        "object_type": "contact",
        "submitted_at": submitted_at,
        "http_status": status,
        "location": None,
        "idempotency_key": None,
        "response": response,
    }
    line.update(fields)
    return line


def async_entry(job_id: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("location", f"/v2/prism/{TEAM}/imports/{job_id}")
    return entry(202, async_response(job_id), **fields)


def append(path: Path, *entries: dict[str, Any] | bytes) -> None:
    with path.open("ab") as file:
        for item in entries:
            file.write(item if isinstance(item, bytes) else orjson.dumps(item) + b"\n")


class Runs:
    """Successive tap runs over one state, stored as JSON between runs as the SDK would."""

    def __init__(self) -> None:
        self.state_json = "{}"
        self.batches: list[Batch] = []

    def read(self, spec: str | Path, now: datetime.datetime = NOW) -> tuple[Batch, dict[str, Any]]:
        state = json.loads(self.state_json)
        batch = read_log(spec, state, now)
        self.batches.append(batch)
        return batch, state

    def save(self, state: dict[str, Any]) -> None:
        self.state_json = json.dumps(state)

    def run(self, spec: str | Path, now: datetime.datetime = NOW) -> Batch:
        """Read, emit and confirm everything, then store the state."""
        batch, state = self.read(spec, now)
        for ref in batch.refs:
            batch.confirm(ref)
        for logged in batch.imports:
            batch.confirm(logged)
        self.save(state)
        return batch


@pytest.fixture
def runs() -> Iterator[Runs]:
    made = Runs()
    yield made
    for batch in made.batches:
        batch.close()


def ids(batch: Batch) -> list[str]:
    return [item.job_id for item in batch.imports] + [ref.ref.key for ref in batch.refs]


def results_of(batch: Batch, index: int = 0) -> list[dict[str, Any]]:
    spool = batch.imports[index].results
    assert spool is not None
    return list(iter_result_records(spool))


# --- what each line becomes ----------------------------------------------------------


def test_sync_line_becomes_a_job_record_and_keyed_results(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(200, sync_response(3, first_failed=True), input_keys=["a", None, "c"]))
    batch, _ = runs.read(log)
    assert batch.errors == []
    assert batch.warnings == []
    assert batch.refs == []
    (logged,) = batch.imports
    assert logged.mode == "sync"
    assert logged.where == f"{log}:1"
    assert logged.job_id.startswith("sync-")
    assert logged.record == {
        "team_id": TEAM,
        "job_id": logged.job_id,
        "status": "complete",
        "total": 3,
        "processed": 3,
        "succeeded": 2,
        "failed": 1,
        "error_code": None,
        "error_message": None,
        "created_at": "2026-11-21T10:00:00.000000+00:00",
        "updated_at": "2026-11-21T10:00:00.250000+00:00",
        "expires_at": None,
        "results_count": 3,
        "fetched_at": FETCHED_AT,
        "mode": "sync",
        "object_type": "contact",
        "submitted_at": "2026-11-21T10:00:00.000000+00:00",
    }
    first, second, third = results_of(batch)
    assert first == {
        "team_id": TEAM,
        "job_id": logged.job_id,
        "row_index": 0,
        "record_id": None,
        "outcome": "failed",
        "created": False,
        "existing": False,
        "error_code": "validation_error",
        "error_message": "email is invalid",
        "fetched_at": FETCHED_AT,
        "source_key": "a",
    }
    assert (second["source_key"], second["record_id"], second["outcome"]) == (
        None,
        record_id(1),
        "created",
    )
    assert third["source_key"] == "c"
    assert logged.results is not None
    assert logged.results.outcomes == {"failed": 1, "created": 2}


def test_sync_results_without_input_keys_have_an_empty_source_key(tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry())
    batch = read_log(log, {}, NOW)
    assert [row["source_key"] for row in results_of(batch)] == [None, None, None]
    batch.close()
    assert batch.imports[0].results is None


def test_input_keys_that_do_not_match_the_results_are_left_out_with_a_warning(
    runs: Runs,
    tmp_path: Path,
) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(input_keys=["a", "b"]))
    batch, _ = runs.read(log)
    (logged,) = batch.imports
    (warning,) = logged.warnings
    assert logged.job_id in warning
    assert f"{log}:1" in warning
    assert "2 input_keys for 3 results" in warning
    assert [row["source_key"] for row in results_of(batch)] == [None, None, None]


def test_async_line_becomes_a_ref_with_where_its_keys_are(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        entry(),
        async_entry("job_1", input_keys=[f"k{i}" for i in range(500)], object_type="deal"),
        # Without a Location, the job id of the response names the job.
        async_entry("job_2", location=None, rows=500),
    )
    batch, _ = runs.read(log)
    assert batch.errors == []
    first, second = batch.refs
    assert first.ref == JobRef(TEAM, "job_1")
    assert first.object_type == "deal"
    assert first.submitted_at == "2026-11-21T10:00:00.000000+00:00"
    assert first.where == f"{log}:2"
    assert first.input_keys_at is not None
    assert first.input_keys_at.path == str(log)
    assert first.input_keys_at.line == 2
    # Only the place goes to state, never the keys.
    stored = first.input_keys_at.to_state()
    assert set(stored) == {"path", "line", "offset"}
    lookup = read_input_keys(json.loads(json.dumps(stored)), first.ref)
    assert lookup.warning is None
    assert lookup.keys == [f"k{i}" for i in range(500)]

    assert second.ref == JobRef(TEAM, "job_2")
    assert second.input_keys_at is None


def test_keys_of_a_line_that_is_gone_are_none_with_a_warning_naming_the_job(
    runs: Runs,
    tmp_path: Path,
) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, async_entry("job_1", input_keys=["a"]))
    batch, _ = runs.read(log)
    where = batch.refs[0].input_keys_at
    assert where is not None
    ref = JobRef(TEAM, "job_1")

    log.write_bytes(b"")  # rotated away
    append(log, async_entry("job_9", input_keys=["z"]))
    lookup = read_input_keys(where, ref)
    assert lookup.keys is None
    assert lookup.warning is not None
    assert f"job {ref.key}" in lookup.warning
    assert f"{log}:1" in lookup.warning

    log.write_bytes(b"")
    assert read_input_keys(where, ref).keys is None
    log.unlink()
    gone = read_input_keys(where, ref)
    assert gone.keys is None
    assert gone.warning is not None
    assert "cannot be read" in gone.warning


def test_async_lines_older_than_seven_days_are_skipped_with_one_warning(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        async_entry("old_1", submitted_at="2026-11-14T11:59:59Z"),
        async_entry("old_2", submitted_at="2026-11-01T00:00:00Z"),
        async_entry("fresh", submitted_at="2026-11-14T12:00:01Z"),
        # A sync import carries its results: old or not, it is emitted.
        entry(submitted_at="2026-11-01T00:00:00Z"),
    )
    batch = runs.run(log)
    assert [ref.ref.job_id for ref in batch.refs] == ["fresh"]
    assert len(batch.imports) == 1
    assert batch.warnings == [
        (
            "2 async import(s) in the import log were submitted more than 7 days ago and are "
            "skipped: the API no longer keeps their jobs."
        )
    ]
    # They were dealt with: the next run does not warn again.
    assert runs.run(log).warnings == []


def test_rejected_lines_become_failed_jobs_without_results(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    long_body = "<html>" + "x" * 2000
    append(
        log,
        entry(400, {"message": "objects must be a non-empty array"}, rows=0),
        entry(
            409,
            {"message": "Idempotency-Key was already used", "code": "idempotency_key_mismatch"},
            input_keys=["a", "b"],
            idempotency_key="k-1",
        ),
        entry(502, {"body": long_body}),
        entry(500, {"error": "boom"}, rows=7),
    )
    batch, _ = runs.read(log)
    assert batch.errors == []
    bad, conflict, gateway, server = batch.imports
    assert bad.mode == "rejected"
    assert bad.results is None
    assert bad.job_id.startswith("rejected-")
    assert bad.record == {
        "team_id": TEAM,
        "job_id": bad.job_id,
        "status": "failed",
        "total": 0,
        "processed": None,
        "succeeded": None,
        "failed": None,
        "error_code": "http_400",
        "error_message": "objects must be a non-empty array",
        "created_at": None,
        "updated_at": None,
        "expires_at": None,
        "results_count": None,
        "fetched_at": FETCHED_AT,
        "mode": "rejected",
        "object_type": "contact",
        "submitted_at": "2026-11-21T10:00:00.000000+00:00",
    }
    assert (conflict.record["error_code"], conflict.record["total"]) == ("http_409", 2)
    assert conflict.record["error_message"] == "Idempotency-Key was already used"
    assert gateway.record["total"] == 0
    assert gateway.record["error_message"] == long_body[:1000]
    assert server.record["error_message"] == '{"error":"boom"}'
    assert server.record["total"] == 7


# --- ids ---------------------------------------------------------------------------


def test_ids_depend_on_the_import_not_on_the_file_or_line(runs: Runs, tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = [entry(idempotency_key="k-1"), entry(500, submitted_at="2026-11-21T10:05:00Z")]
    append(first, *lines)
    append(second, entry(200, sync_response(1)), *reversed(lines))
    from_first, _ = runs.read(first)
    from_second, _ = runs.read(second)  # the same empty state: read, never confirmed
    assert ids(from_second)[1:] == list(reversed(ids(from_first)))
    assert len(set(ids(from_second))) == 3


def test_replays_of_one_idempotent_import_are_one_import_first_line_wins(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        entry(idempotency_key="k-1", submitted_at="2026-11-21T10:00:00Z", input_keys=["a"] * 3),
        entry(idempotency_key="k-1", submitted_at="2026-11-21T10:30:00Z"),
        async_entry("job_1", idempotency_key="k-2", submitted_at="2026-11-21T09:00:00Z"),
        async_entry("job_1", idempotency_key="k-2", submitted_at="2026-11-21T09:10:00Z"),
        # The same key on another team is another import.
        entry(idempotency_key="k-1", team_id=OTHER_TEAM),
    )
    batch, _ = runs.read(log)
    sync, other_team = batch.imports
    assert sync.record["submitted_at"] == "2026-11-21T10:00:00.000000+00:00"
    assert sync.where == f"{log}:1"
    assert [row["source_key"] for row in results_of(batch)] == ["a", "a", "a"]
    assert other_team.record["team_id"] == OTHER_TEAM
    assert other_team.job_id != sync.job_id
    (ref,) = batch.refs
    assert ref.submitted_at == "2026-11-21T09:00:00.000000+00:00"


def test_without_a_key_identical_responses_at_different_times_are_two_imports(
    runs: Runs,
    tmp_path: Path,
) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        entry(submitted_at="2026-11-21T10:00:00Z"),
        entry(submitted_at="2026-11-21T11:00:00Z"),
        # The same line twice (a copied log) is one import.
        entry(submitted_at="2026-11-21T11:00:00Z"),
    )
    batch, _ = runs.read(log)
    assert len(batch.imports) == 2


def test_rejections_never_merge_with_each_other_or_with_an_import(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    conflict = {"message": "Idempotency-Key was already used with a different request body"}
    append(
        log,
        entry(idempotency_key="k-1"),
        entry(409, conflict, idempotency_key="k-1", submitted_at="2026-11-21T10:01:00Z"),
        entry(409, conflict, idempotency_key="k-1", submitted_at="2026-11-21T10:02:00Z"),
    )
    batch, _ = runs.read(log)
    assert [item.mode for item in batch.imports] == ["sync", "rejected", "rejected"]
    assert len(set(ids(batch))) == 3


# --- sources -----------------------------------------------------------------------


def test_a_path_that_does_not_exist_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigValidationError) as raised:
        read_log(missing, {}, NOW)
    assert "`import_log`" in str(raised.value)
    assert str(missing) in str(raised.value)


def test_a_directory_is_a_configuration_error_suggesting_a_glob(tmp_path: Path) -> None:
    with pytest.raises(ConfigValidationError, match=r"\*\.jsonl"):
        read_log(tmp_path, {}, NOW)


def test_a_glob_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    spec = f"{tmp_path}/*.jsonl"
    batch = read_log(spec, {}, NOW)
    assert batch.imports == []
    assert batch.warnings == [f"`import_log` {spec!r} matches no file: no imports read from it."]


def test_a_glob_reads_every_matching_file_in_name_order(runs: Runs, tmp_path: Path) -> None:
    append(tmp_path / "b.jsonl", entry(500))
    append(tmp_path / "a.jsonl", entry())
    append(tmp_path / "ignored.txt", entry(400))
    batch, _ = runs.read(f"{tmp_path}/*.jsonl")
    assert [item.where for item in batch.imports] == [
        f"{tmp_path / 'a.jsonl'}:1",
        f"{tmp_path / 'b.jsonl'}:1",
    ]


def test_unknown_state_format_is_refused(tmp_path: Path) -> None:
    append(tmp_path / "a.jsonl", entry())
    with pytest.raises(ConfigValidationError, match=r"import_log\.format 3"):
        read_log(tmp_path / "a.jsonl", {"format": 3}, NOW)


# --- malformed lines -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (orjson.dumps(entry(v=2)) + b"\n", "v is 2"),
        (orjson.dumps(entry(team_id="team-1")) + b"\n", "team_id 'team-1' is not a UUID"),
        (orjson.dumps(entry(http_status=None)) + b"\n", "http_status is missing"),
        (orjson.dumps(entry(http_status=99)) + b"\n", "http_status is 99"),
        (orjson.dumps(entry(submitted_at="yesterday")) + b"\n", "submitted_at 'yesterday'"),
        (orjson.dumps(entry(object_type=None)) + b"\n", "object_type None"),
        (orjson.dumps({**entry(), "response": [1]}) + b"\n", "response is not"),
    ],
)
def test_a_malformed_line_is_an_error_naming_path_and_line_and_the_rest_is_read(
    runs: Runs, tmp_path: Path, line: bytes, message: str
) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(500), line, entry(), async_entry("job_1"))
    batch = runs.run(log)
    (error,) = batch.errors
    assert error.startswith(f"{log}:2: ")
    assert message in error
    assert [item.mode for item in batch.imports] == ["rejected", "sync"]
    assert [ref.ref.job_id for ref in batch.refs] == ["job_1"]

    # The line is not claimed: the next run reports it again, and emits nothing twice.
    again = runs.run(log)
    assert again.errors == [error]
    assert ids(again) == []


def test_a_fixed_line_is_emitted_on_the_next_run(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(500), entry(v=2))
    assert len(runs.run(log).errors) == 1
    first = runs.batches[-1].imports[0].job_id
    log.write_bytes(b"")
    append(log, entry(500), entry())
    batch = runs.run(log)
    assert batch.errors == []
    # Rewritten, so read again from its start: the rejection comes again under its own
    # id (an upsert of the same row), and the fixed line loads.
    assert [item.mode for item in batch.imports] == ["rejected", "sync"]
    assert batch.imports[0].job_id == first


# --- exactly once across runs --------------------------------------------------------


def test_each_import_is_emitted_once_while_the_log_grows(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(), async_entry("job_1"))
    assert len(ids(runs.run(log))) == 2
    assert ids(runs.run(log)) == []
    append(log, entry(500), async_entry("job_2"))
    batch = runs.run(log)
    assert [item.mode for item in batch.imports] == ["rejected"]
    assert [ref.ref.job_id for ref in batch.refs] == ["job_2"]
    assert batch.imports[0].where == f"{log}:3"
    assert ids(runs.run(log)) == []


def test_a_final_line_without_its_newline_is_left_for_the_next_run(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    whole = orjson.dumps(entry(500)) + b"\n"
    append(log, entry(), whole[:40])
    batch = runs.run(log)
    assert batch.errors == []
    assert [item.mode for item in batch.imports] == ["sync"]
    append(log, whole[40:])
    batch = runs.run(log)
    assert [item.mode for item in batch.imports] == ["rejected"]
    assert batch.imports[0].where == f"{log}:2"


def test_a_run_killed_part_way_emits_the_rest_next_time(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        entry(submitted_at="2026-11-21T10:00:00Z"),
        entry(submitted_at="2026-11-21T10:01:00Z"),
        async_entry("job_1"),
        entry(500),
    )
    batch, state = runs.read(log)
    first, second, third = batch.imports
    batch.confirm(first)
    batch.confirm(third)  # emitted out of order: the offset still waits for `second`
    runs.save(state)  # the last STATE before the kill
    batch.close()

    # Everything after the first unconfirmed line comes again (upserts of the same rows).
    batch = runs.run(log)
    assert ids(batch) == [
        second.job_id,
        third.job_id,
        "5eed0d3e-0000-4000-8000-000000000001/job_1",
    ]
    assert ids(runs.run(log)) == []


def test_state_only_holds_what_was_confirmed(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(idempotency_key="k-1"))
    batch, state = runs.read(log)
    assert state["recent"] == {}
    assert state["files"][str(log)]["offset"] == 0
    batch.confirm(batch.imports[0])
    submitted = int(datetime.datetime(2026, 11, 21, 10, tzinfo=UTC).timestamp())
    assert state["recent"] == {batch.imports[0].job_id: submitted}
    assert state["files"][str(log)]["offset"] == log.stat().st_size
    assert state["files"][str(log)]["line"] == 1
    assert "input_keys" not in json.dumps(state)


def test_a_rotated_log_is_not_emitted_again(runs: Runs, tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    append(log, entry(), async_entry("job_1"))
    runs.run(f"{tmp_path}/imports.jsonl*")
    # A line lands just before rotation, then the file is renamed and a new one begun.
    append(log, entry(500))
    log.rename(tmp_path / "imports.jsonl.1")
    append(log, entry(400, submitted_at="2026-11-21T11:00:00Z"))
    batch = runs.run(f"{tmp_path}/imports.jsonl*")
    assert sorted(item.record["error_code"] for item in batch.imports) == ["http_400", "http_500"]
    assert ids(runs.run(f"{tmp_path}/imports.jsonl*")) == []


def test_a_truncated_or_replaced_file_is_read_again_from_its_start(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    kept = entry(submitted_at="2026-11-21T09:00:00Z")
    append(log, entry(500), kept, async_entry("job_1"))
    first = runs.run(log)

    log.write_bytes(b"")  # truncated (copytruncate)
    assert ids(runs.run(log)) == []
    append(log, entry(404))
    assert [item.record["error_code"] for item in runs.run(log).imports] == ["http_404"]

    # Replaced by a file holding some of the same lines: all are read again, the
    # repeated ones under the same ids (upserts), each job handed over once.
    replacement = tmp_path / "new.jsonl"
    append(replacement, kept, async_entry("job_1"), async_entry("job_2"), entry(404), entry(503))
    replacement.replace(log)
    batch = runs.run(log)
    assert [item.record["error_code"] for item in batch.imports] == [None, "http_404", "http_503"]
    assert batch.imports[0].job_id == first.imports[1].job_id
    assert [ref.ref.job_id for ref in batch.refs] == ["job_1", "job_2"]


def test_a_rewrite_of_the_same_size_with_the_same_start_and_end_is_noticed(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    first = entry(submitted_at="2026-11-21T09:00:00Z")
    last = entry(503, submitted_at="2026-11-21T09:30:00Z")
    append(log, first, entry(500, {"message": "A" * 3000}), last)
    runs.run(log)
    data = log.read_bytes()
    # Same size, same first and last KiB: only the middle line's text differs.
    log.write_bytes(data.replace(b"A" * 3000, b"B" * 3000))
    batch = runs.run(log)
    assert [item.record["error_message"] for item in batch.imports][1] == "B" * 3000


def test_a_rotated_copy_carries_on_where_the_file_stopped(runs: Runs, tmp_path: Path) -> None:
    """logrotate's copytruncate: the copy has the old prefix, the original starts over."""
    log = tmp_path / "imports.jsonl"
    append(log, entry(), async_entry("job_1"))
    runs.run(f"{tmp_path}/imports.jsonl*")
    append(log, entry(500))  # after the run, before the rotation
    (tmp_path / "imports.jsonl.1").write_bytes(log.read_bytes())
    log.write_bytes(b"")
    append(log, entry(502))
    batch = runs.run(f"{tmp_path}/imports.jsonl*")
    assert sorted(item.record["error_code"] for item in batch.imports) == ["http_500", "http_502"]
    assert batch.refs == []


def test_keyed_replays_in_another_file_within_a_day_are_not_emitted_again(
    runs: Runs, tmp_path: Path
) -> None:
    first = tmp_path / "a.jsonl"
    append(first, entry(idempotency_key="k-1", submitted_at="2026-11-21T10:00:00Z"))
    assert len(runs.run(f"{tmp_path}/*.jsonl").imports) == 1
    later = tmp_path / "b.jsonl"
    append(later, entry(idempotency_key="k-1", submitted_at="2026-11-21T20:00:00Z"))
    assert ids(runs.run(f"{tmp_path}/*.jsonl", NOW + datetime.timedelta(hours=10))) == []


def test_state_keeps_a_days_keyed_imports_and_the_files_it_names(
    runs: Runs, tmp_path: Path
) -> None:
    log = tmp_path / "imports.jsonl"
    append(
        log,
        entry(idempotency_key="k-1", submitted_at="2026-11-21T10:00:00Z"),
        entry(submitted_at="2026-11-21T10:00:00Z"),  # no key: nothing to remember
        entry(500),
        async_entry("job_1"),
    )
    batch = runs.run(log)
    _, state = runs.read(log)
    assert list(state["recent"]) == [batch.imports[0].job_id]

    # A day and more later the API replays the key no more: forgotten.
    _, state = runs.read(log, NOW + datetime.timedelta(hours=26))
    assert state["recent"] == {}
    # A file no longer named is forgotten too.
    log.unlink()
    other = tmp_path / "next.jsonl"
    append(other, entry(500, submitted_at="2026-11-29T10:00:00Z"))
    runs.run(other)
    _, state = runs.read(other)
    assert list(state["files"]) == [str(other)]


@pytest.mark.parametrize("block_bytes", [7, 64, 1 << 20])
def test_the_lines_that_match_are_found_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int
) -> None:
    monkeypatch.setattr(files, "READ_BLOCK_BYTES", block_bytes)
    lines = [
        b'{"http_status":200}\n',
        b'{"http_status":202, "again": "\\"http_status\\": 202"}\n',
        b"\n",
        b'{"x": 1, "http_status": 202}\n',
        b'{"http_status":2020}\n',
        b'{"http_status":202}',  # still being written
    ]
    path = tmp_path / "imports.jsonl"
    path.write_bytes(b"".join(lines))
    pattern = re.compile(rb'"http_status": ?202')
    with path.open("rb") as file:
        found = list(files.lines_containing(file, 0, pattern, None))
    assert found == [lines[1], lines[3], lines[4]]
    with path.open("rb") as file:
        past_the_first_two = list(
            files.lines_containing(file, len(lines[0] + lines[1]), pattern, None)
        )
    assert past_the_first_two == [lines[3], lines[4]]
