"""One test per fault the API can throw at an unattended run, and the outcome users rely on."""

from __future__ import annotations

import email.utils
import json
import time
import typing as t

import pytest
import requests
from helpers.stub_api import Route, StubApi, http_response
from helpers.tap_runner import job_requests, run_tap, tap_config
from singer_sdk.exceptions import RetriableAPIError

from tap_prism_imports import client
from tap_prism_imports.errors import JobFetchError, JobsFailedError
from tap_prism_imports.tap import TapPrismImports
from tap_prism_imports.times import parse_datetime

if t.TYPE_CHECKING:
    from prism_sandbox import Sandbox


@pytest.fixture(autouse=True)
def _quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exponential backoff in milliseconds; Retry-After values are still obeyed as sent."""
    monkeypatch.setattr(client, "INITIAL_RETRY_DELAY", 0.01)
    monkeypatch.setattr(client, "MAX_RETRY_DELAY", 0.05)


def request_times(run: t.Any) -> list[float]:
    return [parse_datetime(r["time"]).timestamp() for r in run.requests]


def assert_rows_exactly_once(run: t.Any, job: str, rows: int) -> None:
    indexes = [r["row_index"] for r in run.results if r["job_id"] == job]
    assert sorted(indexes) == list(range(rows))
    assert len(indexes) == len(set(indexes))


def test_429_with_retry_after_seconds_is_obeyed(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=20)
    sandbox.inject("rate_limit", count=2, retry_after=1, job_id=job)
    run = run_tap(tap_config(sandbox, [sandbox.ref(job)]), sandbox=sandbox)

    assert run.error is None
    assert [r["status"] for r in run.requests] == [429, 429, 200]
    times = request_times(run)
    assert times[1] - times[0] >= 0.95
    assert times[2] - times[1] >= 0.95
    assert_rows_exactly_once(run, job, 20)


def test_429_with_retry_after_http_date_is_obeyed(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=5)
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    sandbox.inject("rate_limit", count=1, retry_after=when, job_id=job)
    run = run_tap(tap_config(sandbox, [sandbox.ref(job)]), sandbox=sandbox)

    assert run.error is None
    assert [r["status"] for r in run.requests] == [429, 200]
    times = request_times(run)
    # HTTP-dates have whole seconds: the wait is at least 1 s of the 2 asked.
    assert times[1] - times[0] >= 0.95
    assert_rows_exactly_once(run, job, 5)


def test_429_pauses_every_request_not_just_the_throttled_one(sandbox: Sandbox) -> None:
    jobs = [sandbox.add_job(rows=1) for _ in range(4)]
    sandbox.inject("rate_limit", count=1, retry_after=2, job_id=jobs[0])
    run = run_tap(
        tap_config(sandbox, [sandbox.ref(j) for j in jobs], requests_per_second=20),
        sandbox=sandbox,
    )

    assert run.error is None
    throttled_at = next(
        parse_datetime(r["time"]).timestamp() for r in run.requests if r["status"] == 429
    )
    later = [
        parse_datetime(r["time"]).timestamp()
        for r in run.requests
        if parse_datetime(r["time"]).timestamp() > throttled_at
    ]
    assert later
    assert min(later) - throttled_at >= 1.9
    assert [j["job_id"] for j in run.jobs] == jobs


def test_retry_after_beyond_60_s_stops_requests_and_names_the_job(sandbox: Sandbox) -> None:
    slow, later = sandbox.add_job(rows=3), sandbox.add_job(rows=3)
    sandbox.inject("rate_limit", retry_after=3600, job_id=slow)
    started = time.monotonic()
    run = run_tap(tap_config(sandbox, [sandbox.ref(slow), sandbox.ref(later)]), sandbox=sandbox)

    assert isinstance(run.error, JobsFailedError)
    message = str(run.error)
    assert slow in message
    assert "3600 s" in message
    assert job_requests(run) == [slow]
    # The limit is the key's: the other job is left for the next run, not hammered.
    assert "left for the next run: 1 (API limit)" in run.logs
    assert run.jobs == []
    assert time.monotonic() - started < 10
    assert run.ledger()[sandbox.ref(slow)]["status"] is None


def test_5xx_burst_is_retried_with_backoff(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=30)
    sandbox.inject("server_error", count=3, status=503, job_id=job)
    run = run_tap(tap_config(sandbox, [sandbox.ref(job)]), sandbox=sandbox)

    assert run.error is None
    assert [r["status"] for r in run.requests] == [503, 503, 503, 200]
    assert "retrying" in run.logs
    assert_rows_exactly_once(run, job, 30)


def test_5xx_that_never_ends_gives_up_after_bounded_tries(sandbox: Sandbox) -> None:
    job, other = sandbox.add_job(rows=2), sandbox.add_job(rows=2)
    sandbox.inject("server_error", status=500, job_id=job)
    run = run_tap(tap_config(sandbox, [sandbox.ref(job), sandbox.ref(other)]), sandbox=sandbox)

    assert isinstance(run.error, JobsFailedError)
    assert job in str(run.error)
    assert f"gave up after {client.MAX_TRIES} tries" in str(run.error)
    assert job_requests(run).count(job) == client.MAX_TRIES
    assert [j["job_id"] for j in run.jobs] == [other]


def test_backoff_waits_grow_and_carry_jitter() -> None:
    waits = client.PrismStream.backoff_wait_generator(t.cast("t.Any", None))
    next(waits)
    seconds = [waits.send(RuntimeError("boom")) for _ in range(6)]
    caps = [min(client.INITIAL_RETRY_DELAY * 2**n, client.MAX_RETRY_DELAY) for n in range(6)]
    for wait, cap in zip(seconds, caps, strict=True):
        assert 0.75 * cap <= wait <= cap


def test_timeout_is_retried(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=10)
    slow = sandbox.inject("latency", seconds=3, count=1, job_id=job)
    run = run_tap(
        tap_config(sandbox, [sandbox.ref(job)], request_timeout_seconds=0.5), sandbox=sandbox
    )

    assert run.error is None
    assert slow.fired == 1
    assert "Read timed out" in run.logs
    assert_rows_exactly_once(run, job, 10)


def test_endless_timeouts_do_not_stall_the_run(sandbox: Sandbox) -> None:
    job, other = sandbox.add_job(rows=1), sandbox.add_job(rows=1)
    sandbox.inject("latency", seconds=2, job_id=job)
    started = time.monotonic()
    run = run_tap(
        tap_config(sandbox, [sandbox.ref(job), sandbox.ref(other)], request_timeout_seconds=0.3),
        sandbox=sandbox,
    )

    assert isinstance(run.error, JobsFailedError)
    assert job in str(run.error)
    assert "timed out" in str(run.error)
    assert [j["job_id"] for j in run.jobs] == [other]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("fault", ["drop_connection", "truncate_body"])
def test_body_cut_in_transit_is_refetched_and_emitted_exactly_once(
    sandbox: Sandbox, fault: str
) -> None:
    job = sandbox.add_job(rows=20_000, failed_every=9, existing_every=4)
    sandbox.inject(fault, count=1, job_id=job)
    run = run_tap(tap_config(sandbox, [sandbox.ref(job)]), sandbox=sandbox)

    assert run.error is None
    assert len(job_requests(run)) == 2
    assert_rows_exactly_once(run, job, 20_000)
    assert [j["results_count"] for j in run.jobs] == [20_000]


@pytest.mark.parametrize(
    ("fault", "options", "reason"),
    [
        ("malformed_json", {}, "not valid JSON"),
        ("missing_fields", {"fields": ["status"]}, "status is missing"),
        ("missing_fields", {"fields": ["total"]}, "total is missing"),
        ("unexpected_status", {"value": "paused"}, "status is 'paused'"),
        ("results_wrong_type", {"value": "unavailable"}, "results is not a list"),
    ],
)
def test_unusable_body_fails_that_job_names_it_and_leaves_it_for_the_next_run(
    sandbox: Sandbox, fault: str, options: dict[str, t.Any], reason: str
) -> None:
    bad, good = sandbox.add_job(rows=5), sandbox.add_job(rows=5)
    sandbox.inject(fault, job_id=bad, **options)
    config = tap_config(sandbox, [sandbox.ref(bad), sandbox.ref(good)])
    run = run_tap(config, sandbox=sandbox)

    assert isinstance(run.error, JobsFailedError)
    assert bad in str(run.error)
    assert reason in str(run.error)
    # Unusable answers are not retried within the run: they spend quota for nothing.
    assert job_requests(run).count(bad) == 1
    assert [j["job_id"] for j in run.jobs] == [good]
    assert all(r["job_id"] == good for r in run.results)
    assert run.ledger()[sandbox.ref(bad)]["status"] is None

    sandbox.clear_faults()
    rerun = run_tap(config, run.state, sandbox=sandbox)
    assert rerun.error is None
    assert job_requests(rerun) == [bad]
    assert_rows_exactly_once(rerun, bad, 5)


def test_request_budget_stops_requests_and_the_next_run_continues(sandbox: Sandbox) -> None:
    jobs = [sandbox.add_job(rows=2) for _ in range(5)]
    config = tap_config(sandbox, [sandbox.ref(j) for j in jobs], max_requests_per_run=2)

    first = run_tap(config, sandbox=sandbox)
    assert first.error is None
    # Requests overlap, so the log's order is the servers'; which jobs is the point.
    assert sorted(job_requests(first)) == sorted(jobs[:2])
    assert "left for the next run: 3 (request budget)" in first.logs
    assert "Run summary: 2 requests answered;" in first.logs

    second = run_tap(config, first.state, sandbox=sandbox)
    assert sorted(job_requests(second)) == sorted(jobs[2:4])
    third = run_tap(config, second.state, sandbox=sandbox)
    assert job_requests(third) == jobs[4:]
    assert run_tap(config, third.state, sandbox=sandbox).requests == []


def test_request_budget_serves_the_longest_waiting_job_first(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [sandbox.add_job(rows=100_000, status="processing") for _ in range(3)]
    config = tap_config(sandbox, [sandbox.ref(j) for j in jobs], max_requests_per_run=1)
    state: dict[str, t.Any] | None = None
    requested: list[str] = []
    for _ in range(6):
        run = run_tap(config, state, sandbox=sandbox)
        assert run.error is None
        requested += job_requests(run)
        state = run.state
    # Processing jobs are polled every run; a budget of one rotates through them.
    assert requested == jobs + jobs


def test_budget_spent_by_retries_leaves_the_job_for_the_next_run(sandbox: Sandbox) -> None:
    job = sandbox.add_job(rows=3)
    sandbox.inject("server_error", count=2, job_id=job)
    config = tap_config(sandbox, [sandbox.ref(job)], max_requests_per_run=2)
    run = run_tap(config, sandbox=sandbox)

    assert run.error is None
    assert len(run.requests) == 2
    assert run.jobs == []
    assert "left for the next run: 1 (request budget)" in run.logs
    rerun = run_tap(config, run.state, sandbox=sandbox)
    assert_rows_exactly_once(rerun, job, 3)


@pytest.mark.parametrize(
    ("status", "should_retry", "retried"),
    [(503, "false", False), (400, "true", True), (503, None, True), (400, None, False)],
)
def test_x_should_retry_from_the_api_is_obeyed(
    status: int, should_retry: str | None, retried: bool
) -> None:
    tap = TapPrismImports(config={"api_key": "k", "api_url": "http://127.0.0.1:9"})
    stream = t.cast("client.PrismStream", tap.streams["import_jobs"])
    response = requests.Response()
    response.status_code = status
    response.url = "http://127.0.0.1:9/v2/prism/team/imports/job"
    if should_retry is not None:
        response.headers["x-should-retry"] = should_retry
    expected = RetriableAPIError if retried else JobFetchError
    with pytest.raises(expected):
        stream.validate_response(response)


TEAM = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"


def canned_body(rows: int, *, broken_at: int | None = None) -> bytes:
    results = [
        json.dumps({"id": f"00000000-0000-4000-8000-{i:012d}", "created": True, "error": None})
        for i in range(rows)
    ]
    if broken_at is not None:
        results[broken_at] += " @"
    return (
        b'{"job_id":"job_1","status":"complete","total":%d,"results":[' % rows
        + ",".join(results).encode()
        + b'],"succeeded":%d}' % rows
    )


def test_body_cut_without_content_length_is_refetched() -> None:
    body = canned_body(3000)
    cut = http_response(body[: len(body) // 2], length=None)
    with StubApi([cut, http_response(body, length=None)]) as api:
        config = {"api_key": "k", "api_url": api.url, "job_ids": [f"{TEAM}/job_1"]}
        run = run_tap(config)
    assert run.error is None
    assert api.requests == 2
    assert [r["row_index"] for r in run.results] == list(range(3000))


def test_malformed_json_early_in_a_large_body_is_not_retried() -> None:
    broken = http_response(canned_body(5000, broken_at=10))
    with StubApi([broken]) as api:
        config = {"api_key": "k", "api_url": api.url, "job_ids": [f"{TEAM}/job_1"]}
        run = run_tap(config)
    assert isinstance(run.error, JobsFailedError)
    assert "not valid JSON" in str(run.error)
    assert api.requests == 1
    assert run.results == []


def test_redirect_stops_the_run_naming_api_url() -> None:
    moved = http_response(
        b"", status="301 Moved Permanently", headers={"Location": "https://elsewhere.example/"}
    )
    with StubApi([moved]) as api:
        jobs = [f"{TEAM}/job_{n}" for n in range(5)]
        run = run_tap({"api_key": "k", "api_url": api.url, "job_ids": jobs})
    assert run.error is not None
    assert "`api_url`" in str(run.error)
    assert "elsewhere.example" in str(run.error)
    assert api.requests == 1


def test_retry_after_zero_backs_off_instead_of_retrying_at_once() -> None:
    tap = TapPrismImports(config={"api_key": "k", "api_url": "http://127.0.0.1:9"})
    stream = t.cast("client.PrismStream", tap.streams["import_jobs"])
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "0"
    with pytest.raises(RetriableAPIError) as caught:
        stream.validate_response(response)
    assert not isinstance(caught.value, client.ThrottledError)


def test_budget_spent_while_waiting_ends_the_wait_at_once(sandbox: Sandbox) -> None:
    jobs = [sandbox.add_job(rows=100_000, status="processing") for _ in range(2)]
    config = tap_config(
        sandbox,
        [sandbox.ref(j) for j in jobs],
        wait_for_completion=True,
        poll_interval_seconds=8,
        max_requests_per_run=3,
    )
    started = time.monotonic()
    run = run_tap(config, sandbox=sandbox)

    assert run.error is None
    assert len(run.requests) == 3
    assert [(j["job_id"], j["status"]) for j in run.jobs] == [
        (jobs[0], "processing"),
        (jobs[1], "processing"),
    ]
    # The third poll could not be sent; nothing waits for the fourth.
    assert time.monotonic() - started < 8 + 5
    assert "left for the next run: none" in run.logs


def test_request_timeout_bounds_the_whole_request_not_each_read() -> None:
    """A body trickled over ~4 s, each part well within a socket read timeout."""
    body = canned_body(200)
    step = len(body) // 8 + 1
    parts = [body[i : i + step] for i in range(0, len(body), step)]
    route = Route([http_response(parts[0], length=len(body)), *parts[1:]], pause_seconds=0.5)
    with StubApi() as api:
        api.routes[f"/v2/prism/{TEAM}/imports/job_1"] = route
        config = {
            "api_key": "k",
            "api_url": api.url,
            "job_ids": [f"{TEAM}/job_1"],
            "request_timeout_seconds": 1,
        }
        started = time.monotonic()
        run = run_tap(config)
        elapsed = time.monotonic() - started
    assert isinstance(run.error, JobsFailedError)
    assert "took longer than `request_timeout_seconds` (1 s)" in str(run.error)
    assert run.results == []
    assert api.requests == client.MAX_TRIES
    # Each try ends about 1 s in, not when the 4-second body would have ended.
    assert elapsed < client.MAX_TRIES * 2.5
