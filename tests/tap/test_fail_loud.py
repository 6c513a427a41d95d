"""Fail loud, lose nothing: the tap run as a command, as orchestrators and broken networks
treat it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import typing as t
from collections import Counter

import pytest
from helpers.stub_api import StubApi, http_response
from helpers.tap_runner import cli_command, cli_env, run_cli

if t.TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

TEAM = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"
BIG_JOB_ROWS = 200_000
ROWS_BEFORE_SIGNAL = 5_000


def _ledger(state: dict[str, t.Any]) -> dict[str, t.Any]:
    jobs: dict[str, t.Any] = state["bookmarks"]["import_jobs"]["jobs"]
    return jobs


def _run_and_signal(
    tmp_path: Path, config: dict[str, t.Any], big_job: str, signum: int
) -> tuple[int, list[dict[str, t.Any]]]:
    """Pipe the tap into this test as its consumer; signal it once part of ``big_job`` is out."""
    messages: list[dict[str, t.Any]] = []
    big_rows = 0
    signalled = False
    with subprocess.Popen(
        cli_command(tmp_path, config, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=cli_env(),
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            message = json.loads(line)  # every line parses: no STATE inside a RECORD
            messages.append(message)
            if message["type"] == "RECORD" and message["record"].get("job_id") == big_job:
                big_rows += message["stream"] == "import_results"
                if big_rows == ROWS_BEFORE_SIGNAL and not signalled:
                    process.send_signal(signum)
                    signalled = True
        code = process.wait(timeout=60)
    assert signalled, "the big job's rows never started"
    return code, messages


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_job_stops_at_a_line_boundary_and_claims_only_written_jobs(
    sandbox: Sandbox, tmp_path: Path, signum: int, exit_code: int
) -> None:
    small = sandbox.add_job(rows=30)
    big = sandbox.add_job(rows=BIG_JOB_ROWS)
    after = sandbox.add_job(rows=10)
    config = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(small), sandbox.ref(big), sandbox.ref(after)],
    }
    code, messages = _run_and_signal(tmp_path, config, big, signum)

    assert code == exit_code
    assert messages[-1]["type"] == "STATE"
    ledger = _ledger(messages[-1]["value"])
    assert ledger[f"{sandbox.team_id}/{small}"]["status"] == "complete"
    assert f"{sandbox.team_id}/{big}" not in ledger
    big_rows = [m for m in messages if m["type"] == "RECORD" and m["record"].get("job_id") == big]
    assert ROWS_BEFORE_SIGNAL <= len(big_rows) < BIG_JOB_ROWS

    rerun = run_cli(tmp_path, config, state=messages[-1]["value"])
    assert rerun.returncode == 0, rerun.stderr
    rows = Counter(
        (m["record"]["job_id"], m["record"]["row_index"])
        for m in [*messages, *map(json.loads, rerun.stdout.splitlines())]
        if m["type"] == "RECORD" and m["stream"] == "import_results"
    )
    # Every served row arrived; rows of the interrupted job may come twice (an upsert).
    served = {
        (job, i) for job, n in ((small, 30), (big, BIG_JOB_ROWS), (after, 10)) for i in range(n)
    }
    assert set(rows) == served
    assert all(rows[(small, i)] == 1 for i in range(30))
    assert all(count == 1 for (job, _), count in rows.items() if job == after)


def test_a_whole_body_that_is_not_json_is_requested_once(tmp_path: Path) -> None:
    prefix = b'{"job_id":"job_1","status":"complete","total":3,"results":[{"id":null'
    for body in (prefix, b""):
        with StubApi([http_response(body)]) as api:
            config = {"api_key": "k", "api_url": api.url, "job_ids": [f"{TEAM}/job_1"]}
            result = run_cli(tmp_path, config)
        assert result.returncode != 0
        assert "not valid JSON" in result.stderr
        assert api.requests == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_api_stops_the_run_naming_api_url(tmp_path: Path) -> None:
    api_url = f"http://127.0.0.1:{_closed_port()}"
    jobs = [f"{TEAM}/job_{n}" for n in range(30)]
    result = run_cli(tmp_path, {"api_key": "k", "api_url": api_url, "job_ids": jobs})
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, errors
    assert f"Cannot connect to the API at `api_url` {api_url}" in errors[0]
    assert "Connection refused" in errors[0]
    assert "30 jobs are left for the next run" in errors[0]
    assert "HTTPConnectionPool" not in result.stderr
    # One job's retries establish it; the other jobs are not tried at all.
    retries = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert len(retries) == 4
    assert all(jobs[0] in line for line in retries)
    summary = next(line for line in result.stderr.splitlines() if "Run summary" in line)
    assert "0 requests answered, 5 attempts without an answer" in summary
    assert "left for the next run: 30 (API unreachable)" in summary
    state = [json.loads(line) for line in result.stdout.splitlines()][-1]["value"]
    assert len(_ledger(state)) <= 1


def test_a_job_ids_file_with_a_byte_order_mark_is_read(sandbox: Sandbox, tmp_path: Path) -> None:
    job = sandbox.add_job(rows=2)
    refs = tmp_path / "refs.txt"
    refs.write_text(f"# saved on Windows\r\n{sandbox.ref(job)}\r\n", encoding="utf-8-sig")
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids_file": str(refs)}
    result = run_cli(tmp_path, config)
    assert result.returncode == 0, result.stderr
    records = [line for line in result.stdout.splitlines() if line.startswith('{"type":"RECORD"')]
    assert sum('"stream":"import_results"' in line for line in records) == 2


def test_an_error_the_tap_explains_ends_with_the_explanation_not_a_traceback(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.ref(sandbox.add_job(rows=2))
    config = {"api_key": "not-the-key", "api_url": sandbox.base_url, "job_ids": [job]}
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "An unhandled error" not in result.stderr
    last = [line for line in result.stderr.splitlines() if "METRIC" not in line][-1]
    assert "Check `api_key`" in last
    debug = run_cli(tmp_path, config, env={"LOGLEVEL": "DEBUG"})
    assert "Traceback" in debug.stderr


def test_dry_run_logs_no_error(sandbox: Sandbox, tmp_path: Path) -> None:
    jobs = [sandbox.ref(sandbox.add_job(rows=50)) for _ in range(2)]
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids": jobs}
    result = run_cli(tmp_path, config, "--test")
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr


def test_a_target_that_stops_reading_ends_the_run_in_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.ref(sandbox.add_job(rows=50_000))
    config = {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids": [job]}
    with subprocess.Popen(
        cli_command(tmp_path, config, None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()  # the target read one message, then died
        process.stdout.close()
        stderr = process.stderr.read()
        code = process.wait(timeout=60)
    assert code != 0
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert stderr.count("The target stopped reading") == 1
