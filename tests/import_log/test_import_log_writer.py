"""The import log writer: what it records from each kind of response, and whole lines."""

from __future__ import annotations

import datetime
import multiprocessing
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
import requests

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox
from tap_prism_imports.import_log import ImportLog

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

micro_so = pytest.importorskip("micro_so")

SUBMITTED = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=datetime.timezone.utc)


def read_lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[Any]:
    with micro_so.Micro(
        api_key=sandbox.api_key,
        team_id=sandbox.team_id,
        base_url=sandbox.base_url,
        max_retries=0,
        timeout=30,
    ) as sdk:
        yield sdk


def test_official_sdk_sync_async_rejected_and_conflict(
    client: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    contacts = client.prism.objects.contacts
    team = sandbox.team_id

    sync_rows = [{"default": {"email": f"s{i}@example.com"}} for i in range(3)]
    sync = contacts.with_raw_response.bulk_create(objects=sync_rows, idempotency_key="sync-1")
    log.record(
        sync,
        team_id=team,
        object_type="contact",
        input_keys=["crm-1", "crm-2", None],
        submitted_at=SUBMITTED,
    )

    async_rows = [{"default": {"email": f"a{i}@example.com"}} for i in range(150)]
    started = contacts.with_raw_response.bulk_create(objects=async_rows)
    log.record(started, team_id=team, object_type="contact", rows=150, submitted_at=SUBMITTED)

    with pytest.raises(micro_so.BadRequestError) as bad_request:
        contacts.bulk_create(objects=[])
    log.record(bad_request.value, team_id=team, object_type="contact", rows=0)

    with pytest.raises(micro_so.ConflictError) as conflict:
        contacts.bulk_create(objects=sync_rows[:1], idempotency_key="sync-1")
    log.record(
        conflict.value,
        team_id=team,
        object_type="contact",
        input_keys=["crm-1"],
        idempotency_key="sync-1",
    )

    sync_line, async_line, bad_line, conflict_line = read_lines(log.path)

    assert sync_line == {
        "v": 1,
        "team_id": team,
        "object_type": "contact",
        "submitted_at": "2026-11-20T10:00:00.000000+00:00",
        "http_status": 200,
        "location": None,
        # Taken from the request the SDK sent: the caller did not repeat it.
        "idempotency_key": "sync-1",
        "response": sync.json(),
        "input_keys": ["crm-1", "crm-2", None],
    }
    assert sync_line["response"]["job_id"] is None
    assert len(sync_line["response"]["results"]) == 3

    job_id = started.parse().job_id
    assert async_line["http_status"] == 202
    assert async_line["location"] == f"/v2/prism/{team}/imports/{job_id}"
    assert async_line["response"]["job_id"] == job_id
    assert async_line["response"]["status"] == "processing"
    assert async_line["idempotency_key"] is None
    assert async_line["rows"] == 150
    assert "input_keys" not in async_line

    assert bad_line["http_status"] == 400
    assert bad_line["location"] is None
    assert bad_line["response"] == {"message": "objects must be a non-empty array"}
    assert bad_line["rows"] == 0
    # Without submitted_at, the time of recording: after the request.
    recorded_at = datetime.datetime.fromisoformat(bad_line["submitted_at"])
    assert recorded_at.tzinfo is not None
    assert datetime.datetime.now(datetime.timezone.utc) - recorded_at < datetime.timedelta(
        minutes=5
    )

    assert conflict_line["http_status"] == 409
    assert conflict_line["idempotency_key"] == "sync-1"
    assert conflict_line["response"]["message"] == (
        "Idempotency-Key was already used with a different request body"
    )

    assert sandbox.api_key.encode() not in log.path.read_bytes()


def test_requests_response_keeps_only_location_and_idempotency_key(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    response = requests.post(
        f"{sandbox.base_url}/v2/prism/{DEMO_TEAM_ID}/contact/import",
        json={"objects": [{"default": {"email": f"r{i}@example.com"}} for i in range(101)]},
        headers={"x-api-key": DEMO_API_KEY, "Idempotency-Key": "batch-7"},
        timeout=30,
    )
    assert response.status_code == 202
    entry = log.record(response, team_id=DEMO_TEAM_ID.upper(), object_type="contact")
    (line,) = read_lines(log.path)
    assert line == entry
    assert line["team_id"] == DEMO_TEAM_ID  # canonical lower case
    assert line["location"] == response.headers["Location"]
    assert line["idempotency_key"] == "batch-7"
    assert set(line) == {
        "v",
        "team_id",
        "object_type",
        "submitted_at",
        "http_status",
        "location",
        "idempotency_key",
        "response",
    }
    assert DEMO_API_KEY.encode() not in log.path.read_bytes()


def test_httpx_response_with_a_body_that_is_not_json(tmp_path: Path) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    response = httpx.Response(502, content=b"<html>Bad gateway</html>")
    log.record(response, team_id=DEMO_TEAM_ID, object_type="deal", submitted_at=SUBMITTED)
    (line,) = read_lines(log.path)
    assert line["http_status"] == 502
    assert line["response"] == {"body": "<html>Bad gateway</html>"}
    assert line["idempotency_key"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"team_id": "team-1"}, "not a UUID"),
        ({"object_type": ""}, "object_type"),
    ],
)
def test_the_callers_own_mistakes_are_refused_before_anything_is_written(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    kwargs: dict[str, Any] = {"team_id": DEMO_TEAM_ID, "object_type": "contact", **arguments}
    with pytest.raises(ValueError, match=message):
        log.record(httpx.Response(200, json={"status": "complete", "total": 0}), **kwargs)
    assert not log.path.exists()


def test_values_it_cannot_use_as_they_are_are_written_and_noted(tmp_path: Path) -> None:
    """The import was made: its line is written whatever came with it."""
    log = ImportLog(tmp_path / "imports.jsonl")
    written = log.record(
        httpx.Response(200, content=b'{"status":"complete","total":2,"message":"a \\ud83d b"}'),
        team_id=DEMO_TEAM_ID,
        object_type="contact",
        input_keys=[7, "k\ud800"],
        rows=-1,
        submitted_at=datetime.datetime(2026, 1, 1, 12),  # noqa: DTZ001 - the point
    )
    (line,) = read_lines(log.path)
    assert line == written
    assert line["input_keys"] == ["7", "k\ufffd"]
    assert line["response"]["message"] == "a \ufffd b"
    assert "rows" not in line
    notes = " ".join(line["writer_notes"])
    for noted in ("not strings", "surrogates in input_keys", "surrogates in the response", "rows"):
        assert noted in notes
    assert "time zone" in notes


def test_a_line_that_cannot_be_written_names_the_file(tmp_path: Path) -> None:
    log = ImportLog(tmp_path / "missing-folder" / "imports.jsonl")
    with pytest.raises(OSError, match="cannot open the import log") as raised:
        log.record(httpx.Response(400, json={}), team_id=DEMO_TEAM_ID, object_type="contact")
    assert str(log.path) in str(raised.value)


def test_a_new_log_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    log = ImportLog(tmp_path / "imports.jsonl")
    log.record(httpx.Response(400, json={}), team_id=DEMO_TEAM_ID, object_type="contact")
    assert log.path.stat().st_mode & 0o777 == 0o600


def test_something_that_is_no_response_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expected an HTTP response"):
        ImportLog(tmp_path / "x.jsonl").record(
            {"status_code": 200}, team_id=DEMO_TEAM_ID, object_type="contact"
        )


WRITERS = 6
LINES_PER_WRITER = 12


def _write_big_lines(path: str, writer: int) -> None:
    log = ImportLog(path)
    for line in range(LINES_PER_WRITER):
        # 64 KiB to ~450 KiB: larger than a pipe buffer, so a torn write would show.
        padding = "x" * (64 * 1024 + (writer * LINES_PER_WRITER + line) * 7_000)
        body = {"status": "complete", "total": 1, "padding": padding}
        log.record(
            httpx.Response(200, json=body),
            team_id=DEMO_TEAM_ID,
            object_type="contact",
            input_keys=[f"{writer}:{line}"],
        )


def test_concurrent_processes_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_write_big_lines, args=(str(path), writer))
        for writer in range(WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0

    lines = read_lines(path)
    assert len(lines) == WRITERS * LINES_PER_WRITER
    seen: dict[int, list[int]] = {}
    for entry in lines:
        writer, line = map(int, entry["input_keys"][0].split(":"))
        expected = 64 * 1024 + (writer * LINES_PER_WRITER + line) * 7_000
        assert entry["response"]["padding"] == "x" * expected
        seen.setdefault(writer, []).append(line)
    # Each writer's lines, whole and in its own order.
    assert seen == {writer: list(range(LINES_PER_WRITER)) for writer in range(WRITERS)}
