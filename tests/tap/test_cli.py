"""The command as a scheduler runs it: exit codes, stdout hygiene, settings errors and secrets."""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

import pytest
from helpers.tap_runner import run_cli, singer_messages

from prism_sandbox import DEMO_TEAM_ID, Sandbox

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "sk-live-3f9a27c1d0b84e55a1c2e9f7b6d3a8c4"
OTHER_SECRET = "sk-live-d41d8cd98f00b204e9800998ecf8427e"


def test_stdout_carries_only_singer_messages_and_run_exits_0(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.add_job(rows=2500)
    config: dict[str, t.Any] = {"api_key": sandbox.api_key, "api_url": sandbox.base_url}
    config["job_ids"] = [sandbox.ref(job)]
    result = run_cli(tmp_path, config)

    assert result.returncode == 0, result.stderr
    messages = singer_messages(result.stdout)
    assert {m["type"] for m in messages} == {"SCHEMA", "RECORD", "STATE"}
    rows = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "import_results"]
    assert [m["record"]["row_index"] for m in rows] == list(range(2500))
    assert "Run summary: 1 request answered;" in result.stderr


def test_configuration_error_exits_non_zero_before_any_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": ["job_without_team", f"{DEMO_TEAM_ID}/../../admin"],
    }
    result = run_cli(tmp_path, config)

    assert result.returncode != 0
    assert "job_without_team" in result.stderr
    assert "has no team" in result.stderr
    assert "../../admin" in result.stderr
    assert sandbox.requests == []
    assert not [m for m in singer_messages(result.stdout) if m["type"] == "RECORD"]


@pytest.mark.parametrize(
    ("api_url", "reason"),
    [
        ("ftp://files.example.com", "is not an http(s) URL"),
        ("developers.micro.so", "is not an http(s) URL"),
        ("https://user:pass@developers.micro.so", "no credentials"),
    ],
)
def test_bad_api_url_is_a_configuration_error(tmp_path: Path, api_url: str, reason: str) -> None:
    config = {"api_key": SECRET, "api_url": api_url, "job_ids": [f"{DEMO_TEAM_ID}/job_1"]}
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert "`api_url`" in result.stderr
    assert reason in result.stderr


def test_plain_http_to_a_remote_host_warns_about_the_key(tmp_path: Path) -> None:
    config = {
        "api_key": SECRET,
        "api_url": "http://192.0.2.1:9",
        "job_ids": [f"{DEMO_TEAM_ID}/job_1"],
        "request_timeout_seconds": 0.01,
        "max_requests_per_run": 1,
    }
    # One request is allowed to a documentation-only address that cannot answer.
    result = run_cli(tmp_path, config)
    assert "clear text" in result.stderr


def test_env_settings_are_read_with_the_sdk_prefix(sandbox: Sandbox, tmp_path: Path) -> None:
    job = sandbox.add_job(rows=1)
    env = {
        "TAP_PRISM_IMPORTS_API_URL": sandbox.base_url,
        "TAP_PRISM_IMPORTS_JOB_IDS": json.dumps([sandbox.ref(job)]),
        "MICRO_API_KEY": sandbox.api_key,
    }
    result = run_cli(tmp_path, {}, "--config", "ENV", env=env)
    assert result.returncode == 0, result.stderr
    records = [m for m in singer_messages(result.stdout) if m["type"] == "RECORD"]
    assert len(records) == 2


def test_the_api_key_never_leaks_at_debug_level(tmp_path: Path) -> None:
    sandbox_keys = Sandbox(api_keys=[SECRET], team_ids=[DEMO_TEAM_ID], rate_limit=None)
    with sandbox_keys as api:
        good = api.add_job(rows=30, failed_every=3)
        api.inject("server_error", count=1, job_id=good)
        api.inject("drop_connection", count=1, job_id=good)
        bad = api.add_job(rows=3)
        api.inject("malformed_json", job_id=bad)
        debug = {"LOGLEVEL": "DEBUG", "TAP_PRISM_IMPORTS_LOGLEVEL": "DEBUG"}
        config = {"api_key": SECRET, "api_url": api.base_url, "job_ids": [good, bad]}
        config["team_id"] = DEMO_TEAM_ID
        outputs = [run_cli(tmp_path, config, env=debug)]
        # A revoked key: refused with 403, named by setting, never by value.
        refused = {**config, "api_key": OTHER_SECRET}
        outputs.append(run_cli(tmp_path, refused, env=debug))
        from_env = {**config, "api_key": None}
        outputs.append(run_cli(tmp_path, from_env, env={"MICRO_API_KEY": SECRET, **debug}))
        outputs.append(run_cli(tmp_path, config, "--about", "--format=json"))
        outputs.append(run_cli(tmp_path, config, "--discover"))

    assert outputs[0].returncode != 0  # the malformed job fails the run
    assert "DEBUG" in outputs[0].stderr
    assert outputs[1].returncode != 0
    assert "`api_key`" in outputs[1].stderr
    for output in outputs:
        for secret in (SECRET, OTHER_SECRET):
            assert secret not in output.stdout
            assert secret not in output.stderr
    # The sync runs' stdout is records and state, checked above as text, and JSON-escaped:
    for output in outputs[:3]:
        assert SECRET not in json.dumps(singer_messages(output.stdout))


def test_readme_settings_table_matches_about(tmp_path: Path) -> None:
    about = run_cli(tmp_path, {}, "--about", "--format=markdown")
    assert about.returncode == 0, about.stderr
    table = re.search(r"^## Settings\n\n(\|.*?)\n\n", about.stdout, re.MULTILINE | re.DOTALL)
    assert table is not None
    assert table.group(1) in README.read_text(encoding="utf-8")
