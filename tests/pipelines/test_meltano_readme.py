"""The README's "Use with Meltano", followed as a new user would, into PostgreSQL.

In a fresh ``meltano init`` project: the README's YAML is pasted into ``meltano.yml``, and
each ``meltano …`` line of its shell block runs as written, in bash, with the variables it
uses (``PRISM_API_KEY``, ``PGHOST`` …) set to the sandbox's key and a throwaway PostgreSQL
server. The one exception is ``meltano install``, which would fetch the tap from its git
URL: the project borrows this repository's installed plugins instead. The API's URL comes
from env ``MICRO_BASE_URL``, the tap's own fallback, which works because the definition
gives ``api_url`` no value.

The documented schedule runs twice: first from the README's line, which loads exactly
the jobs, row counts and outcomes the sandbox serves, with no traceback; then from the
crontab line of docs/meltano.md, run as cron runs it (``/bin/sh`` with cron's bare
environment, so everything must come from the project: ``.env`` and ``meltano.yml``),
which under the same state id asks only about the job still processing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from helpers.pipeline_helpers import (
    MELTANO,
    ROOT,
    RUN_TIMEOUT_SECONDS,
    Postgres,
    borrow_plugin,
    job_refs_file,
    new_project,
    offline_env,
)

from prism_sandbox import seed_demo

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

SECTION = re.compile(r"^## Use with Meltano\n(.*?)^## ", re.MULTILINE | re.DOTALL)
BLOCK = re.compile(r"^```(yaml|bash|crontab)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
STATE_ID = "dev:tap-prism-imports-batch-to-target-postgres"
# What cron gives a job (Debian's cron): no venv, none of the tap's or loader's variables.
CRON_PATH = "/usr/bin:/bin"


def readme_blocks() -> tuple[str, list[str]]:
    """The section's YAML, and the ``meltano …`` lines of its shell block."""
    section = SECTION.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert section is not None, "README.md has no '## Use with Meltano' section"
    blocks = BLOCK.findall(section.group(1))
    (paste,) = [text for language, text in blocks if language == "yaml"]
    (shell,) = [text for language, text in blocks if language == "bash"]
    commands = [line for line in shell.splitlines() if line.startswith("meltano ")]
    assert len(commands) == len(shell.strip().splitlines()), "only meltano lines expected"
    return paste, commands


def crontab_line() -> tuple[str, str]:
    """The schedule and the command of docs/meltano.md's crontab line."""
    blocks = BLOCK.findall((ROOT / "docs" / "meltano.md").read_text(encoding="utf-8"))
    (line,) = [text.strip() for language, text in blocks if language == "crontab"]
    fields = line.split(maxsplit=5)
    return " ".join(fields[:5]), fields[5]


def outcome(result: dict[str, Any]) -> str:
    if result["error"]:
        return "failed"
    return "created" if result["created"] else "existing"


def served(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """What GET answered for each job: status, total, and how many rows had each outcome."""
    answered = {entry["job_id"] for entry in sandbox.requests if entry["status"] == 200}
    jobs = {}
    for job_id in answered:
        snapshot = sandbox.snapshot(job_id)
        results = snapshot.get("results")
        jobs[job_id] = {
            "status": snapshot["status"],
            "total": snapshot["total"],
            "results_count": None if results is None else len(results),
            "outcomes": Counter(outcome(r) for r in results or []),
        }
    return jobs


def loaded(postgres: Postgres) -> dict[str, dict[str, Any]]:
    jobs = {
        row["job_id"]: {
            "status": row["status"],
            "total": row["total"],
            "results_count": row["results_count"],
            "outcomes": Counter(),
        }
        for row in postgres.rows(
            "SELECT job_id, status, total, results_count FROM prism.import_jobs"
        )
    }
    for row in postgres.rows(
        "SELECT job_id, outcome, count(*) AS n FROM prism.import_results GROUP BY 1, 2"
    ):
        jobs[row["job_id"]]["outcomes"][row["outcome"]] = row["n"]
    return jobs


def test_the_readme_path_loads_what_the_api_served(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    paste, commands = readme_blocks()
    schedule, cron_command = crontab_line()
    assert schedule == "0 * * * *"
    home = tmp_path
    project = new_project(home / "prism-meltano")
    with (project / "meltano.yml").open("a", encoding="utf-8") as meltano_yml:
        meltano_yml.write(paste)
    plugins = yaml.safe_load(paste)["plugins"]
    borrow_plugin(project, "extractors", "tap-prism-imports", plugins["extractors"][0]["pip_url"])
    borrow_plugin(project, "loaders", "target-postgres", plugins["loaders"][0]["pip_url"])
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "meltano").symlink_to(MELTANO)
    seed_demo(sandbox)
    job_refs_file(sandbox, project / "prism-jobs.txt")

    shell = {
        **offline_env(),
        "PATH": f"{MELTANO.parent}{os.pathsep}{os.environ['PATH']}",
        "MICRO_BASE_URL": sandbox.base_url,
        "PRISM_API_KEY": sandbox.api_key,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": postgres.user,
        "PGPASSWORD": postgres.password,
        "PGDATABASE": postgres.database,
    }
    assert commands[0] == "meltano install"
    for command in commands[1:]:
        run(["bash", "-c", command], project, shell)
    assert loaded(postgres) == served(sandbox)
    dotenv = (project / ".env").read_text(encoding="utf-8")
    for secret in (sandbox.api_key, postgres.password):
        assert secret in dotenv
        assert secret not in (project / "meltano.yml").read_text(encoding="utf-8")

    # cron has no MICRO_BASE_URL: the URL goes into the project, as a user's would.
    run(
        ["bash", "-c", f"meltano config set tap-prism-imports api_url {sandbox.base_url}"],
        project,
        shell,
    )
    processing = [job for job, facts in served(sandbox).items() if facts["status"] == "processing"]
    sandbox.clear_requests()
    cron = {
        "HOME": str(home),
        "LOGNAME": "prism",
        "PATH": CRON_PATH,
        "SHELL": "/bin/sh",
        # Meltano's own calls home stay off, as everywhere in these tests.
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
    }
    run(["/bin/sh", "-c", cron_command], home, cron)
    assert [entry["job_id"] for entry in sandbox.requests] == processing
    assert STATE_ID in run(["meltano", "state", "list"], project, shell).split()


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``command``; its output, which must hold no traceback, or fail with its end."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    return output
