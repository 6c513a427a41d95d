"""Under Meltano: the tap's warnings read as warnings, and `meltano config test` checks the key."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from helpers.pipeline_helpers import Meltano, job_refs_file, require_plugin

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline


def test_a_tap_warning_shows_as_a_warning_under_meltano_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    require_plugin("extractors", "tap-prism-imports")
    require_plugin("loaders", "target-jsonl")
    job = sandbox.add_job(rows=3)
    refs = job_refs_file(sandbox, tmp_path / "refs", [job])
    with refs.open("a", encoding="utf-8") as file:
        file.write(f"{sandbox.team_id}/job_gone\n")
    meltano = Meltano.for_sandbox(sandbox, tmp_path, refs)
    output = meltano.run(
        "tap-prism-imports",
        "target-jsonl",
        extra_env={"TARGET_JSONL_DESTINATION_PATH": str(tmp_path)},
    )
    gone = [line for line in output.splitlines() if "job_gone: not found" in line]
    assert gone
    assert re.search(r"\[warning\s*\] tap-prism-imports Job ", gone[0]), gone[0]
    summary = next(line for line in output.splitlines() if "Run summary" in line)
    assert re.search(r"\[info\s*\] tap-prism-imports Run summary", summary), summary


def sync_and_async_log(sandbox: Sandbox, path: Path) -> Path:
    """A log whose first line is a sync import (no request) and whose second is a job."""
    job = sandbox.add_job(rows=2)
    lines = [
        {
            "response": {"job_id": None, "status": "complete", "total": 1, "results": [{}]},
            "http_status": 200,
            "location": None,
        },
        {
            "response": {"job_id": job, "status": "processing", "total": 2},
            "http_status": 202,
            "location": f"/v2/prism/{sandbox.team_id}/imports/{job}",
        },
    ]
    path.write_text(
        "".join(
            json.dumps(
                {
                    "v": 1,
                    "team_id": sandbox.team_id,
                    "object_type": "contact",
                    "submitted_at": "2026-12-01T10:00:00Z",
                    "idempotency_key": None,
                    **line,
                }
            )
            + "\n"
            for line in lines
        ),
        encoding="utf-8",
    )
    return path


def test_meltano_config_test_fails_with_a_wrong_key_when_a_job_is_to_be_asked(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    require_plugin("extractors", "tap-prism-imports")
    empty_refs = tmp_path / "refs"
    empty_refs.write_text("", encoding="utf-8")
    meltano = Meltano.for_sandbox(sandbox, tmp_path, empty_refs)
    log = sync_and_async_log(sandbox, tmp_path / "imports.jsonl")
    env = {"TAP_PRISM_IMPORTS_IMPORT_LOG": str(log)}

    wrong = meltano.command(
        "config",
        "test",
        "tap-prism-imports",
        extra_env={**env, "TAP_PRISM_IMPORTS_API_KEY": "not-the-key"},
    )
    assert wrong.returncode != 0
    assert "Check `api_key`" in wrong.stdout + wrong.stderr

    right = meltano.command("config", "test", "tap-prism-imports", extra_env=env)
    assert right.returncode == 0, right.stdout + right.stderr
    assert "Plugin configuration is valid" in right.stdout + right.stderr
