"""A wrong setting never costs data: the tap run as a command, with a user's first mistakes.

The rule: no single run with a wrong ``api_url``, ``team_id`` or ``api_key`` may change
what later runs load; once the setting is fixed, the next run loads every job exactly
as if the mistake had never happened.
"""

from __future__ import annotations

import datetime
import json
import typing as t

import pytest
from helpers.stub_api import Route, StubApi, http_response
from helpers.tap_runner import run_cli, singer_messages

from prism_sandbox import DEMO_TEAM_ID

if t.TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from pathlib import Path

    from prism_sandbox import Sandbox

OTHER_TEAM = "0f0f0f0f-0000-4000-8000-000000000002"


def messages_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, t.Any]]:
    return singer_messages(result.stdout)


def records(result: subprocess.CompletedProcess[str], stream: str) -> list[dict[str, t.Any]]:
    return [
        m["record"] for m in messages_of(result) if m["type"] == "RECORD" and m["stream"] == stream
    ]


def last_state(result: subprocess.CompletedProcess[str]) -> dict[str, t.Any]:
    states = [m["value"] for m in messages_of(result) if m["type"] == "STATE"]
    return states[-1] if states else {}


def ledger(state: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    jobs: dict[str, dict[str, t.Any]] = state["bookmarks"]["import_jobs"]["jobs"]
    return jobs


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if "| ERROR" in line]


def summary(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in result.stderr.splitlines() if "Run summary" in line)


def loaded(result: subprocess.CompletedProcess[str]) -> tuple[set[tuple[str, str]], set[t.Any]]:
    """The jobs (id, status) and rows a run emitted, without the moment they were fetched."""
    jobs = {(j["job_id"], j["status"]) for j in records(result, "import_jobs")}
    rows = {
        (r["job_id"], r["row_index"], r["record_id"], r["outcome"], r["source_key"])
        for r in records(result, "import_results")
    }
    return jobs, rows


def config_for(sandbox: Sandbox, refs: list[str], **settings: t.Any) -> dict[str, t.Any]:
    return {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids": refs, **settings}


def log_line(
    team_id: str,
    status: int,
    response: dict[str, t.Any],
    *,
    location: str | None = None,
    input_keys: list[str] | None = None,
    submitted_at: datetime.datetime | None = None,
) -> str:
    moment = submitted_at or datetime.datetime.now(datetime.timezone.utc)
    line = {
        "v": 1,
        "team_id": team_id,
        "object_type": "contact",
        "submitted_at": moment.isoformat(),
        "http_status": status,
        "location": location,
        "idempotency_key": None,
        "response": response,
    }
    if input_keys is not None:
        line["input_keys"] = input_keys
    return json.dumps(line) + "\n"


def sync_line(team_id: str, rows: int = 2) -> str:
    results = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "created": True, "existing": False}
        for i in range(rows)
    ]
    response = {"job_id": None, "status": "complete", "total": rows, "results": results}
    return log_line(team_id, 200, response, input_keys=[f"crm-{i}" for i in range(rows)])


def async_line(sandbox: Sandbox, job_id: str, rows: int) -> str:
    response = {"job_id": job_id, "status": "processing", "total": rows}
    location = f"/v2/prism/{sandbox.team_id}/imports/{job_id}"
    return log_line(sandbox.team_id, 202, response, location=location)


# --- api_url -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/v2", "/v2/", "/v2/prism", "/v2/prism/", "/api/imports"])
def test_an_api_url_ending_in_the_apis_own_path_is_a_configuration_error(
    sandbox: Sandbox, tmp_path: Path, suffix: str
) -> None:
    jobs = [sandbox.ref(sandbox.add_job(rows=2)) for _ in range(3)]
    state = {"bookmarks": {"import_jobs": {"jobs_format": 1, "jobs": {}}}}
    result = run_cli(
        tmp_path, {**config_for(sandbox, jobs), "api_url": sandbox.base_url + suffix}, state=state
    )
    assert result.returncode == 1
    errors = error_lines(result)
    assert len(errors) == 1, errors
    assert "`api_url`" in errors[0]
    assert "set it to the API's root" in errors[0]
    # Nothing went out: no request, no record, no STATE.
    assert sandbox.requests == []
    assert result.stdout == ""


@pytest.mark.parametrize("api_url", ["htp://127.0.0.1:9", "127.0.0.1:9", "http://127.0.0.1:x"])
def test_a_malformed_api_url_is_one_error_before_any_message(tmp_path: Path, api_url: str) -> None:
    jobs = [f"{DEMO_TEAM_ID}/job_{n}" for n in range(6)]
    state = {"bookmarks": {"import_jobs": {"jobs_format": 1, "jobs": {}}}}
    result = run_cli(tmp_path, {"api_key": "k", "api_url": api_url, "job_ids": jobs}, state=state)
    assert result.returncode == 1
    errors = error_lines(result)
    assert len(errors) == 1, errors
    assert "`api_url`" in errors[0]
    assert result.stdout == ""
    assert "Run summary" not in result.stderr


def test_every_bad_setting_is_named_in_one_error(tmp_path: Path) -> None:
    config = {"api_url": "ftp://x", "team_id": "team-one", "job_ids": ["job_1", "T J"]}
    result = run_cli(tmp_path, config)
    assert result.returncode == 1
    assert len(error_lines(result)) == 1
    for named in ("`api_url`", "No API key", "`team_id`", "contains whitespace"):
        assert named in result.stderr
    assert result.stdout == ""


def test_a_proxy_prefix_in_api_url_is_kept(tmp_path: Path) -> None:
    body = (
        b'{"job_id":"job_1","status":"complete","total":1,"results":[{"id":null,"created":true}]}'
    )
    path = f"/prism-proxy/v2/prism/{DEMO_TEAM_ID}/imports/job_1"
    with StubApi(responses=[http_response(b"{}", status="500 Oops")]) as api:
        api.routes[path] = Route([http_response(body)])
        config = {
            "api_key": "k",
            "api_url": f"{api.url}/prism-proxy",
            "job_ids": [f"{DEMO_TEAM_ID}/job_1"],
        }
        result = run_cli(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert len(records(result, "import_results")) == 1


def test_a_mistyped_api_url_costs_no_data(sandbox: Sandbox, tmp_path: Path) -> None:
    done = sandbox.add_job(rows=30, failed_every=7)
    running = sandbox.add_job(rows=50, status="processing")
    logged = sandbox.add_job(rows=20)
    log = tmp_path / "imports.jsonl"
    log.write_text(sync_line(sandbox.team_id) + async_line(sandbox, logged, 20), encoding="utf-8")
    right = config_for(sandbox, [sandbox.ref(done), sandbox.ref(running)], import_log=str(log))
    wrong = {**right, "api_url": f"{sandbox.base_url}/prism-proxy"}

    mistaken = run_cli(tmp_path, wrong)
    assert mistaken.returncode == 1
    errors = error_lines(mistaken)
    assert len(errors) == 1, errors
    assert f"`api_url` ({sandbox.base_url}/prism-proxy)" in errors[0]
    assert "`team_id`" in errors[0]
    assert f"GET {sandbox.base_url}/prism-proxy/v2/prism/{sandbox.team_id}/imports/" in errors[0]
    assert sandbox.api_key not in mistaken.stderr
    state = last_state(mistaken)
    assert all(entry.get("status") != "not_found" for entry in ledger(state).values())

    fixed = run_cli(tmp_path, right, state=state)
    assert fixed.returncode == 0, fixed.stderr
    # What a run from scratch with the right setting loads, the sync import aside
    # (the mistaken run already loaded it: the log needs no request).
    clean = run_cli(tmp_path, right)
    clean_jobs, clean_rows = loaded(clean)
    fixed_jobs, fixed_rows = loaded(fixed)
    async_jobs = {(job, status) for job, status in clean_jobs if not job.startswith("sync-")}
    assert fixed_jobs == async_jobs
    assert fixed_rows == {row for row in clean_rows if not row[0].startswith("sync-")}
    assert {job for job, _ in fixed_jobs} == {done, running, logged}


def test_a_mistyped_api_url_with_one_job_is_asked_again_once_fixed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.add_job(rows=5)
    right = config_for(sandbox, [sandbox.ref(job)])
    mistaken = run_cli(tmp_path, {**right, "api_url": f"{sandbox.base_url}/typo"})
    # One job of unknown age answering 404 may simply have expired: marked gone there.
    assert mistaken.returncode == 0, mistaken.stderr
    assert "gone (404 at this api_url)" in summary(mistaken)
    fixed = run_cli(tmp_path, right, state=last_state(mistaken))
    assert fixed.returncode == 0, fixed.stderr
    assert len(records(fixed, "import_results")) == 5
    again = run_cli(tmp_path, right, state=last_state(fixed))
    assert "no request was needed (the API key was not used this run)" in summary(again)


def test_a_corrected_team_id_asks_its_jobs_again(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(api_keys=["key"], team_ids=[DEMO_TEAM_ID, OTHER_TEAM], rate_limit=None)
    jobs = [sandbox.add_job(rows=3, team_id=DEMO_TEAM_ID) for _ in range(2)]
    config = {"api_key": "key", "api_url": sandbox.base_url, "job_ids": jobs}
    mistaken = run_cli(tmp_path, {**config, "team_id": OTHER_TEAM})
    assert mistaken.returncode == 1
    assert f"team {OTHER_TEAM}" in error_lines(mistaken)[0]
    fixed = run_cli(tmp_path, {**config, "team_id": DEMO_TEAM_ID}, state=last_state(mistaken))
    assert fixed.returncode == 0, fixed.stderr
    assert {j["job_id"] for j in records(fixed, "import_jobs")} == set(jobs)
    assert len(records(fixed, "import_results")) == 6


# --- 404s that cannot mean "expired" ------------------------------------------------------


def test_a_job_the_import_log_just_submitted_is_never_marked_gone(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    known = sandbox.add_job(rows=4)
    log = tmp_path / "imports.jsonl"
    # The second ref names a job the API does not know: its line is minutes old.
    log.write_text(
        async_line(sandbox, known, 4) + async_line(sandbox, "job_not_there", 4), encoding="utf-8"
    )
    config = config_for(sandbox, [], import_log=str(log))
    key = f"{sandbox.team_id}/job_not_there"

    first = run_cli(tmp_path, config)
    assert first.returncode == 1
    assert "though the API keeps it until" in error_lines(first)[0]
    entry = ledger(last_state(first))[key]
    assert entry["status"] != "not_found"
    assert entry["misses"]["count"] == 1
    assert len(records(first, "import_results")) == 4

    # Asked again only after an hour.
    sandbox.clear_requests()
    soon = run_cli(tmp_path, config, state=last_state(first))
    assert soon.returncode == 0, soon.stderr
    assert "1 waiting after a 404" in summary(soon)
    assert [r for r in sandbox.requests if r.get("job_id") == "job_not_there"] == []

    state = last_state(soon)
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    ledger(state)[key]["misses"]["last_at"] = two_hours_ago.isoformat()
    sandbox.clear_requests()
    later = run_cli(tmp_path, config, state=state)
    assert later.returncode == 1
    assert [r["job_id"] for r in sandbox.requests if r.get("job_id")] == ["job_not_there"]
    assert ledger(last_state(later))[key]["misses"]["count"] == 2


def test_misses_end_after_a_handful_of_requests(sandbox: Sandbox, tmp_path: Path) -> None:
    refs = [f"{sandbox.team_id}/job_typo_{n}" for n in range(2)]
    config = config_for(sandbox, refs)
    state: dict[str, t.Any] | None = None
    asked = 0
    for _ in range(6):
        result = run_cli(tmp_path, config, state=state)
        asked += len([r for r in sandbox.requests if r.get("job_id")])
        sandbox.clear_requests()
        state = last_state(result)
        for entry in ledger(state).values():
            if "misses" in entry:  # as if the run came a day later
                entry["misses"]["last_at"] = "2000-01-01T00:00:00+00:00"
                entry["requested_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    # Two mistyped ids, each asked four times in all, then marked gone.
    assert asked == 8
    assert state is not None
    assert all(entry["status"] == "not_found" for entry in ledger(state).values())


def test_refresh_not_found_jobs_asks_gone_jobs_again(sandbox: Sandbox, tmp_path: Path) -> None:
    ref = f"{sandbox.team_id}/job_gone"
    config = config_for(sandbox, [ref])
    first = run_cli(tmp_path, config)
    assert ledger(last_state(first))[ref]["status"] == "not_found"
    sandbox.clear_requests()
    assert run_cli(tmp_path, config, state=last_state(first)).returncode == 0
    assert sandbox.requests == []
    refreshed = run_cli(
        tmp_path, {**config, "refresh_not_found_jobs": True}, state=last_state(first)
    )
    assert refreshed.returncode == 0, refreshed.stderr
    assert [r["job_id"] for r in sandbox.requests] == ["job_gone"]


# --- the key --------------------------------------------------------------------------


def test_a_wrong_key_fails_before_the_import_log_emits_anything(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.add_job(rows=3)
    log = tmp_path / "imports.jsonl"
    log.write_text(sync_line(sandbox.team_id) + async_line(sandbox, job, 3), encoding="utf-8")
    config = {**config_for(sandbox, [], import_log=str(log)), "api_key": "not-the-key"}
    for args in ((), ("--test",)):
        result = run_cli(tmp_path, config, *args)
        assert result.returncode == 1, args
        assert "Check `api_key`" in result.stderr
        assert records(result, "import_jobs") == []
        assert records(result, "import_results") == []


def test_the_summary_says_when_the_key_was_not_used(sandbox: Sandbox, tmp_path: Path) -> None:
    job = sandbox.add_job(rows=2)
    config = config_for(sandbox, [sandbox.ref(job)])
    first = run_cli(tmp_path, config)
    assert "Run summary: 1 request answered;" in summary(first)
    second = run_cli(tmp_path, {**config, "api_key": "a-revoked-key"}, state=last_state(first))
    assert second.returncode == 0
    assert "no request was needed (the API key was not used this run)" in summary(second)


def test_a_mistyped_setting_name_is_named_with_the_setting_it_likely_means(
    tmp_path: Path,
) -> None:
    log = tmp_path / "imports.jsonl"
    log.write_text(sync_line(DEMO_TEAM_ID), encoding="utf-8")
    config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "import_logg": str(log)}
    result = run_cli(tmp_path, config)
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "| WARNING" in line]
    named = [line for line in warnings if "`import_logg`" in line]
    assert len(named) == 1, warnings
    assert "did you mean `import_log`?" in named[0]
    assert records(result, "import_jobs") == []
    # Once the name is fixed, the same log loads.
    fixed_config = {"api_url": "http://127.0.0.1:9", "api_key": "k", "import_log": str(log)}
    fixed = run_cli(tmp_path, fixed_config)
    assert fixed.returncode == 0
    assert len(records(fixed, "import_jobs")) == 1
    assert "is not a setting" not in fixed.stderr
