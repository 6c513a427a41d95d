"""Hostile snapshot bodies for property tests: every odd but legal (and some illegal)
value the API could send, as JSON text, and a body that arrives a few bytes a read."""

from __future__ import annotations

import datetime
import io
import json

from hypothesis import strategies as st

# The job the bodies are read as.
REF_JOB_ID = "job_1"
# Warehouses store counts as signed 64-bit integers.
MAX_COUNT = 2**63 - 1


class ChunkedBody:
    """A body that arrives ``size`` bytes per read, as from a slow socket."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data = io.BytesIO(data)
        self._size = size

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(self._size, size if size >= 0 else self._size))


def _json_string_literal(text: str) -> str:
    return json.dumps(text)


OFFSETS = [datetime.timezone(datetime.timedelta(hours=hours)) for hours in (-12, 0, 5, 14)]
LONE_SURROGATE_ESCAPES = st.sampled_from([r"\ud800", r"\udbff", r"\udc00", r"\udfff"])
TEXT_PIECES = st.one_of(
    st.text(max_size=8).map(lambda s: _json_string_literal(s)[1:-1]),
    LONE_SURROGATE_ESCAPES,
    st.just(r"\u0000"),
    st.just(r"\ud83d\ude00"),
    st.just(r"\\"),
)
JSON_TEXT = st.lists(TEXT_PIECES, max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
BIG_INTEGERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=-(2**62)),
).map(str)
ANY_SCALAR = st.one_of(
    JSON_TEXT,
    BIG_INTEGERS,
    st.sampled_from(["true", "false", "null", "1.5", "-0.0", "1e400", "[]", "{}", '[1, "a"]']),
)
RECORD_IDS = st.one_of(
    st.uuids().map(lambda u: json.dumps(str(u))),
    st.uuids().map(lambda u: json.dumps(str(u).upper())),
    JSON_TEXT,
    ANY_SCALAR,
)
DATE_TIMES = st.one_of(
    st.datetimes(timezones=st.sampled_from(OFFSETS)).map(lambda d: json.dumps(d.isoformat())),
    st.sampled_from(['"2026-11-20T10:00:00Z"', '"0001-01-01T00:00:00+01:00"', '"soon"']),
    ANY_SCALAR,
)


@st.composite
def result_elements(draw: st.DrawFn) -> str:
    fields = {
        "id": RECORD_IDS,
        "created": ANY_SCALAR,
        "existing": ANY_SCALAR,
        "error": st.one_of(
            ANY_SCALAR,
            st.builds(
                lambda code, message: f'{{"code": {code}, "message": {message}}}',
                ANY_SCALAR,
                ANY_SCALAR,
            ),
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    members = [f'"{name}": {draw(fields[name])}' for name in chosen]
    return "{" + ", ".join(members) + "}"


@st.composite
def snapshot_bodies(draw: st.DrawFn) -> bytes:
    members = [
        f'"status": "{draw(st.sampled_from(["complete", "failed", "processing"]))}"',
        f'"total": {draw(st.integers(min_value=0, max_value=MAX_COUNT))}',
    ]
    optional = {
        "job_id": st.one_of(st.just(json.dumps(REF_JOB_ID)), JSON_TEXT, ANY_SCALAR),
        "processed": BIG_INTEGERS,
        "succeeded": ANY_SCALAR,
        "failed": BIG_INTEGERS,
        "error": st.one_of(
            JSON_TEXT,
            st.builds(
                lambda code, message: f'{{"code": {code}, "message": {message}}}',
                ANY_SCALAR,
                ANY_SCALAR,
            ),
        ),
        "created_at": DATE_TIMES,
        "expires_at": DATE_TIMES,
        "results": st.lists(result_elements(), max_size=8).map(lambda r: "[" + ", ".join(r) + "]"),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(optional)), unique=True))
    members += [f'"{name}": {draw(optional[name])}' for name in chosen]
    return ("{" + ", ".join(draw(st.permutations(members))) + "}").encode()
