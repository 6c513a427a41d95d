"""A state the tap cannot read stops the run before any request, naming the key; an entry
that proves nothing gets its job requested, never skipped."""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.snapshots import parse_snapshot
from tap_prism_imports.state import (
    JobLedger,
    Plan,
    StateValidationError,
    read_state_file,
    validate_state,
)

if t.TYPE_CHECKING:
    from prism_sandbox import Sandbox

TEAM = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"
REF = JobRef(TEAM, "job_1")
NOW = datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc)
RECENT = "2026-11-19T10:00:00.000000+00:00"
LONG_AGO = "2026-11-01T10:00:00.000000+00:00"
TAP = Path(sys.executable).parent / "tap-prism-imports"


def jobs_state(jobs: object, **stream: object) -> dict[str, t.Any]:
    return {"bookmarks": {"import_jobs": {"jobs_format": 1, "jobs": jobs, **stream}}}


def ledger_of(entries: dict[str, t.Any]) -> JobLedger:
    return JobLedger({"jobs_format": 1, "jobs": entries})


API_URL = "https://developers.micro.so"


def needs_request(ledger: JobLedger) -> bool:
    plan = ledger.plan(REF, NOW, api_url=API_URL, refresh_terminal=False)
    return plan is Plan.REQUEST


# --- shapes the tap cannot read ------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "named"),
    [
        ([1], "is a list, not a JSON object"),
        ({"bookmarks": "x"}, "bookmarks is a string, not an object"),
        ({"bookmarks": []}, "bookmarks is a list, not an object"),
        ({"bookmarks": None}, "bookmarks is null, not an object"),
        ({"bookmarks": {"import_jobs": "x"}}, "bookmarks.import_jobs is a string, not an object"),
        ({"bookmarks": {"import_results": 3}}, "bookmarks.import_results is a number"),
        (jobs_state("x"), "bookmarks.import_jobs.jobs is a string, not an object"),
        (jobs_state([]), "bookmarks.import_jobs.jobs is a list, not an object"),
        (
            jobs_state({f"{TEAM}/job_1": "complete"}),
            f'bookmarks.import_jobs.jobs["{TEAM}/job_1"] is a string, not an object',
        ),
        (
            jobs_state({f"{TEAM}/job_1": ["complete"]}),
            f'bookmarks.import_jobs.jobs["{TEAM}/job_1"] is a list, not an object',
        ),
        (
            jobs_state({}, jobs_format="1"),
            'bookmarks.import_jobs.jobs_format is a string "1", not an integer',
        ),
        (jobs_state({}, jobs_format=True), "jobs_format is a boolean true, not an integer"),
        (jobs_state({}, jobs_format=1.5), "jobs_format is a number 1.5, not an integer"),
        (jobs_state({}, jobs_format=2), "jobs_format 2 was written by another version"),
        (
            {"bookmarks": {"import_jobs": {"import_log": {"recent": {"sync-a": "soon"}}}}},
            'import_log.recent["sync-a"] is a string "soon", not a whole number of seconds',
        ),
        (
            {"bookmarks": {"import_jobs": {"import_log": {"recent": {"sync-a": 1.5}}}}},
            'import_log.recent["sync-a"] is a number 1.5, not a whole number',
        ),
    ],
)
def test_a_state_the_tap_cannot_read_names_the_key_and_the_way_out(
    state: object, named: str
) -> None:
    with pytest.raises(StateValidationError) as caught:
        validate_state(state)
    error = caught.value
    assert isinstance(error, ConfigValidationError)  # the SDK's CLI logs it and exits 1
    assert named in str(error)
    assert str(error).startswith("the state: ")
    assert "Run without state" in error.errors[-1]
    assert ("or fix the file" if named.startswith("is ") else "fix or remove that key") in str(
        error
    )


def test_every_bad_entry_is_named_at_once() -> None:
    state = jobs_state({f"{TEAM}/a": 1, f"{TEAM}/b": {}, f"{TEAM}/c": None}, jobs_format="x")
    with pytest.raises(StateValidationError) as caught:
        validate_state(state)
    errors = caught.value.errors
    assert len(errors) == 4  # jobs_format, a, c, and the way out
    assert any(f'jobs["{TEAM}/a"]' in e for e in errors)
    assert any(f'jobs["{TEAM}/c"] is null' in e for e in errors)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"bookmarks": {}},
        {"bookmarks": {"import_jobs": {}}},
        jobs_state({}),
        jobs_state({f"{TEAM}/job_1": {}}, replication_key="fetched_at"),
        {"bookmarks": {"import_jobs": {"jobs": {}}, "import_results": {"x": 1}}},
    ],
)
def test_states_the_tap_can_read_pass(state: dict[str, t.Any]) -> None:
    validate_state(state)


def test_the_ledger_refuses_a_bad_shape_even_without_validation_first() -> None:
    with pytest.raises(StateValidationError, match=r"bookmarks\.import_jobs\.jobs is a string"):
        JobLedger({"jobs": "x"})
    with pytest.raises(StateValidationError, match="jobs_format is a string"):
        JobLedger({"jobs_format": "1"})


# --- state files ---------------------------------------------------------------------


def state_file(tmp_path: Path, content: bytes) -> io.TextIOWrapper:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    return path.open(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (b"not json {", "is not JSON: Expecting value at line 1 column 1"),
        (b'{"bookmarks": {}}\n{"x"', "is not JSON: Extra data at line 2 column 1"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"[]", "is a list, not a JSON object"),
        (b'{"bookmarks": 1}', "bookmarks is a number"),
        (b'{"a": "\xff"}', "is not UTF-8 text"),
    ],
)
def test_a_state_file_the_tap_cannot_read_is_named(
    tmp_path: Path, content: bytes, named: str
) -> None:
    with state_file(tmp_path, content) as file, pytest.raises(StateValidationError) as caught:
        read_state_file(file)
    message = str(caught.value)
    assert f"state file {str(tmp_path / 'state.json')!r}: " in message
    assert named in message
    assert "Run without state" in message


def test_a_state_file_with_a_bom_is_read(tmp_path: Path) -> None:
    state = jobs_state({f"{TEAM}/job_1": {"status": "complete", "requested_at": RECENT}})
    content = "\ufeff".encode() + json.dumps(state).encode()
    with state_file(tmp_path, content) as file:
        assert json.loads(read_state_file(file).read()) == state


# --- incomplete entries: requested, never skipped -------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"status": "processing"},
        {"status": "complete"},
        {"status": "not_found"},
        {"status": "complete", "requested_at": "garbage", "expires_at": "soon"},
        {"status": "processing", "requested_at": 1732000000, "expires_at": None},
        {"status": "queued", "requested_at": RECENT},
        {"status": ["complete"], "requested_at": RECENT},
    ],
)
def test_an_entry_that_proves_nothing_gets_its_job_requested(entry: dict[str, t.Any]) -> None:
    ledger = ledger_of({REF.key: entry})
    assert needs_request(ledger)


@pytest.mark.parametrize(
    ("entry", "requested"),
    [
        ({"status": "complete", "requested_at": RECENT, "expires_at": None}, False),
        (
            {"status": "failed", "requested_at": "garbage", "expires_at": "2026-11-25T00:00:00Z"},
            False,
        ),
        ({"status": "processing", "requested_at": RECENT, "expires_at": None}, True),
        # Marked gone at this api_url; a mark from before marks recorded the URL is
        # asked once more (it may have been made at a mistyped one).
        (
            {"status": "not_found", "requested_at": RECENT, "expires_at": None, "api_url": API_URL},
            False,
        ),
        ({"status": "not_found", "requested_at": RECENT, "expires_at": None}, True),
        ({"status": "not_found", "requested_at": LONG_AGO, "expires_at": None}, False),
        (
            {"status": "complete", "requested_at": RECENT, "expires_at": "2026-11-20T09:00:00Z"},
            False,
        ),
        ({"status": "processing", "requested_at": LONG_AGO, "expires_at": None}, False),
        # Written after a request without a usable answer: its date still dates the job.
        ({"status": None, "requested_at": RECENT, "expires_at": None}, True),
        ({"status": None, "requested_at": LONG_AGO, "expires_at": None}, False),
    ],
)
def test_a_complete_entry_decides_as_before(entry: dict[str, t.Any], requested: bool) -> None:
    ledger = ledger_of({REF.key: entry})
    assert needs_request(ledger) is requested


def test_unknown_statuses_read_as_none_and_unreadable_dates_sort_first() -> None:
    other = JobRef(TEAM, "job_2")
    ledger = ledger_of(
        {REF.key: {"status": "queued", "requested_at": 5}, other.key: {"requested_at": RECENT}}
    )
    assert ledger.status(REF) is None
    assert sorted([other, REF], key=ledger.requested_at) == [REF, other]


def test_pruning_drops_incomplete_and_expired_entries_of_unconfigured_jobs_only() -> None:
    entries = {
        f"{TEAM}/configured_incomplete": {},
        f"{TEAM}/gone_incomplete": {"status": "processing"},
        f"{TEAM}/gone_expired": {"status": "complete", "requested_at": LONG_AGO},
        f"{TEAM}/gone_recent": {"status": "complete", "requested_at": RECENT},
    }
    ledger = ledger_of(entries)
    ledger.prune({f"{TEAM}/configured_incomplete"}, NOW)
    assert sorted(entries) == [f"{TEAM}/configured_incomplete", f"{TEAM}/gone_recent"]


# --- the command, as a scheduler runs it ---------------------------------------------


def run_command(
    tmp_path: Path, sandbox: Sandbox, job_ids: list[str], state: bytes
) -> subprocess.CompletedProcess[str]:
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids": job_ids}
    (tmp_path / "c.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "s.json").write_bytes(state)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    return subprocess.run(
        [str(TAP), "--config", "c.json", "--state", "s.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )


@pytest.mark.parametrize(
    ("stream_state", "named"),
    [
        ({"jobs": "x"}, "bookmarks.import_jobs.jobs is a string"),
        ({"jobs": ["x"]}, "bookmarks.import_jobs.jobs is a list"),
        ({"jobs": {"KEY": "complete"}}, 'bookmarks.import_jobs.jobs["KEY"] is a string'),
        ({"jobs_format": "1"}, 'jobs_format is a string "1", not an integer'),
        ({"jobs_format": 7}, "jobs_format 7 was written by another version"),
    ],
)
def test_the_command_refuses_a_bad_ledger_before_any_request(
    sandbox: Sandbox, tmp_path: Path, stream_state: dict[str, t.Any], named: str
) -> None:
    job = sandbox.add_job(rows=2)
    key = sandbox.ref(job)
    text = json.dumps({"bookmarks": {"import_jobs": stream_state}}).replace("KEY", key)
    result = run_command(tmp_path, sandbox, [key], text.encode())
    named = named.replace("KEY", key)
    assert result.returncode == 1
    assert named in result.stderr
    assert "Run without state" in result.stderr
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("state", "named"),
    [
        (b"not json {", "state file 's.json': is not JSON"),
        (b"", "state file 's.json': is empty"),
        (b"[1]", "state file 's.json': is a list, not a JSON object"),
        (b'{"bookmarks": "x"}', "state file 's.json': bookmarks is a string"),
        (b'{"bookmarks": {"import_jobs": []}}', "bookmarks.import_jobs is a list"),
    ],
)
def test_the_command_names_the_state_file_it_cannot_read(
    sandbox: Sandbox, tmp_path: Path, state: bytes, named: str
) -> None:
    job = sandbox.add_job(rows=2)
    result = run_command(tmp_path, sandbox, [sandbox.ref(job)], state)
    assert result.returncode == 1
    assert named in result.stderr
    assert "Run without state" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox.requests == []


@pytest.mark.parametrize(
    "entry",
    [{}, {"status": "processing"}, {"status": "complete", "requested_at": "last week"}],
)
def test_the_command_requests_a_job_whose_entry_proves_nothing(
    sandbox: Sandbox, tmp_path: Path, entry: dict[str, t.Any]
) -> None:
    job = sandbox.add_job(rows=3)
    key = sandbox.ref(job)
    result = run_command(tmp_path, sandbox, [key], json.dumps(jobs_state({key: entry})).encode())
    assert result.returncode == 0, result.stderr
    assert [r["job_id"] for r in sandbox.requests if r.get("job_id")] == [job]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [m for m in records if m["type"] == "RECORD" and m["stream"] == "import_results"]
    assert len(rows) == 3


def test_dates_at_the_end_of_the_calendar_do_not_crash_the_ledger() -> None:
    end = "9999-12-31T23:59:59.000000+00:00"
    ledger = ledger_of({REF.key: {"status": "processing", "requested_at": end}})
    assert needs_request(ledger)
    body = json.dumps({"status": "complete", "total": 0, "created_at": end}).encode()
    snapshot = parse_snapshot(io.BytesIO(body), REF, NOW)
    ledger.record_snapshot(snapshot)
    assert not needs_request(ledger)
