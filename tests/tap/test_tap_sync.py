"""What a scheduled pipeline relies on: records, state, and requests spent, run after run."""

from __future__ import annotations

import itertools
import typing as t
from collections import Counter

import pytest
from helpers.tap_runner import job_requests, run_tap, tap_config

from tap_prism_imports import __version__
from tap_prism_imports.errors import JobsFailedError
from tap_prism_imports.times import parse_datetime

if t.TYPE_CHECKING:
    from prism_sandbox import Sandbox


def test_first_run_emits_each_job_once_and_every_result_row(sandbox: Sandbox) -> None:
    done = sandbox.add_job(rows=40, failed_every=10, existing_every=3)
    running = sandbox.add_job(rows=5000, status="processing")
    broken = sandbox.add_job(rows=7, status="failed")
    refs = [sandbox.ref(done), sandbox.ref(running), sandbox.ref(broken)]

    run = run_tap(tap_config(sandbox, refs), sandbox=sandbox)

    assert run.error is None
    assert [(j["job_id"], j["status"]) for j in run.jobs] == [
        (done, "complete"),
        (running, "processing"),
        (broken, "failed"),
    ]
    served = sandbox.snapshot(done)["results"]
    assert [r["row_index"] for r in run.results] == list(range(len(served)))
    for record, result in zip(run.results, served, strict=True):
        assert record["job_id"] == done
        assert record["team_id"] == sandbox.team_id
        assert record["record_id"] == result["id"]
        assert record["created"] is result["created"]
        assert record["existing"] is result["existing"]
        expected = "failed" if result["error"] else "created" if result["created"] else "existing"
        assert record["outcome"] == expected
        assert record["error_code"] == (result["error"] or {}).get("code")
    assert Counter(r["outcome"] for r in run.results) == {
        "created": 24,
        "existing": 12,
        "failed": 4,
    }
    failed_job = run.jobs[2]
    assert failed_job["error_code"]
    assert failed_job["error_message"]
    assert run.jobs[0]["results_count"] == 40
    assert run.jobs[1]["results_count"] is None
    assert sorted(job_requests(run)) == sorted([done, running, broken])


def test_results_are_emitted_before_their_job_and_follow_ref_order(sandbox: Sandbox) -> None:
    jobs = [sandbox.add_job(rows=3) for _ in range(6)]
    run = run_tap(tap_config(sandbox, [sandbox.ref(j) for j in reversed(jobs)]), sandbox=sandbox)

    order = [(m["stream"], m["record"]["job_id"]) for m in run.messages if m["type"] == "RECORD"]
    expected: list[tuple[str, str]] = []
    for job in reversed(jobs):
        expected += [("import_results", job)] * 3 + [("import_jobs", job)]
    assert order == expected


def test_second_run_spends_no_request_on_terminal_or_missing_jobs(sandbox: Sandbox) -> None:
    done = sandbox.add_job(rows=10)
    broken = sandbox.add_job(rows=10, status="failed")
    running = sandbox.add_job(rows=1000, status="processing")
    unknown = f"{sandbox.team_id}/job_never_existed"
    config = tap_config(
        sandbox, [sandbox.ref(done), sandbox.ref(broken), sandbox.ref(running), unknown]
    )

    first = run_tap(config, sandbox=sandbox)
    assert first.error is None
    assert len(first.results) == 10

    second = run_tap(config, first.state, sandbox=sandbox)
    assert job_requests(second) == [running]
    assert [j["job_id"] for j in second.jobs] == [running]
    assert second.results == []

    sandbox.advance_clock(60)
    third = run_tap(config, second.state, sandbox=sandbox)
    assert job_requests(third) == [running]
    assert [(j["job_id"], j["status"]) for j in third.jobs] == [(running, "complete")]
    assert len(third.results) == 1000
    assert {r["job_id"] for r in third.results} == {running}

    fourth = run_tap(config, third.state, sandbox=sandbox)
    assert fourth.requests == []
    assert fourth.jobs == []
    assert fourth.results == []


def test_unknown_job_warns_once_and_is_never_requested_again(sandbox: Sandbox) -> None:
    ref = f"{sandbox.team_id}/job_gone"
    first = run_tap(tap_config(sandbox, [ref]), sandbox=sandbox)
    assert first.error is None
    assert first.jobs == []
    assert "job_gone" in first.logs
    assert "not found" in first.logs
    assert first.ledger()[ref]["status"] == "not_found"

    second = run_tap(tap_config(sandbox, [ref]), first.state, sandbox=sandbox)
    assert second.requests == []


def test_known_expiry_costs_no_request(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tap_prism_imports.run.utc_now", sandbox.now)
    job = sandbox.add_job(rows=5, status="processing")
    first = run_tap(tap_config(sandbox, [sandbox.ref(job)]), sandbox=sandbox)
    assert first.jobs[0]["status"] == "processing"

    sandbox.advance_clock(8 * 24 * 3600)
    second = run_tap(tap_config(sandbox, [sandbox.ref(job)]), first.state, sandbox=sandbox)
    # The ledger knows the job's expires_at: no request is spent to learn it is gone.
    assert second.requests == []
    assert "expired" in second.logs


def test_refresh_terminal_jobs_requests_them_again_but_never_expired_ones(
    sandbox: Sandbox,
) -> None:
    done = sandbox.add_job(rows=4)
    gone = f"{sandbox.team_id}/job_gone"
    config = tap_config(sandbox, [sandbox.ref(done), gone])
    first = run_tap(config, sandbox=sandbox)

    again = run_tap({**config, "refresh_terminal_jobs": True}, first.state, sandbox=sandbox)
    assert job_requests(again) == [done]
    assert len(again.results) == 4
    assert [j["job_id"] for j in again.jobs] == [done]


def test_wait_for_completion_polls_until_done_and_emits_results_once(sandbox: Sandbox) -> None:
    # 150 rows at the sandbox's 100 rows/s: processing at the first poll, done ~1.5 s later.
    job = sandbox.add_job(rows=150, status="processing")
    config = tap_config(
        sandbox, [sandbox.ref(job)], wait_for_completion=True, poll_interval_seconds=1
    )
    run = run_tap(config, sandbox=sandbox)

    assert run.error is None
    assert [j["status"] for j in run.jobs] == ["complete"]
    assert len(run.results) == 150
    assert len(job_requests(run)) >= 2
    assert run.ledger()[sandbox.ref(job)]["status"] == "complete"


def test_wait_deadline_emits_the_last_snapshot(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=100_000, status="processing")
    config = tap_config(
        sandbox,
        [sandbox.ref(job)],
        wait_for_completion=True,
        poll_interval_seconds=1,
        max_wait_seconds=1.5,
    )
    run = run_tap(config, sandbox=sandbox)

    assert [j["status"] for j in run.jobs] == ["processing"]
    assert run.results == []
    # First request, one poll after 1 s, one last poll at the deadline.
    assert 2 <= len(job_requests(run)) <= 3
    assert run.ledger()[sandbox.ref(job)]["status"] == "processing"


def test_refs_in_every_form_are_merged_and_deduplicated(sandbox: Sandbox, tmp_path: t.Any) -> None:
    first, second, third = (sandbox.add_job(rows=1) for _ in range(3))
    team = sandbox.team_id
    refs_file = tmp_path / "jobs.txt"
    refs_file.write_text(
        f"# jobs started by the nightly import\n\n{sandbox.location(second)}\n"
        f"https://elsewhere.example/v2/prism/{team.upper()}/imports/{third}\n{first}\n",
        encoding="utf-8",
    )
    config = tap_config(
        sandbox, [first, f"{team}/{second}"], team_id=team, job_ids_file=str(refs_file)
    )
    run = run_tap(config, sandbox=sandbox)

    assert [j["job_id"] for j in run.jobs] == [first, second, third]
    assert sorted(job_requests(run)) == sorted([first, second, third])


def test_no_refs_warns_and_emits_nothing(sandbox: Sandbox) -> None:
    run = run_tap(tap_config(sandbox, []), sandbox=sandbox)
    assert run.error is None
    assert run.jobs == []
    assert run.requests == []
    assert "No job refs configured" in run.logs


def test_state_forgets_unconfigured_jobs_once_expired(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tap_prism_imports.run.utc_now", sandbox.now)
    old = sandbox.add_job(rows=2)
    new = sandbox.add_job(rows=2)
    first = run_tap(tap_config(sandbox, [sandbox.ref(old), sandbox.ref(new)]), sandbox=sandbox)
    assert set(first.ledger()) == {sandbox.ref(old), sandbox.ref(new)}

    # Dropped from config but not expired: kept, in case it comes back.
    second = run_tap(tap_config(sandbox, [sandbox.ref(new)]), first.state, sandbox=sandbox)
    assert set(second.ledger()) == {sandbox.ref(old), sandbox.ref(new)}

    later = sandbox.add_job(rows=1, created_at=sandbox.now().timestamp() + 8 * 24 * 3600)
    sandbox.advance_clock(8 * 24 * 3600)
    third_config = tap_config(sandbox, [sandbox.ref(new), sandbox.ref(later)])
    third = run_tap(third_config, second.state, sandbox=sandbox)
    # Still configured (though expired) stays; unconfigured and expired goes.
    assert set(third.ledger()) == {sandbox.ref(new), sandbox.ref(later)}


def test_failed_job_fails_the_run_after_the_others_are_extracted(sandbox: Sandbox) -> None:
    good = sandbox.add_job(rows=3)
    bad = sandbox.add_job(rows=3)
    sandbox.inject("unexpected_status", job_id=bad, value="queued")
    config = tap_config(sandbox, [sandbox.ref(bad), sandbox.ref(good)])

    run = run_tap(config, sandbox=sandbox)

    assert isinstance(run.error, JobsFailedError)
    assert bad in str(run.error)
    assert "queued" in str(run.error)
    assert [j["job_id"] for j in run.jobs] == [good]
    ledger = run.ledger()
    assert ledger[sandbox.ref(good)]["status"] == "complete"
    assert ledger[sandbox.ref(bad)]["status"] is None

    sandbox.clear_faults()
    rerun = run_tap(config, run.state, sandbox=sandbox)
    assert rerun.error is None
    assert job_requests(rerun) == [bad]
    assert len(rerun.results) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_stop_the_run_at_once_naming_the_setting(sandbox: Sandbox, status: int) -> None:
    jobs = [sandbox.add_job(rows=1) for _ in range(3)]
    config = tap_config(sandbox, [sandbox.ref(j) for j in jobs], requests_per_second=2)
    if status == 403:
        config["api_key"] = "revoked-key"
    else:
        sandbox.inject("server_error", status=401)
    run = run_tap(config, sandbox=sandbox)

    assert run.error is not None
    assert "api_key" in str(run.error)
    assert len(run.requests) == 1
    assert run.jobs == []


def test_api_url_falls_back_to_environment_and_requests_name_the_tap(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = sandbox.add_job(rows=1)
    monkeypatch.setenv("MICRO_BASE_URL", sandbox.base_url)
    config = tap_config(sandbox, [sandbox.ref(job)])
    del config["api_url"]
    run = run_tap(config, sandbox=sandbox)
    assert run.error is None
    assert [r["user_agent"] for r in run.requests] == [f"tap-prism-imports/{__version__}"]


def test_api_key_falls_back_to_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = sandbox.add_job(rows=1)
    monkeypatch.setenv("MICRO_API_KEY", sandbox.api_key)
    config = tap_config(sandbox, [sandbox.ref(job)])
    del config["api_key"]
    run = run_tap(config, sandbox=sandbox)
    assert run.error is None
    assert len(run.jobs) == 1


def test_missing_api_key_names_setting_and_variable(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MICRO_API_KEY", raising=False)
    config = tap_config(sandbox, [f"{sandbox.team_id}/job_x"])
    del config["api_key"]
    run = run_tap(config, sandbox=sandbox)
    assert run.error is not None
    assert "api_key" in str(run.error)
    assert "MICRO_API_KEY" in str(run.error)
    assert run.requests == []


def test_requests_are_paced_and_overlapped(make_sandbox: t.Any) -> None:
    sandbox = make_sandbox(rate_limit=10, burst=10)
    jobs = [sandbox.add_job(rows=1) for _ in range(12)]
    run = run_tap(
        tap_config(sandbox, [sandbox.ref(j) for j in jobs], requests_per_second=10),
        sandbox=sandbox,
    )
    assert run.error is None
    assert [r["status"] for r in run.requests] == [200] * 12
    times = sorted(parse_datetime(r["time"]).timestamp() for r in run.requests)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # No bursts: ~100 ms between request starts; the log's times are when each answer
    # was written, which a busy machine may shift a little either way.
    assert times[-1] - times[0] >= 1.0
    assert min(gaps) > 0.03


def test_batch_mode_writes_state_only_after_the_batches(sandbox: Sandbox, tmp_path: t.Any) -> None:
    jobs = [sandbox.add_job(rows=30) for _ in range(3)]
    batch_config = {
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "storage": {"root": f"file://{tmp_path}", "prefix": "batch-"},
    }
    config = tap_config(sandbox, [sandbox.ref(j) for j in jobs], batch_config=batch_config)
    run = run_tap(config, sandbox=sandbox)

    assert run.error is None
    kinds = [m["type"] for m in run.messages]
    first_jobs_batch = next(
        i
        for i, m in enumerate(run.messages)
        if m["type"] == "BATCH" and m["stream"] == "import_jobs"
    )
    claims = [
        i
        for i, m in enumerate(run.messages)
        if m["type"] == "STATE" and m["value"]["bookmarks"]["import_jobs"].get("jobs")
    ]
    assert claims
    assert min(claims) > first_jobs_batch
    # One file of rows across the three jobs, one of jobs: not one per job.
    assert kinds.count("BATCH") == 2
    assert set(run.ledger()) == {sandbox.ref(j) for j in jobs}
