"""The run engine on its own: a fake fetcher, no HTTP server, no Tap."""

from __future__ import annotations

import io
import json
import logging
import threading
import typing as t

import pytest

from tap_prism_imports.errors import JobFetchError, JobNotFoundError, JobsFailedError
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.pacing import RequestBudget
from tap_prism_imports.run import ImportRun, RunSettings
from tap_prism_imports.signals import Interruption
from tap_prism_imports.snapshots import JobSnapshot, parse_snapshot
from tap_prism_imports.state import NOT_FOUND, JobLedger
from tap_prism_imports.times import utc_now

if t.TYPE_CHECKING:
    from collections.abc import Callable

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
    )
    return run, stream_state


def drive(run: ImportRun) -> list[str]:
    """Emit every step as an adapter would, confirming each: the jobs emitted, in order."""
    emitted = []
    for step in run.steps():
        if step.snapshot is not None:
            emitted.append(step.snapshot.ref.job_id)
        run.confirm(step)
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
    steps = run.steps()
    first = next(steps)
    assert state["jobs"] == {}  # fetched, not yet written
    run.confirm(first)
    assert set(state["jobs"]) == {refs[0].key}
    assert state["jobs"][refs[0].key]["status"] == "complete"
    second = next(steps)
    # The adapter failed to write the second job (it never confirms it): not claimed.
    steps.close()
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
        for step in run.steps():
            assert step.snapshot is not None
            emitted.append(step.snapshot.ref.job_id)
            run.confirm(step)

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
