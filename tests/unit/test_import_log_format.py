"""The import log's line: what the writer writes, the format's one definition reads back."""

from __future__ import annotations

import datetime
import json
import typing as t
from dataclasses import dataclass, field

import pytest

from prism_import_log import ImportLog, LogLine, LogLineError
from prism_import_log.format import format_datetime, parse_datetime

if t.TYPE_CHECKING:
    from pathlib import Path

TEAM = "5eed0d3e-0000-4000-8000-000000000001"


@dataclass
class Response:
    """What the writer reads of a response: the three attributes requests and httpx share."""

    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)


def test_a_written_line_reads_back_as_the_same_import(tmp_path: Path) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    submitted = datetime.datetime(2026, 11, 20, 10, tzinfo=datetime.timezone.utc)
    body = {"job_id": "job_1", "status": "processing", "total": 2}
    written = log.record(
        Response(202, json.dumps(body).encode(), {"Location": f"/v2/prism/{TEAM}/imports/job_1"}),
        team_id=TEAM.upper(),
        object_type="deal",
        input_keys=["D-1", None],
        idempotency_key="k-1",
        submitted_at=submitted,
    )
    (text,) = (tmp_path / "imports.jsonl").read_text(encoding="utf-8").splitlines()
    line = LogLine.from_document(json.loads(text))
    assert line == LogLine(
        team_id=TEAM,
        object_type="deal",
        submitted_at=submitted,
        http_status=202,
        response=body,
        location=f"/v2/prism/{TEAM}/imports/job_1",
        idempotency_key="k-1",
        input_keys=["D-1", None],
    )
    assert line.to_document() == written
    assert line.row_count == 2


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "not a JSON object"),
        ({"v": 2}, "v is 2"),
        ({"v": True}, "v is True"),
        ({"v": 1, "team_id": "team"}, "team_id 'team' is not a UUID"),
        (
            {
                "v": 1,
                "team_id": TEAM,
                "object_type": "contact",
                "submitted_at": "2026-11-20T10:00:00Z",
                "http_status": True,
                "response": {},
            },
            "http_status is True, not an HTTP status code",
        ),
    ],
)
def test_what_is_no_line_says_why(document: object, problem: str) -> None:
    with pytest.raises(LogLineError, match=problem):
        LogLine.from_document(document)


def test_a_reader_takes_odd_values_as_text_and_notes_it() -> None:
    line = LogLine.from_document(
        {
            "v": 1,
            "team_id": TEAM,
            "object_type": "contact",
            "submitted_at": "2026-11-20T10:00:00Z",
            "http_status": 200,
            "response": {},
            "input_keys": [7, "a"],
            "rows": -1,
            "writer_notes": ["the writer changed something"],
        }
    )
    assert line.input_keys == ["7", "a"]
    assert line.rows is None
    assert line.notes[0] == "the writer changed something"
    assert len(line.notes) == 3


@pytest.mark.parametrize(
    "written",
    [
        "2026-11-20T10:00:00.000000+00:00",
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00.5+00:00",
        "2026-11-20T11:00:00.000000+01:00",
        "2026-11-20 10:00:00.000000+00:00",
        " 2026-11-20T10:00:00.000000+00:00",
        "2026-11-20T10:00:00.123456",
        "2026-11-20T10:00:00.123456-00:00",
    ],
)
def test_submitted_at_reads_back_in_the_one_form(written: str) -> None:
    document = {
        "v": 1,
        "team_id": TEAM,
        "object_type": "contact",
        "submitted_at": written,
        "http_status": 200,
        "response": {},
    }
    line = LogLine.from_document(document)
    assert line.submitted_at_text == format_datetime(parse_datetime(written))
    assert line.to_document()["submitted_at"] == line.submitted_at_text
