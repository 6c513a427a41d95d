"""BATCH mode: batch files written from the spool, rolled across jobs, claimed only once
announced."""

from __future__ import annotations

import gzip
import json
import re
import typing as t

from helpers.stub_api import Route, StubApi, http_response
from helpers.tap_runner import run_cli, run_tap, tap_config

if t.TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from prism_sandbox import Sandbox

VOLATILE = re.compile(r'"fetched_at":"[^"]*"')


def batch_settings(tmp_path: Path, rows_per_file: int) -> dict[str, t.Any]:
    return {
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{tmp_path}/batches", "prefix": "test-"},
            "batch_size": rows_per_file,
        }
    }


def messages_of(stdout: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def file_lines(url: str) -> list[str]:
    with gzip.open(url.removeprefix("file://"), "rt", encoding="utf-8") as file:
        return file.read().splitlines()


def claimed(message: dict[str, t.Any]) -> set[str]:
    """The jobs a STATE says were captured."""
    jobs = message["value"]["bookmarks"]["import_jobs"].get("jobs", {})
    return {key for key, entry in jobs.items() if entry.get("status")}


def test_batch_files_hold_exactly_the_records_of_the_record_path_rolled_across_jobs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sizes = (300, 2_500, 10, 0)
    jobs = [sandbox.add_job(rows=n, failed_every=7, existing_every=3) for n in sizes]
    jobs.append(sandbox.add_job(rows=40, status="processing"))
    config = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(job) for job in jobs],
    }
    records = run_cli(tmp_path, config)
    batches = run_cli(tmp_path, {**config, **batch_settings(tmp_path, 1_000)})
    assert records.returncode == 0, records.stderr
    assert batches.returncode == 0, batches.stderr

    expected: dict[str, list[str]] = {"import_jobs": [], "import_results": []}
    for message in messages_of(records.stdout):
        if message["type"] == "RECORD":
            line = json.dumps(message["record"], separators=(",", ":"), ensure_ascii=False)
            expected[message["stream"]].append(VOLATILE.sub("", line))
    written: dict[str, list[list[str]]] = {"import_jobs": [], "import_results": []}
    for message in messages_of(batches.stdout):
        assert message["type"] != "RECORD"
        if message["type"] == "BATCH":
            assert message["encoding"] == {"format": "jsonl", "compression": "gzip"}
            for url in message["manifest"]:
                written[message["stream"]].append(file_lines(url))
    for stream, files in written.items():
        lines = [VOLATILE.sub("", line) for file in files for line in file]
        assert sorted(lines) == sorted(expected[stream]), stream
    # Files roll every 1,000 rows whatever the jobs: not one per job, not one per run.
    rows = len(expected["import_results"])
    assert rows > 2_000
    assert [len(file) for file in written["import_results"]] == [1_000] * (rows // 1_000) + [
        rows % 1_000
    ]
    # Job records go out with the rows files they wait on, never one file per job.
    assert sum(len(file) for file in written["import_jobs"]) == len(jobs)
    assert len(written["import_jobs"]) <= len(written["import_results"]) + 1


def test_state_claims_a_job_only_after_its_batch_files_were_announced(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    jobs = [sandbox.add_job(rows=n) for n in (1_200, 30, 700, 5)]
    config = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(job) for job in jobs],
        **batch_settings(tmp_path, 2),  # a jobs file every 2 jobs
    }
    result = run_cli(tmp_path, config)
    assert result.returncode == 0, result.stderr
    announced_jobs: set[str] = set()
    announced_rows: set[str] = set()
    for message in messages_of(result.stdout):
        if message["type"] == "BATCH":
            for url in message["manifest"]:
                keys = {"{team_id}/{job_id}".format(**json.loads(line)) for line in file_lines(url)}
                target = announced_jobs if message["stream"] == "import_jobs" else announced_rows
                target |= keys
        elif message["type"] == "STATE":
            assert claimed(message) <= announced_jobs
            assert claimed(message) <= announced_rows
    assert claimed(messages_of(result.stdout)[-1]) == {sandbox.ref(job) for job in jobs}


def test_a_job_that_fails_does_not_hold_back_the_others_state(tmp_path: Path) -> None:
    team = "1f0c6a52-8a3e-4d5f-9b1c-2d3e4f5a6b7c"
    good = b'{"job_id":"job_1","status":"complete","total":1,"results":[{"id":null}]}'
    stub = StubApi()
    stub.routes[f"/v2/prism/{team}/imports/job_1"] = Route([http_response(good)])
    stub.routes[f"/v2/prism/{team}/imports/job_2"] = Route([http_response(b'{"status":"x"}')])
    with stub:
        config = {
            "api_key": "k",
            "api_url": stub.url,
            "job_ids": [f"{team}/job_1", f"{team}/job_2"],
            **batch_settings(tmp_path, 100),
        }
        result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert f"{team}/job_2" in result.stderr
    ledger = messages_of(result.stdout)[-1]["value"]["bookmarks"]["import_jobs"]["jobs"]
    assert ledger[f"{team}/job_1"]["status"] == "complete"
    assert ledger[f"{team}/job_2"]["status"] is None  # requested, nothing claimed


def test_batch_config_with_stream_maps_is_a_configuration_error(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(sandbox.add_job(rows=3))],
        "stream_maps": {"import_results": {"error_message": None}},
        **batch_settings(tmp_path, 100),
    }
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert "`batch_config` cannot be combined with `stream_maps`" in result.stderr
    assert sandbox.requests == []


def test_a_slow_run_cuts_its_files_on_time_so_claims_keep_up(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tap_prism_imports.streams.ROLL_SECONDS", 0.0)
    # A slow run's files are cut a minute apart, past the STATE ration; here, at once.
    monkeypatch.setattr("tap_prism_imports.state.MIN_STATE_INTERVAL_SECONDS", 0.0)
    jobs = [sandbox.add_job(rows=50) for _ in range(3)]
    config = tap_config(
        sandbox, [sandbox.ref(job) for job in jobs], **batch_settings(tmp_path, 100_000)
    )
    run = run_tap(config, sandbox=sandbox)
    assert run.error is None, run.logs
    rows_files = [
        m for m in run.messages if m["type"] == "BATCH" and m["stream"] == "import_results"
    ]
    assert len(rows_files) == len(jobs)  # far below batch_size, each cut by time
    claims = [len(claimed(m)) for m in run.messages if m["type"] == "STATE"]
    assert sorted(set(claims) - {0}) == [1, 2, 3]
