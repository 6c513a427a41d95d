"""The fast body reader and the event walker read every body alike.

The fast reader cuts the results array at row boundaries and parses each cut with
orjson; anything it does not vouch for goes to the event walker. Here the walker
alone (the fast reader never finds ``results``) is the oracle: for any body, valid or
not, both give the same records, the same warnings, or the same kind of error.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import re
import typing as t
from decimal import Decimal
from unittest import mock

import ijson
import pytest
from helpers.hostile_bodies import ChunkedBody, result_elements, snapshot_bodies
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_prism_imports import body_reader
from tap_prism_imports.body_reader import ROW_CUT_BYTES
from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.import_log.lines import ImportLogLineError, parse_log_line
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.snapshots import parse_snapshot, snapshot_from_document
from tap_prism_imports.times import format_datetime

if t.TYPE_CHECKING:
    from collections.abc import Iterator

REF = JobRef("1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c", "job_1")
FETCHED = datetime.datetime(2026, 11, 20, 10, 5, tzinfo=datetime.timezone.utc)
UUID = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
Reading = tuple[str, t.Any]


def _read(body: bytes, chunk: int | None) -> Reading:
    """What the parser makes of the body: its records and warnings, or its error's kind."""
    stream = io.BytesIO(body) if chunk is None else ChunkedBody(body, chunk)
    try:
        snapshot = parse_snapshot(t.cast("t.BinaryIO", stream), REF, FETCHED)
    except InvalidSnapshotError as error:
        return ("unusable", str(error))
    except ijson.JSONError as error:
        # Which error yajl found depends on where its input was split; whether the body
        # ended early is what the client acts on.
        return ("not JSON", "premature EOF" in str(error))
    lines = [] if snapshot.results is None else list(snapshot.results.lines())
    snapshot.close()
    return ("read", (snapshot.record, lines, snapshot.warnings))


@contextlib.contextmanager
def _walker_only() -> Iterator[None]:
    with mock.patch.object(body_reader, "_RESULTS_KEY", re.compile(rb"(?!)")):
        yield


def _both(body: bytes, chunk: int | None = None) -> tuple[Reading, Reading]:
    fast = _read(body, chunk)
    with _walker_only():
        walked = _read(body, chunk)
    return fast, walked


def _body(rows: list[str]) -> bytes:
    return _with_results("[" + ",".join(rows) + "]", after=',"succeeded":1')


def _with_results(results: str, *, before: str = "", after: str = "") -> bytes:
    head = '{"job_id":"job_1","status":"complete","total":1,' + before
    return (head + '"results":' + results + after + "}").encode()


def _row(message: str = "email is invalid") -> str:
    return json.dumps({"id": None, "created": False, "error": {"code": "x", "message": message}})


@settings(max_examples=400, deadline=None)
@given(body=snapshot_bodies(), chunk=st.sampled_from([None, 1, 7, 64]))
def test_both_readers_read_any_body_alike(body: bytes, chunk: int | None) -> None:
    fast, walked = _both(body, chunk)
    assert fast == walked


@settings(max_examples=200, deadline=None)
@given(body=snapshot_bodies(), data=st.data())
def test_both_readers_fail_alike_on_a_body_cut_anywhere(body: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    fast, walked = _both(body[:cut])
    assert fast == walked
    assert fast[0] != "read"


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(result_elements(), min_size=1, max_size=6),
    space=st.sampled_from(["", " ", "\n  ", "\t", "\x0c", "\r\n"]),
    chunk=st.sampled_from([None, 1, 3, 64]),
)
def test_both_readers_agree_whatever_the_whitespace_between_rows(
    rows: list[str], space: str, chunk: int | None
) -> None:
    body = _with_results("[" + space + f"{space},{space}".join(rows) + space + "]")
    fast, walked = _both(body, chunk)
    assert fast == walked


@pytest.mark.parametrize(
    "message",
    ["}", "},{", '"}, {"id": 1}', "\\\\}", "] , {", "{}" * 50],
    ids=["brace", "row-boundary", "fake-row", "escaped-backslash", "bracket", "braces"],
)
def test_braces_inside_text_never_cut_a_row(message: str) -> None:
    rows = [_row(message), _row(), _row(message)] * 300
    body = _body(rows)
    fast, walked = _both(body, chunk=64 * 1024)
    assert fast == walked
    assert fast[0] == "read"
    lines = fast[1][1]
    assert [json.loads(line)["error_message"] for line in lines[:3]] == [
        message,
        "email is invalid",
        message,
    ]


def test_a_row_too_long_to_cut_hands_the_rest_to_the_walker_without_losing_a_row() -> None:
    rows = [_row(str(index)) for index in range(2_000)]
    rows[1_000] = _row("x" * (ROW_CUT_BYTES + 10))
    fast, walked = _both(_body(rows))
    assert fast == walked
    lines = fast[1][1]
    assert [json.loads(line)["row_index"] for line in lines] == list(range(2_000))


def test_a_row_orjson_refuses_is_read_by_the_walker() -> None:
    # 1e400 is valid JSON; orjson refuses a number past a double's range.
    rows = [_row(), json.dumps({"id": UUID, "created": True})[:-1] + ', "weight": 1e400}', _row()]
    fast, walked = _both(_body(rows))
    assert fast == walked
    assert len(fast[1][1]) == 3


@pytest.mark.parametrize(
    "before",
    [
        '"note":"\\"results\\":[1]",',
        '"meta":{"results":[{"id":1}]},',
        '"results":null,',
        '"res\\u0075lts_old":[1],',
    ],
    ids=["in-text", "nested", "null-first", "other-key"],
)
def test_only_the_top_level_results_key_opens_the_rows(before: str) -> None:
    body = _with_results("[" + _row() + "]", before=before)
    fast, walked = _both(body)
    assert fast == walked
    assert fast[0] == "read"
    assert len(fast[1][1]) == 1


def test_two_results_arrays_make_the_body_unusable_either_way() -> None:
    body = _with_results("[" + _row() + "]", after=',"results":[]')
    fast, walked = _both(body)
    assert fast == walked == ("unusable", "the body has more than one results array")


@pytest.mark.parametrize(
    "broken",
    ["[{},]", "[{} {}]", "[{}}", "[{}],", "[{},{]", "[1]"],
)
def test_a_malformed_results_array_is_refused_as_the_walker_refuses_it(broken: str) -> None:
    body = _with_results(broken)
    fast, walked = _both(body)
    assert fast == walked
    assert fast[0] != "read"


def test_an_ordinary_body_reaches_the_event_parser_only_for_its_top_level_fields() -> None:
    """The rows are parsed in C: a regression to walking events would double the CPU."""
    rows = [json.dumps({"id": UUID, "created": True, "existing": False, "error": None})] * 5_000
    events = 0
    parse = ijson.parse

    def counting_parse(*args: t.Any, **kwargs: t.Any) -> Iterator[tuple[str, str, t.Any]]:
        nonlocal events
        for event in parse(*args, **kwargs):
            events += 1
            yield event

    with mock.patch.object(ijson, "parse", counting_parse):
        fast = _read(_body(rows), chunk=64 * 1024)
    assert fast[0] == "read"
    assert len(fast[1][1]) == 5_000
    assert events < 30


def _as_logged(body: bytes) -> dict[str, t.Any] | None:
    """The body as the import log's reader gets it: a line's parsed ``response``."""
    line = (
        b'{"v":1,"team_id":"' + REF.team_id.encode() + b'","object_type":"contact",'
        b'"submitted_at":"2026-11-20T10:00:00Z","http_status":200,"response":' + body + b"}\n"
    )
    try:
        return parse_log_line(line).response
    except ImportLogLineError:
        return None


def _read_document(document: dict[str, t.Any]) -> Reading:
    try:
        snapshot = snapshot_from_document(document, REF, format_datetime(FETCHED))
    except InvalidSnapshotError as error:
        return ("unusable", str(error))
    lines = [] if snapshot.results is None else list(snapshot.results.lines())
    snapshot.close()
    return ("read", (snapshot.record, lines, snapshot.warnings))


def _comparable(reading: Reading) -> Reading:
    """Records, rows and the kinds of warnings: a surrogate replaced in the log's line
    is noted by the line's reader, and a number's text may differ once parsed."""
    kind, value = reading
    if kind != "read":
        return reading
    record, lines, warnings = value
    kinds = sorted(w.split(" ", 1)[0] for w in warnings if "surrogate" not in w)
    return (kind, (record, lines, kinds))


@settings(max_examples=300, deadline=None)
@given(body=snapshot_bodies())
def test_a_parsed_body_reads_as_its_text_does(body: bytes) -> None:
    """The import log's responses are judged by the same rules as the API's bodies."""
    document = _as_logged(body)
    if document is None:
        return
    from_text = _read(body, None)
    if from_text[0] == "not JSON":
        return
    assert _comparable(_read_document(document)) == _comparable(from_text)


def _logged_line(response: str, input_keys: list[str]) -> bytes:
    return (
        b'{"v":1,"team_id":"' + REF.team_id.encode() + b'","object_type":"contact",'
        b'"submitted_at":"2026-11-20T10:00:00Z","http_status":200,"response":'
        + response.encode()
        + b',"input_keys":'
        + json.dumps(input_keys).encode()
        + b"}\n"
    )


# Ids of 19 digits and more, given as text (snowflake ids, for one): no number of
# the line is that long.
LONG_DIGIT_KEYS = ["1234567890123456789", "98765432109876543210"]


def test_long_runs_of_digits_in_strings_leave_every_value_as_json_reads_it() -> None:
    response = '{"job_id":null,"status":"complete","total":2,"results":[]}'
    line = parse_log_line(_logged_line(response, LONG_DIGIT_KEYS))
    assert line.input_keys == LONG_DIGIT_KEYS
    assert line.response == json.loads(response)
    assert line.notes == ()


@pytest.mark.parametrize(
    ("number", "read_as"),
    [
        (str(2**70), 2**70),
        (str(-(2**64)), -(2**64)),
        ("1.5", Decimal("1.5")),
    ],
)
def test_beside_long_digit_strings_numbers_are_still_read_exactly(
    number: str, read_as: object
) -> None:
    """orjson would make these floats (2**70 losing digits): the line is read exactly."""
    response = '{"job_id":null,"status":"complete","total":2,"request":' + number + "}"
    line = parse_log_line(_logged_line(response, LONG_DIGIT_KEYS))
    assert line.response["request"] == read_as
    assert type(line.response["request"]) is type(read_as)
