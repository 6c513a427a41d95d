"""The run engine on its own: a fake fetcher, no HTTP server, no Tap."""

from __future__ import annotations

import io
import json
import logging
import threading
import typing as t

import pytest

from tap_prism_imports.errors import JobFetchError, JobNotFoundError, JobsFailedError
from tap_prism_imports.import_log.reader import ImportLogReader
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.pacing import RequestBudget
from tap_prism_imports.run import LOG_BLOCK_IMPORTS, ImportRun, RunSettings
from tap_prism_imports.signals import Interruption
from tap_prism_imports.snapshots import JobSnapshot, parse_snapshot
from tap_prism_imports.state import NOT_FOUND, JobLedger
from tap_prism_imports.times import utc_now

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

TEAM = "5eed0d3e-0000-4000-8000-000000000001"
API_URL = "https://developers.micro.so"
LOGGER = logging.getLogger("test-run-engine")


class FatalError(Exception):
    """Stands in for the adapter's fatal error type."""


def ref(n: int) -> JobRef:
    return JobRef(TEAM, f"job_{n}")


def snapshot_of(job: JobRef, status: str = "complete", rows: int = 2) -> JobSnapshot:
    body: dict[str, t.Any] = {"job_id": job.job_id, "status": status, "total": rows}
    if status == "complete":
        body["results"] = [{"id": None, "created": True, "existing": False}] * rows
    return parse_snapshot(io.BytesIO(json.dumps(body).encode()), job, utc_now())


class FakeFetcher:
    """Answers each job from a table; counts calls. Thread-safe: the pipeline calls it
    from worker threads."""

    def __init__(self, answers: dict[JobRef, Callable[[JobRef], JobSnapshot]]) -> None:
        self.answers = answers
        self.calls: list[JobRef] = []
        self._lock = threading.Lock()

    def __call__(self, job: JobRef) -> JobSnapshot:
        with self._lock:
            self.calls.append(job)
        return self.answers[job](job)


def complete(job: JobRef) -> JobSnapshot:
    return snapshot_of(job)


def not_found(job: JobRef) -> JobSnapshot:
    msg = "404 import job not found"
    raise JobNotFoundError(msg, url=f"{API_URL}{job.path}")


def unreadable(_job: JobRef) -> JobSnapshot:
    msg = "500 server error, gave up"
    raise JobFetchError(msg)


def fatal(_job: JobRef) -> JobSnapshot:
    msg = "403 key revoked"
    raise FatalError(msg)


def make_run(
    refs: list[JobRef],
    fetch: FakeFetcher,
    state: dict[str, t.Any] | None = None,
    *,
    budget: int | None = None,
    claims_state: bool = True,
    import_log: ImportLogReader | None = None,
) -> tuple[ImportRun, dict[str, t.Any]]:
    stream_state: dict[str, t.Any] = state if state is not None else {}
    run = ImportRun(
        refs,
        JobLedger(stream_state),
        fetch=fetch,
        api_url=API_URL,
        budget=RequestBudget(budget),
        settings=RunSettings(),
        workers=4,
        stop_requests=lambda: None,
        fatal_errors=(FatalError,),
        logger=LOGGER,
        interruption=Interruption(),
        claims_state=claims_state,
        import_log=import_log,
    )
    return run, stream_state


def drive(run: ImportRun) -> list[str]:
    """Emit every step as an adapter would, confirming each: the jobs emitted, in order."""
    emitted = []
    for block in run.blocks():
        emitted += [step.snapshot.ref.job_id for step in block if step.snapshot is not None]
        run.confirm(block)
    run.close()
    return emitted


def test_jobs_are_emitted_in_ref_order_whatever_order_they_finish() -> None:
    refs = [ref(n) for n in range(20)]
    fetch = FakeFetcher(dict.fromkeys(refs, complete))
    run, _ = make_run(refs, fetch)
    assert drive(run) == [r.job_id for r in refs]


def test_the_ledger_changes_only_when_a_step_is_confirmed() -> None:
    refs = [ref(0), ref(1)]
    run, state = make_run(refs, FakeFetcher(dict.fromkeys(refs, complete)))
    blocks = run.blocks()
    first = next(blocks)
    assert state["jobs"] == {}  # fetched, not yet written
    run.confirm(first)
    assert set(state["jobs"]) == {refs[0].key}
    assert state["jobs"][refs[0].key]["status"] == "complete"
    [second] = next(blocks)
    # The adapter failed to write the second job (it never confirms it): not claimed.
    blocks.close()
    assert second.snapshot is None or second.snapshot.results is None  # released
    assert set(state["jobs"]) == {refs[0].key}


def test_terminal_jobs_in_the_ledger_cost_no_request() -> None:
    refs = [ref(0), ref(1)]
    fetch = FakeFetcher(dict.fromkeys(refs, complete))
    run, state = make_run(refs, fetch)
    drive(run)
    fetch.calls.clear()
    rerun, _ = make_run(refs, fetch, state)
    assert drive(rerun) == []
    assert fetch.calls == []
    assert rerun.summary.already_final == 2


def test_a_failed_job_leaves_the_others_and_fails_the_run_at_its_end() -> None:
    refs = [ref(0), ref(1), ref(2)]
    fetch = FakeFetcher({refs[0]: complete, refs[1]: unreadable, refs[2]: complete})
    run, state = make_run(refs, fetch)
    assert drive(run) == ["job_0", "job_2"]
    assert state["jobs"][refs[1].key]["status"] is None  # requested, nothing known
    with pytest.raises(JobsFailedError, match=r"1 of 3 jobs could not be read.*job_1"):
        run.raise_for_failures()


def test_a_missing_job_is_remembered_and_never_requested_again() -> None:
    refs = [ref(0)]
    fetch = FakeFetcher({refs[0]: not_found})
    run, state = make_run(refs, fetch)
    assert drive(run) == []
    assert state["jobs"][refs[0].key]["status"] == NOT_FOUND
    fetch.calls.clear()
    rerun, _ = make_run(refs, fetch, state)
    drive(rerun)
    assert fetch.calls == []
    run.raise_for_failures()  # a 404 is a warning, not a failure


def test_a_fatal_error_ends_the_run_claiming_only_what_was_emitted() -> None:
    refs = [ref(0), ref(1), ref(2)]
    fetch = FakeFetcher({refs[0]: complete, refs[1]: fatal, refs[2]: complete})
    run, state = make_run(refs, fetch)
    emitted: list[str] = []

    def emit_all() -> None:
        for block in run.blocks():
            for step in block:
                assert step.snapshot is not None
                emitted.append(step.snapshot.ref.job_id)
            run.confirm(block)

    with pytest.raises(FatalError):
        emit_all()
    # Jobs fetch concurrently: job_0 may or may not be out before job_1's error lands.
    assert emitted in ([], ["job_0"])
    assert set(state["jobs"]) == {JobRef(TEAM, job).key for job in emitted}


def test_the_budget_goes_to_the_jobs_requested_longest_ago() -> None:
    refs = [ref(n) for n in range(3)]
    state = {
        "jobs": {
            refs[0].key: {
                "status": "processing",
                "requested_at": "2026-11-30T10:00:00+00:00",
                "expires_at": "2099-01-01T00:00:00+00:00",
            },
            refs[1].key: {
                "status": "processing",
                "requested_at": "2026-11-29T10:00:00+00:00",
                "expires_at": "2099-01-01T00:00:00+00:00",
            },
        }
    }
    fetch = FakeFetcher(dict.fromkeys(refs, complete))
    run, _ = make_run(refs, fetch, state, budget=2)
    # job_2 was never requested, job_1 longer ago than job_0.
    assert drive(run) == ["job_1", "job_2"]
    assert run.summary.not_requested == 1


def test_a_dry_run_claims_nothing() -> None:
    refs = [ref(0)]
    run, state = make_run(refs, FakeFetcher({refs[0]: complete}), claims_state=False)
    assert drive(run) == ["job_0"]
    assert state["jobs"] == {}


def test_the_summary_counts_what_was_confirmed() -> None:
    refs = [ref(0), ref(1)]
    answers = {refs[0]: complete, refs[1]: lambda job: snapshot_of(job, "processing")}
    run, _ = make_run(refs, FakeFetcher(answers))
    drive(run)
    line = run.summary.line(run.budget.answered, run.budget.unanswered)
    assert "emitted jobs: 1 complete, 1 processing, 0 failed" in line
    assert "rows: 2 created, 0 existing, 0 failed" in line


def write_one_row_sync_imports(path: Path, count: int) -> list[int]:
    """``count`` sync imports of one row each; the byte offset after each line."""
    ends, offset = [], 0
    with path.open("wb") as file:
        for n in range(count):
            line = {
                "v": 1,
                "team_id": TEAM,
                "object_type": "contact",
                "submitted_at": f"2026-12-01T10:00:{n % 60:02d}.{n:06d}+00:00",
                "http_status": 200,
                "location": None,
                "idempotency_key": None,
                "response": {"status": "complete", "total": 1, "results": [{"created": True}]},
            }
            data = (json.dumps(line) + "\n").encode()
            file.write(data)
            offset += len(data)
            ends.append(offset)
    return ends


def test_the_import_log_goes_out_in_blocks_each_claimed_once_confirmed(tmp_path: Path) -> None:
    log = tmp_path / "imports.jsonl"
    ends = write_one_row_sync_imports(log, 3 * LOG_BLOCK_IMPORTS)
    state: dict[str, t.Any] = {}
    reader = ImportLogReader(str(log), state.setdefault("import_log", {}), now=utc_now())
    run, _ = make_run([], FakeFetcher({}), state, import_log=reader)

    def claimed_up_to() -> int:
        return t.cast("int", state["import_log"]["files"][str(log)]["offset"])

    blocks = run.blocks()
    first = next(blocks)
    assert len(first) == LOG_BLOCK_IMPORTS
    assert claimed_up_to() == 0  # read, not yet written
    run.confirm(first)
    assert claimed_up_to() == ends[LOG_BLOCK_IMPORTS - 1]
    second = next(blocks)
    # The adapter failed to write the second block (it never confirms it): not claimed.
    blocks.close()
    assert claimed_up_to() == ends[LOG_BLOCK_IMPORTS - 1]
    assert all(step.snapshot is None or step.snapshot.results is None for step in second)
    assert run.summary.jobs_by_status["complete"] == LOG_BLOCK_IMPORTS
