"""Values the schema cannot hold are never emitted as the API sent them, and each kind warns.

A warehouse rejects a whole batch over one bad value (a non-UUID in a uuid column, a NUL in
text, a count past bigint), so the parser makes every value fit its declared type and says,
once per job, what it changed.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import subprocess
import sys
import typing as t

import orjson
import pytest
from helpers.hostile_bodies import ChunkedBody, snapshot_bodies
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.records.import_results import SPOOL_BLOCK_ROWS
from tap_prism_imports.snapshots import JobSnapshot, parse_snapshot
from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream

REF = JobRef("1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c", "job_1")
FETCHED = datetime.datetime(2026, 11, 20, 10, 5, tzinfo=datetime.timezone.utc)
RECORD_ID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
MAX_COUNT = 2**63 - 1

RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; this is the same rule.
    if not isinstance(value, str):
        return True
    if not RFC3339.fullmatch(value):
        return False
    datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


JOBS_SCHEMA = Draft202012Validator(ImportJobsStream.schema, format_checker=FORMATS)
RESULTS_SCHEMA = Draft202012Validator(ImportResultsStream.schema, format_checker=FORMATS)


def parse(body: bytes | dict[str, t.Any], chunk: int | None = None) -> JobSnapshot:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stream: t.BinaryIO = (
        io.BytesIO(raw) if chunk is None else t.cast("t.BinaryIO", ChunkedBody(raw, chunk))
    )
    return parse_snapshot(stream, REF, FETCHED)


def result_lines(snapshot: JobSnapshot) -> list[bytes]:
    assert snapshot.results is not None
    return list(snapshot.results.lines())


def rows_of(snapshot: JobSnapshot) -> list[dict[str, t.Any]]:
    rows = [json.loads(line) for line in result_lines(snapshot)]
    snapshot.close()
    return rows


def complete(results: str, **fields: t.Any) -> bytes:
    """A complete job's body with ``results`` as raw JSON text (escapes kept as written)."""
    head = json.dumps({"status": "complete", "total": 1, **fields})[:-1]
    return f'{head}, "results": {results}}}'.encode()


def warnings_about(snapshot: JobSnapshot, word: str) -> list[str]:
    return [warning for warning in snapshot.warnings if word in warning]


# --- record ids --------------------------------------------------------------------


def test_a_record_id_that_is_no_uuid_becomes_null_with_one_warning_counting_the_rows() -> None:
    elements = [
        {"id": "rec_1", "created": True},
        {"id": RECORD_ID, "created": True},
        {"id": "", "created": True},
        {"id": RECORD_ID.upper(), "existing": True},
        {"id": RECORD_ID + "0"},
    ]
    snapshot = parse({"status": "complete", "total": 5, "results": elements})
    uuid_warnings = warnings_about(snapshot, "UUID")
    rows = rows_of(snapshot)

    assert [row["record_id"] for row in rows] == [None, RECORD_ID, None, RECORD_ID.upper(), None]
    # The row itself is kept: only the value that cannot be stored is dropped.
    assert [row["outcome"] for row in rows] == ["created", "created", "created", "existing", None]
    assert uuid_warnings == [
        "3 results have an id that is not a UUID; their record_id is emitted as null"
    ]


def test_ids_one_character_short_and_long_side_by_side_are_not_taken_for_uuids() -> None:
    # Together they are as long as two UUIDs, with dashes where two UUIDs have theirs.
    short = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee"
    long = "aaaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    snapshot = parse({"status": "complete", "total": 2, "results": [{"id": short}, {"id": long}]})
    uuid_warnings = warnings_about(snapshot, "UUID")

    assert [row["record_id"] for row in rows_of(snapshot)] == [None, None]
    assert uuid_warnings == [
        "2 results have an id that is not a UUID; their record_id is emitted as null"
    ]


def test_ids_are_checked_in_whole_blocks_up_to_a_blocks_last_row() -> None:
    # Full spool blocks of UUIDs, one bad id on a block's last row, one block of null ids.
    rows = SPOOL_BLOCK_ROWS * 3
    bad = SPOOL_BLOCK_ROWS * 2 - 1
    elements = [
        {"id": None if i >= bad + 1 else "not-a-uuid" if i == bad else RECORD_ID}
        for i in range(rows)
    ]
    snapshot = parse({"status": "complete", "total": rows, "results": elements})
    ids = [row["record_id"] for row in rows_of(snapshot)]

    assert ids == [RECORD_ID] * bad + [None] * (rows - bad)
    assert warnings_about(snapshot, "UUID") == [
        "1 results have an id that is not a UUID; their record_id is emitted as null"
    ]


def test_wrong_typed_row_fields_become_null_with_one_warning_counting_them() -> None:
    elements = [
        {"id": 42, "created": "true", "existing": 1},
        {"id": {"uuid": RECORD_ID}, "created": [True], "existing": None},
        {"id": RECORD_ID, "created": True, "existing": False},
    ]
    snapshot = parse({"status": "complete", "total": 3, "results": elements})
    type_warnings = warnings_about(snapshot, "wrong type")
    rows = rows_of(snapshot)

    assert [(r["record_id"], r["created"], r["existing"]) for r in rows] == [
        (None, None, None),
        (None, None, None),
        (RECORD_ID, True, False),
    ]
    assert len(type_warnings) == 1
    assert type_warnings[0].startswith("5 result fields have the wrong type")


def test_a_well_formed_body_has_no_warnings() -> None:
    body = {
        "job_id": REF.job_id,
        "status": "complete",
        "total": 2,
        "processed": 2,
        "results": [{"id": RECORD_ID, "created": True}, {"id": None, "error": "bad row"}],
    }
    snapshot = parse(body)
    snapshot.close()
    assert snapshot.warnings == []


# --- NUL characters ----------------------------------------------------------------


def test_nul_is_removed_from_every_text_value_with_one_warning_counting_them() -> None:
    body = {
        "status": "failed",
        "total": 2,
        "error": {"code": "quo\u0000ta", "message": "\u0000over quota"},
        "results": [
            {"id": None, "error": {"code": "bad\u0000", "message": "e\u0000mail\u0000"}},
            {"id": None, "error": "plain \u0000string"},
            {"id": None, "error": {"code": "fine", "message": "a \\u0000 written out"}},
        ],
    }
    snapshot = parse(body)
    record = snapshot.record
    nul_warnings = warnings_about(snapshot, "NUL")
    rows = rows_of(snapshot)

    assert (record["error_code"], record["error_message"]) == ("quota", "over quota")
    assert [(r["error_code"], r["error_message"]) for r in rows] == [
        ("bad", "email"),
        (None, "plain string"),
        ("fine", "a \\u0000 written out"),
    ]
    assert nul_warnings == [
        "5 text values contained NUL characters, removed (warehouses cannot store them)"
    ]


def test_nul_is_removed_in_every_block_of_a_large_job() -> None:
    rows = SPOOL_BLOCK_ROWS * 2 + 10
    elements = [
        {"id": None, "error": {"code": "x", "message": f"row\u0000{i}" if i % 500 == 0 else "ok"}}
        for i in range(rows)
    ]
    snapshot = parse({"status": "complete", "total": rows, "results": elements})
    lines = result_lines(snapshot)
    snapshot.close()

    assert len(lines) == rows
    assert not any(b"\\u0000" in line for line in lines)
    messages = [json.loads(line)["error_message"] for line in lines]
    assert messages[500] == "row500"
    assert messages[501] == "ok"
    assert warnings_about(snapshot, "NUL")[0].startswith(f"{len(range(0, rows, 500))} text values")


# --- lone surrogates ---------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 1, 5, 13])
@pytest.mark.parametrize(
    ("escaped", "expected", "replaced"),
    [
        (r"a\ud800b", "a\ufffdb", 1),
        (r"\udc00", "\ufffd", 1),
        (r"\udc00\ud800", "\ufffd\ufffd", 2),
        (r"\ud800\ud83d\ude00", "\ufffd\U0001f600", 1),
        (r"\ud83d\ude00", "\U0001f600", 0),
        (r"\\ud800", "\\ud800", 0),
        (r"\\\ud800", "\\\ufffd", 1),
        (r"\u00e9\ud800", "\u00e9\ufffd", 1),
    ],
)
def test_unpaired_surrogates_become_the_replacement_character(
    escaped: str, expected: str, replaced: int, chunk: int | None
) -> None:
    results = f'[{{"id": null, "error": {{"code": "c", "message": "{escaped}"}}}}]'
    snapshot = parse(complete(results), chunk=chunk)
    lines = result_lines(snapshot)
    snapshot.close()

    lines[0].decode("utf-8")  # valid UTF-8, whatever came in
    assert json.loads(lines[0])["error_message"] == expected
    surrogate_warnings = warnings_about(snapshot, "surrogate")
    if replaced:
        assert surrogate_warnings == [
            f"{replaced} unpaired UTF-16 surrogate escapes (\\ud800-\\udfff) replaced with U+FFFD"
        ]
    else:
        assert surrogate_warnings == []


def test_a_job_level_message_with_a_lone_surrogate_is_replaced() -> None:
    body = b'{"status": "failed", "total": 1, "error": {"code": "x\\udfff", "message": "\\ud800"}}'
    snapshot = parse(body)
    assert snapshot.record["error_code"] == "x\ufffd"
    assert snapshot.record["error_message"] == "\ufffd"


def test_a_body_that_is_not_utf8_is_refused_with_the_reason() -> None:
    body = b'{"status": "complete", "total": 1, "error": "\xed\xa0\x80"}'
    with pytest.raises(InvalidSnapshotError, match="not UTF-8"):
        parse(body)


# --- counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["-1", str(MAX_COUNT + 1), str(-(2**63) - 1), "1e30", "-0.5", '"12"', "[]"]
)
@pytest.mark.parametrize("name", ["processed", "succeeded", "failed"])
def test_an_optional_count_the_schema_cannot_hold_becomes_null_with_a_warning(
    name: str, value: str
) -> None:
    body = f'{{"status": "processing", "total": 10, "{name}": {value}}}'.encode()
    snapshot = parse(body)
    assert snapshot.record[name] is None
    assert len(warnings_about(snapshot, name)) == 1
    assert "emitted as null" in warnings_about(snapshot, name)[0]


@pytest.mark.parametrize("value", ["-1", str(MAX_COUNT + 1), "1e30", "-1e999999999"])
def test_a_total_the_schema_cannot_hold_makes_the_body_unusable(value: str) -> None:
    body = f'{{"status": "complete", "total": {value}}}'.encode()
    with pytest.raises(InvalidSnapshotError, match=r"total is .*not a count from 0 to"):
        parse(body)


def test_counts_at_the_edges_of_the_range_are_kept() -> None:
    body = {"status": "processing", "total": MAX_COUNT, "processed": 0, "succeeded": 1e3}
    snapshot = parse(body)
    assert (snapshot.record["total"], snapshot.record["processed"]) == (MAX_COUNT, 0)
    assert snapshot.record["succeeded"] == 1000
    assert snapshot.warnings == []


def test_a_number_too_long_for_the_parser_is_refused_not_a_crash() -> None:
    # The C parser crashes the process on an integer past Python's digit limit, so the
    # check runs in a child process: a crash there fails this test instead of the run.
    script = (
        "import datetime, io, sys\n"
        "from tap_prism_imports.job_refs import JobRef\n"
        "from tap_prism_imports.errors import InvalidSnapshotError\n"
        "from tap_prism_imports.snapshots import parse_snapshot\n"
        "now = datetime.datetime.now(datetime.timezone.utc)\n"
        "ref = JobRef('1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c', 'job_1')\n"
        "for chunk_digits in (5000, 70000):\n"
        '    body = b\'{"status": "complete", "total": 1, "processed": \''
        " + b'9' * chunk_digits + b'}'\n"
        "    try:\n"
        "        parse_snapshot(io.BytesIO(body), ref, now)\n"
        "    except InvalidSnapshotError as error:\n"
        "        print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("more than 4300 digits") == 2


def test_digit_runs_in_text_below_the_limit_are_untouched() -> None:
    digits = "7" * 4000
    body = complete(f'[{{"id": null, "error": "{digits}"}}]', processed=int("9" * 18))
    rows = rows_of(parse(body, chunk=999))
    assert rows[0]["error_message"] == digits


# --- what the body says, kept ------------------------------------------------------


def test_a_bare_string_job_error_is_kept_as_the_message() -> None:
    snapshot = parse({"status": "failed", "total": 3, "error": "import worker crashed"})
    assert snapshot.record["error_message"] == "import worker crashed"
    assert snapshot.record["error_code"] is None


def test_a_body_naming_another_job_warns_and_the_ref_stays_the_key() -> None:
    snapshot = parse({"job_id": "job_2", "status": "complete", "total": 0})
    assert snapshot.record["job_id"] == REF.job_id
    assert warnings_about(snapshot, "job_id") == [
        (
            "the body names job_id 'job_2', not the job requested; "
            "its records keep the requested job's id"
        )
    ]


def test_a_date_time_that_leaves_the_calendar_in_utc_becomes_null() -> None:
    snapshot = parse({"status": "complete", "total": 0, "created_at": "0001-01-01T00:00:00+01:00"})
    assert snapshot.record["created_at"] is None
    assert warnings_about(snapshot, "created_at")


# --- properties: whatever the API sends, what is emitted fits the schema ------------


def assert_warehouse_safe(snapshot: JobSnapshot) -> None:
    JOBS_SCHEMA.validate(snapshot.record)
    if snapshot.results is None:
        return
    for line in snapshot.results.lines():
        text = line.decode("utf-8")  # strict: no lone surrogates, no invalid bytes
        assert "\\u0000" not in text.replace("\\\\", "")
        record = json.loads(text)
        RESULTS_SCHEMA.validate(record)
        assert all("\x00" not in value for value in record.values() if isinstance(value, str))


@settings(max_examples=300, deadline=None)
@given(body=snapshot_bodies(), chunk=st.sampled_from([None, 1, 7, 64]))
def test_every_record_emitted_validates_against_the_stream_schemas(
    body: bytes, chunk: int | None
) -> None:
    snapshot = parse(body, chunk=chunk)
    try:
        assert_warehouse_safe(snapshot)
        assert orjson.loads(orjson.dumps(snapshot.record)) == snapshot.record
        for warning in snapshot.warnings:
            warning.encode("utf-8")
    finally:
        snapshot.close()
