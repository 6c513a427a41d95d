"""Reading a snapshot body: fields, results flattened to records, and bodies that are not usable."""

from __future__ import annotations

import datetime
import io
import json
import typing as t

import ijson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.records.import_results import iter_result_records
from tap_prism_imports.snapshots import parse_snapshot

REF = JobRef("1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c", "job_1")
FETCHED = datetime.datetime(2026, 11, 20, 10, 5, tzinfo=datetime.timezone.utc)
FETCHED_TEXT = "2026-11-20T10:05:00.000000+00:00"


def parse(body: t.Any) -> t.Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_snapshot(io.BytesIO(raw), REF, FETCHED)


def results_of(body: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    snapshot = parse(body)
    assert snapshot.results is not None
    records = list(iter_result_records(snapshot.results))
    snapshot.close()
    return records


def test_fields_after_the_results_array_are_read() -> None:
    # The API's own example puts results between processed and succeeded.
    body = (
        b'{"job_id":"job_1","status":"complete","total":2,"processed":2,'
        b'"results":[{"id":"182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e","created":true,'
        b'"existing":false,"error":null},{"id":null,"created":false,"existing":false,'
        b'"error":{"code":"validation_error","message":"email is invalid"}}],'
        b'"succeeded":1,"failed":1,"created_at":"2026-11-20T10:00:00.000Z",'
        b'"updated_at":"2026-11-20T12:02:13.512+02:00","expires_at":"2026-11-27T10:00:00Z",'
        b'"brand_new_field":{"nested":[1,2,3]}}'
    )
    snapshot = parse(body)
    assert snapshot.record == {
        "team_id": REF.team_id,
        "job_id": "job_1",
        "status": "complete",
        "total": 2,
        "processed": 2,
        "succeeded": 1,
        "failed": 1,
        "error_code": None,
        "error_message": None,
        "created_at": "2026-11-20T10:00:00.000000+00:00",
        "updated_at": "2026-11-20T10:02:13.512000+00:00",
        "expires_at": "2026-11-27T10:00:00.000000+00:00",
        "results_count": 2,
        "fetched_at": FETCHED_TEXT,
        "mode": "async",
        "object_type": None,
        "submitted_at": None,
    }
    assert snapshot.results is not None
    assert list(iter_result_records(snapshot.results)) == [
        {
            "team_id": REF.team_id,
            "job_id": "job_1",
            "row_index": 0,
            "record_id": "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e",
            "outcome": "created",
            "created": True,
            "existing": False,
            "error_code": None,
            "error_message": None,
            "fetched_at": FETCHED_TEXT,
            "source_key": None,
        },
        {
            "team_id": REF.team_id,
            "job_id": "job_1",
            "row_index": 1,
            "record_id": None,
            "outcome": "failed",
            "created": False,
            "existing": False,
            "error_code": "validation_error",
            "error_message": "email is invalid",
            "fetched_at": FETCHED_TEXT,
            "source_key": None,
        },
    ]
    snapshot.close()


def test_job_level_error_and_absent_optional_fields() -> None:
    snapshot = parse(
        {"status": "failed", "total": 10, "error": {"code": "quota", "message": "over quota"}}
    )
    assert snapshot.record["error_code"] == "quota"
    assert snapshot.record["error_message"] == "over quota"
    assert snapshot.record["processed"] is None
    assert snapshot.record["created_at"] is None
    assert snapshot.record["results_count"] is None
    assert snapshot.results is None


def test_results_of_a_processing_job_are_not_emitted() -> None:
    snapshot = parse({"status": "processing", "total": 2, "results": [{"id": None}]})
    assert snapshot.results is None
    assert snapshot.record["results_count"] is None


def test_unparsable_date_time_becomes_null_with_a_warning() -> None:
    snapshot = parse({"status": "complete", "total": 0, "created_at": "last tuesday"})
    assert snapshot.record["created_at"] is None
    assert any("created_at" in warning for warning in snapshot.warnings)


def test_naive_date_time_is_taken_as_utc() -> None:
    snapshot = parse({"status": "complete", "total": 0, "updated_at": "2026-11-20T10:00:00"})
    assert snapshot.record["updated_at"] == "2026-11-20T10:00:00.000000+00:00"


def test_row_matched_by_dedupe_key_is_existing() -> None:
    body = {"status": "complete", "total": 1, "results": [{"id": "a", "existing": True}]}
    assert results_of(body)[0]["outcome"] == "existing"


def test_row_with_neither_flag_nor_error_has_no_outcome() -> None:
    body = {"status": "complete", "total": 1, "results": [{"id": "a"}]}
    row = results_of(body)[0]
    assert row["outcome"] is None
    assert row["created"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"status": "queued", "total": 1}, "status is 'queued'"),
        ({"total": 1}, "status is missing"),
        ({"status": "complete"}, "total is missing"),
        ({"status": "complete", "total": "many"}, "not a whole number"),
        ({"status": "complete", "total": 1.5}, "not a whole number"),
        ({"status": "complete", "total": True}, "not a whole number"),
        ({"status": "complete", "total": 1, "results": "unavailable"}, "results is not a list"),
        ({"status": "complete", "total": 1, "results": {"0": {}}}, "results is not a list"),
        ({"status": "complete", "total": 1, "results": [1]}, "results[0] is not an object"),
        ([{"status": "complete"}], "not a JSON object"),
        ("complete", "not a JSON object"),
    ],
)
def test_unusable_bodies_are_refused_with_the_reason(body: t.Any, reason: str) -> None:
    with pytest.raises(InvalidSnapshotError) as caught:
        parse(body)
    assert reason in str(caught.value)


@pytest.mark.parametrize("body", [b'{"status": "complete", "total": 1', b"<html>oops</html>"])
def test_malformed_json_raises_the_parser_error(body: bytes) -> None:
    with pytest.raises(ijson.JSONError):
        parse(body)


def warehouse_text(max_size: int) -> st.SearchStrategy[str]:
    """Text a warehouse can store, so it passes through unchanged (NUL is removed)."""
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=max_size)


result_elements = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.none(), st.uuids().map(str)),
        "created": st.one_of(st.none(), st.booleans()),
        "existing": st.one_of(st.none(), st.booleans()),
        "error": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "code": warehouse_text(max_size=20),
                    "message": warehouse_text(max_size=50),
                },
            ),
        ),
        "unexpected": st.recursive(
            st.one_of(st.none(), st.integers(), st.text(max_size=5)),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=5,
        ),
    },
)


@given(elements=st.lists(result_elements, max_size=30))
def test_results_flatten_to_one_record_per_element_in_order(
    elements: list[dict[str, t.Any]],
) -> None:
    body = {"status": "complete", "total": len(elements), "results": elements}
    records = results_of(body)
    assert [r["row_index"] for r in records] == list(range(len(elements)))
    for record, element in zip(records, elements, strict=True):
        error = element.get("error")
        assert record["record_id"] == element.get("id")
        assert record["created"] == element.get("created")
        assert record["existing"] == element.get("existing")
        assert record["error_code"] == (error or {}).get("code")
        assert record["error_message"] == (error or {}).get("message")
        if error is not None:
            expected = "failed"
        elif element.get("created") is True:
            expected = "created"
        elif element.get("existing") is True:
            expected = "existing"
        else:
            expected = None
        assert record["outcome"] == expected
        assert record["fetched_at"] == FETCHED_TEXT


def test_every_record_shape_validates_against_the_stream_schemas() -> None:
    """Targets validate records: a null outcome or job counter must pass the schema."""
    from jsonschema import Draft7Validator, FormatChecker  # noqa: PLC0415

    from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream  # noqa: PLC0415

    body = {
        "status": "complete",
        "total": 3,
        "results": [
            {"id": "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"},
            {"id": None, "error": {"code": "x", "message": "y"}, "created": False},
            {"id": "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26f", "existing": True, "created": False},
        ],
    }
    snapshot = parse(body)
    assert snapshot.results is not None
    jobs = Draft7Validator(ImportJobsStream.schema, format_checker=FormatChecker())
    rows = Draft7Validator(ImportResultsStream.schema, format_checker=FormatChecker())
    jobs.validate(snapshot.record)
    records = list(iter_result_records(snapshot.results))
    snapshot.close()
    assert [r["outcome"] for r in records] == [None, "failed", "existing"]
    for record in records:
        rows.validate(record)
