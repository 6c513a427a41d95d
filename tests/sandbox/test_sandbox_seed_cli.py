"""The demo seed, the control endpoints and the ``prism-sandbox`` command."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.api_requests import api_request, ref_path

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox, seed_demo
from prism_sandbox.cli import _auth, build_parser

HEADERS = {"x-api-key": DEMO_API_KEY}


def test_seed_demo_jobs(sandbox: Sandbox) -> None:
    refs = seed_demo(sandbox)
    assert len(refs) == 6
    assert all(ref.startswith(DEMO_TEAM_ID + "/job_") for ref in refs)
    contacts, organizations, deals, processing, failed, expired = (
        api_request(sandbox.base_url, "GET", ref_path(ref)) for ref in refs
    )
    for response in (contacts, organizations, deals):
        body = response.json()
        assert body["status"] == "complete"
        results = body["results"]
        assert any(r["created"] for r in results)
        assert any(r["existing"] for r in results)
        assert any(r["error"] for r in results)
        assert body["failed"] == sum(1 for r in results if r["error"])
    assert deals.json()["total"] == 5000
    running = processing.json()
    assert running["status"] == "processing"
    assert 0 < running["processed"] < running["total"]
    assert "results" not in running
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"]["code"] == "import_aborted"
    assert expired.status_code == 404

    sandbox.advance_clock(5 * 60)
    assert api_request(sandbox.base_url, "GET", ref_path(refs[3])).json()["status"] == "processing"
    sandbox.advance_clock(5 * 60)
    assert api_request(sandbox.base_url, "GET", ref_path(refs[3])).json()["status"] == "complete"


def test_seed_demo_is_reproducible() -> None:
    def run() -> tuple[list[str], Any]:
        with Sandbox(rate_limit=None) as sb:
            refs = seed_demo(sb)
            return refs, sb.snapshot(refs[0].split("/")[1])["results"]

    assert run() == run()


def test_seed_demo_is_idempotent(sandbox: Sandbox) -> None:
    assert seed_demo(sandbox) == seed_demo(sandbox)
    assert len(sandbox.job_ids()) == 6


def test_control_endpoints(sandbox: Sandbox) -> None:
    base = sandbox.base_url
    assert api_request(base, "GET", "/_sandbox/health", key=None).json()["ok"] is True
    made = api_request(
        base, "POST", "/_sandbox/jobs", key=None, body={"team_id": DEMO_TEAM_ID, "rows": 300}
    )
    assert made.status_code == 201
    job = made.json()
    assert job["ref"] == f"{DEMO_TEAM_ID}/{job['job_id']}"
    assert job["location"] == f"/v2/prism/{DEMO_TEAM_ID}/imports/{job['job_id']}"

    slow = api_request(
        base,
        "POST",
        "/_sandbox/jobs",
        key=None,
        body={"rows": 1000, "status": "processing", "job_id": "job_slow"},
    ).json()
    assert api_request(base, "GET", ref_path(slow["ref"])).json()["status"] == "processing"
    before = api_request(base, "GET", "/_sandbox/clock", key=None).json()["now"]
    after = api_request(
        base, "POST", "/_sandbox/clock", key=None, body={"advance_seconds": 30}
    ).json()["now"]
    assert after > before
    assert api_request(base, "GET", ref_path(slow["ref"])).json()["status"] == "complete"

    api_request(
        base, "POST", "/_sandbox/jobs/job_slow/fail", key=None, body={"code": "x", "message": "y"}
    )
    assert api_request(base, "GET", ref_path(slow["ref"])).json()["error"] == {
        "code": "x",
        "message": "y",
    }
    api_request(base, "POST", "/_sandbox/jobs/job_slow/complete", key=None)
    assert api_request(base, "GET", ref_path(slow["ref"])).json()["status"] == "complete"

    added = api_request(
        base, "POST", "/_sandbox/faults", key=None, body={"kind": "server_error", "count": 1}
    )
    assert added.json()["faults"][0]["kind"] == "server_error"
    assert api_request(base, "GET", ref_path(job["ref"])).status_code == 500
    api_request(
        base, "POST", "/_sandbox/faults", key=None, body=[{"kind": "rate_limit", "retry_after": 9}]
    )
    assert len(api_request(base, "GET", "/_sandbox/faults", key=None).json()["faults"]) == 2
    assert api_request(base, "DELETE", "/_sandbox/faults", key=None).status_code == 200
    assert api_request(base, "GET", ref_path(job["ref"])).status_code == 200

    logged = api_request(base, "GET", "/_sandbox/requests", key=None).json()["requests"]
    assert [entry["status"] for entry in logged] == [200, 200, 200, 200, 500, 200]
    api_request(base, "DELETE", "/_sandbox/requests", key=None)
    assert sandbox.requests == []

    seeded = api_request(base, "POST", "/_sandbox/seed", key=None, body={"name": "demo"}).json()[
        "refs"
    ]
    assert len(seeded) == 6
    assert (
        api_request(
            base, "POST", "/_sandbox/jobs", key=None, body={"rows": 1, "bogus": 1}
        ).status_code
        == 400
    )
    assert (
        api_request(base, "POST", "/_sandbox/jobs/job_nope/complete", key=None).status_code == 404
    )
    assert api_request(base, "GET", "/_sandbox/nothing", key=None).status_code == 404
    assert (
        api_request(
            base, "POST", "/_sandbox/clock", key=None, body={"advance_seconds": -1}
        ).status_code
        == 400
    )
    assert sandbox.requests == []


def test_config_file_and_flags(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.json"
    team = "0a1b2c3d-0000-4000-8000-00000000abcd"
    config.write_text(
        json.dumps({"api_keys": {"k1": None, "k2": [team]}, "team_ids": [DEMO_TEAM_ID]})
    )
    args = build_parser().parse_args(["--config", str(config), "--api-key", "k0"])
    keys, teams, defaulted = _auth(args)
    assert keys == {"k0": None, "k1": None, "k2": [team]}
    assert teams == [DEMO_TEAM_ID]
    assert not defaulted
    sb = Sandbox(api_keys=keys, team_ids=teams)
    assert sb.team_ids == [DEMO_TEAM_ID, team]
    assert _auth(build_parser().parse_args([]))[2]


def _command() -> list[str]:
    script = shutil.which("prism-sandbox") or str(Path(sys.executable).with_name("prism-sandbox"))
    if Path(script).exists():
        return [script]
    return [sys.executable, "-m", "prism_sandbox"]


def _wait_for(path: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    out, err = process.communicate()
    pytest.fail(f"sandbox did not start: {out} {err}")


def test_command_serves_seeded_jobs_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    refs_file = tmp_path / "refs.txt"
    log = tmp_path / "requests.jsonl"
    process = subprocess.Popen(
        [
            *_command(),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--seed",
            "demo",
            "--refs-file",
            str(refs_file),
            "--request-log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(_wait_for(port_file, process))
        base = f"http://127.0.0.1:{port}"
        lines = [
            line for line in refs_file.read_text().splitlines() if line and not line.startswith("#")
        ]
        assert len(lines) == 6
        assert lines[1].startswith(f"/v2/prism/{DEMO_TEAM_ID}/imports/job_")
        response = api_request(base, "GET", ref_path(lines[0]))
        assert response.status_code == 200
        assert response.json()["status"] == "complete"
        api_request(base, "POST", "/_sandbox/clock", key=None, body={"advance_seconds": 600})
        assert api_request(base, "GET", ref_path(lines[3])).json()["status"] == "complete"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"listening on http://127.0.0.1:{port}" in out
    assert DEMO_API_KEY in out
    assert DEMO_TEAM_ID in out
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["status"] for entry in entries] == [200, 200]


def test_command_exits_cleanly_on_sigint(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [*_command(), "--port", "0", "--port-file", str(port_file), "--api-key", "k",
         "--team-id", DEMO_TEAM_ID],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for(port_file, process)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert DEMO_API_KEY not in out


def test_fault_flags() -> None:
    from prism_sandbox.cli import _faults  # noqa: PLC0415

    args = build_parser().parse_args(
        [
            "--fail-next", "2", "--error-status", "503", "--throttle-next", "1",
            "--retry-after", "Wed, 21 Oct 2026 07:28:00 GMT", "--drop-next", "1",
            "--truncate-next", "1", "--malformed-next", "1", "--fault-job", "job_a",
            "--error-rate", "0.1", "--fault", '{"kind": "missing_fields", "count": 1}',
        ]
    )  # fmt: skip
    made = _faults(args)
    faults = {fault.kind: fault for fault in made if fault.probability == 1.0}
    assert [f.probability for f in made if f.kind == "server_error"] == [1.0, 0.1]
    assert faults["server_error"].count == 2
    assert faults["server_error"].status == 503
    assert faults["server_error"].job_id == "job_a"
    assert faults["rate_limit"].retry_after == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert {"drop_connection", "truncate_body", "malformed_json", "missing_fields"} <= set(faults)
    assert build_parser().parse_args(["--retry-after", "5"]).retry_after == 5
