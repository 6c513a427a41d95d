"""The structure behind the tap's performance, locked in without timing anything.

- Results are parsed as the body streams in: rows are spooled while the server
  still holds back the rest of the body, and nothing is emitted before it ends.
- STATE messages are rationed by time, not written per job, and each carries one
  small ledger entry per job: a run's state output is linear in its jobs.
- The direct-write fast path and the SDK's per-record path write the same records.

The benchmarks (``python benchmarks/run.py``) measure what these guarantee.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
import typing as t

import pytest
from helpers.stub_api import Route, StubApi, http_response
from helpers.tap_runner import run_tap

from tap_prism_imports.records import import_results
from tap_prism_imports.state import StateCheckpoints
from tap_prism_imports.tap import TapPrismImports

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from prism_sandbox import Sandbox
    from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream

TEAM_ID = "0b5e55ed-0000-4000-8000-0000000000aa"
WAIT_SECONDS = 20.0
NO_OP_STREAM_MAP: dict[str, t.Any] = {"stream_maps": {"import_results": {}}}


# ---------------------------------------------------------------------- helpers


@pytest.fixture
def body_server() -> Iterator[StubApi]:
    """A local HTTP server answering job paths with prepared bodies."""
    with StubApi() as server:
        yield server


def _job_path(job_id: str) -> str:
    return f"/v2/prism/{TEAM_ID}/imports/{job_id}"


def _result_row(index: int) -> dict[str, t.Any]:
    if index % 7 == 6:
        return {
            "id": None,
            "created": False,
            "existing": False,
            "error": {"code": "validation_error", "message": f"row {index} is invalid"},
        }
    return {
        "id": f"5b0c0000-0000-4000-8000-{index:012x}",
        "created": index % 3 != 1,
        "existing": index % 3 == 1,
        "error": None,
    }


def _rows_json(start: int, stop: int) -> bytes:
    return b",".join(json.dumps(_result_row(i)).encode() for i in range(start, stop))


def _run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    *,
    checkpoints: StateCheckpoints | None = None,
) -> list[str]:
    """Sync in-process and return every line written to stdout."""

    def use_checkpoints(tap: TapPrismImports) -> None:
        if checkpoints is not None:
            t.cast("ImportJobsStream", tap.streams["import_jobs"]).link.checkpoints = checkpoints

    run = run_tap(config, state, customize=use_checkpoints)
    if run.error is not None:
        raise run.error
    return run.lines


def _messages(lines: list[str], kind: str) -> list[dict[str, t.Any]]:
    found = []
    for line in lines:
        message = json.loads(line)
        if message["type"] == kind:
            found.append(message)
    return found


class _SpoolSpy:
    """Keeps every ``ResultsSpool`` the parser creates, to read its row count mid-body."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.spools: list[import_results.ResultsSpool] = []
        spy = self

        class SpyingSpool(import_results.ResultsSpool):
            def __init__(self) -> None:
                super().__init__()
                spy.spools.append(self)

        monkeypatch.setattr(import_results, "ResultsSpool", SpyingSpool)

    def rows(self) -> int:
        return sum(spool.count for spool in self.spools)


# ---------------------------------------------------------------------- streaming


def test_results_are_parsed_while_the_body_is_still_arriving(
    body_server: StubApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server sends 20,000 rows, then holds the rest: those rows must already be spooled.

    A client that buffers the body (``response.content``, ``response.json()``) or a
    parser that needs the whole document would see no row until the gate opens.
    """
    first_rows, total_rows = 20_000, 30_000
    head = b'{"job_id":"job_stream","status":"complete","total":%d,"results":[' % total_rows
    tail = b'],"processed":%d,"succeeded":%d,"failed":0}' % (total_rows, total_rows)
    gate = threading.Event()
    first = head + _rows_json(0, first_rows)
    rest = b"," + _rows_json(first_rows, total_rows) + tail
    route = Route([http_response(first, length=len(first) + len(rest)), rest], gate)
    body_server.routes[_job_path("job_stream")] = route
    spy = _SpoolSpy(monkeypatch)
    config = {
        "api_url": body_server.url,
        "api_key": "test-key",
        "job_ids": [f"{TEAM_ID}/job_stream"],
    }
    stdout = io.StringIO()
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            TapPrismImports(config=config).sync_all()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    with contextlib.redirect_stdout(stdout):
        worker = threading.Thread(target=sync)
        worker.start()
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            # ijson reads 64 KiB at a time: the last partial chunk of part one may wait.
            while spy.rows() < first_rows // 2 and time.monotonic() < deadline and not errors:
                time.sleep(0.01)
            spooled_before_end = spy.rows()
            emitted_before_end = stdout.getvalue().count('"stream":"import_results"')
        finally:
            gate.set()
            worker.join(WAIT_SECONDS)
    assert not errors, errors
    assert not route.gate_timed_out
    assert spooled_before_end >= first_rows // 2, (
        f"only {spooled_before_end} rows parsed while the server held the body's end: "
        "the body is not parsed as it streams"
    )
    assert emitted_before_end == 0, "records were emitted before the whole body arrived"
    results = [
        m["record"]
        for m in _messages(stdout.getvalue().splitlines(), "RECORD")
        if m["stream"] == "import_results"
    ]
    assert [r["row_index"] for r in results] == list(range(total_rows))


# ---------------------------------------------------------------------- state


def _jobs(sandbox: Sandbox, count: int) -> list[str]:
    return [f"{sandbox.team_id}/{sandbox.add_job(rows=2)}" for _ in range(count)]


def _config(sandbox: Sandbox, refs: list[str], **settings: t.Any) -> dict[str, t.Any]:
    return {
        "api_url": sandbox.base_url,
        "api_key": sandbox.api_key,
        "job_ids": refs,
        "requests_per_second": 1000,
        **settings,
    }


def test_state_messages_do_not_grow_with_jobs_and_each_is_linear(sandbox: Sandbox) -> None:
    """With the checkpoint interval longer than the run, 5 jobs and 60 jobs get the same
    few STATE messages (none per job), each carrying one small entry per job."""
    counts = {}
    for jobs in (5, 60):
        refs = _jobs(sandbox, jobs)
        lines = _run_tap(
            _config(sandbox, refs), checkpoints=StateCheckpoints(interval_seconds=3600)
        )
        states = [line for line in lines if json.loads(line)["type"] == "STATE"]
        counts[jobs] = len(states)
        ledger = json.loads(states[-1])["value"]["bookmarks"]["import_jobs"]["jobs"]
        assert sorted(ledger) == sorted(refs)
        per_job = max(len(line) for line in states) / jobs
        assert per_job < 300 + 4096 / jobs, f"{per_job:.0f} bytes of STATE per job"
    assert counts[5] == counts[60] <= 6, counts


def test_state_messages_are_rationed_by_time(sandbox: Sandbox) -> None:
    """At the default interval, STATE messages follow the clock (about one a second)."""
    refs = _jobs(sandbox, 150)
    started = time.monotonic()
    lines = _run_tap(_config(sandbox, refs))
    elapsed = time.monotonic() - started
    states = _messages(lines, "STATE")
    # One per elapsed second at most, plus the run's first and its final ones.
    assert len(states) <= elapsed + 5, f"{len(states)} STATE messages in {elapsed:.1f} s"
    assert len(_messages(lines, "RECORD")) == 150 * 3


def test_terminal_jobs_in_state_cost_no_request(sandbox: Sandbox) -> None:
    refs = _jobs(sandbox, 40)
    first = _run_tap(_config(sandbox, refs))
    state = _messages(first, "STATE")[-1]["value"]
    sandbox.clear_requests()
    second = _run_tap(_config(sandbox, refs), state)
    assert sandbox.requests == []
    assert _messages(second, "RECORD") == []


# ---------------------------------------------------------------------- both paths


_VOLATILE = re.compile(rb'"(fetched_at|time_extracted)":"[^"]*"')


def _record_lines(lines: list[str]) -> list[bytes]:
    """RECORD lines as bytes, with the run-dependent timestamps blanked."""
    return [
        _VOLATILE.sub(rb'"\1":"-"', line.encode())
        for line in lines
        if line.startswith('{"type":"RECORD"')
    ]


def test_no_op_stream_map_takes_the_sdk_path() -> None:
    config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "job_ids": []}
    fast = TapPrismImports(config=config).streams["import_results"]
    mapped = TapPrismImports(config={**config, **NO_OP_STREAM_MAP}).streams["import_results"]
    assert t.cast("ImportResultsStream", fast).writes_records_directly()
    assert not t.cast("ImportResultsStream", mapped).writes_records_directly()


def test_fast_path_and_sdk_path_write_identical_records(sandbox: Sandbox) -> None:
    """Same sandbox jobs (every outcome, an empty job), both paths: the same bytes."""
    refs = [f"{sandbox.team_id}/{sandbox.add_job(rows=rows)}" for rows in (45, 0, 1_000)] + [
        f"{sandbox.team_id}/{sandbox.add_job(rows=30, status='failed')}"
    ]
    fast = _record_lines(_run_tap(_config(sandbox, refs)))
    sdk = _record_lines(_run_tap(_config(sandbox, refs, **NO_OP_STREAM_MAP)))
    assert len(fast) == 4 + 45 + 1_000
    assert fast == sdk


def test_both_paths_agree_on_unusual_result_rows(body_server: StubApi) -> None:
    """Odd but valid rows (missing fields, error as a string, extra keys, non-ASCII) come
    out as the same records on both paths."""
    rows = [
        {"id": "5b0c0000-0000-4000-8000-000000000001", "created": True},
        {"error": "rejected: ünïcødé ✓"},
        {"id": None, "error": {"code": "dup", "message": "déjà vu", "extra": [1, 2]}},
        {"id": "5b0c0000-0000-4000-8000-000000000002", "existing": True, "score": 1.5},
        {},
    ]
    body = json.dumps(
        {"job_id": "job_odd", "status": "complete", "total": len(rows), "results": rows}
    ).encode()
    body_server.routes[_job_path("job_odd")] = Route([http_response(body)])
    config = {
        "api_url": body_server.url,
        "api_key": "k",
        "job_ids": [f"{TEAM_ID}/job_odd"],
    }

    def records(lines: list[str]) -> list[dict[str, t.Any]]:
        found = []
        for message in _messages(lines, "RECORD"):
            record = dict(message["record"])
            record.pop("fetched_at")
            found.append({"stream": message["stream"], **record})
        return found

    fast = records(_run_tap(config))
    sdk = records(_run_tap({**config, **NO_OP_STREAM_MAP}))
    assert len(fast) == len(rows) + 1
    assert fast == sdk
