"""Two runs of one pipeline at once, under Meltano, into PostgreSQL.

Meltano records each run in its system database and refuses to start one whose state
id has a run still going ("Another '…' pipeline is already running"). A run is held
open here by a job still processing (``wait_for_completion``), and while it waits:

1. a second run with the same system database is refused at once, before its tap
   starts: it asks the API nothing;
2. a run with another system database (another host), sharing only a file state
   backend, is not refused: a state backend locks reads and writes of the state, not
   runs. Both runs ask about the job and both load it, and since the loader upserts on
   the primary key, nothing is loaded twice.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

import pytest
from helpers.pipeline_helpers import RUN_TIMEOUT_SECONDS, Meltano, Postgres, job_refs_file

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

PIPELINE = ("tap-prism-imports", "target-postgres")
STATE_ID = "dev:tap-prism-imports-to-target-postgres"
ROWS = 50
WAIT_SECONDS = 60


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_SECONDS} s for {what}"
        time.sleep(0.2)


def process_output(process: subprocess.Popen[str], log: Path) -> str:
    """The output of a run started in the background, once it ended well."""
    returncode = process.wait(timeout=RUN_TIMEOUT_SECONDS)
    output = log.read_text(encoding="utf-8")
    assert returncode == 0, output[-4000:]
    return output


def asked(sandbox: Sandbox, job: str) -> int:
    return sum(1 for entry in sandbox.requests if entry["job_id"] == job)


def meltano_on(
    system: Path, sandbox: Sandbox, postgres: Postgres, refs: Path, state: Path
) -> Meltano:
    system.mkdir()
    meltano = Meltano.for_sandbox(sandbox, system, refs)
    meltano.env.update(postgres.target_env)
    meltano.env.update(
        {
            "MELTANO_STATE_BACKEND_URI": state.as_uri(),
            "TAP_PRISM_IMPORTS_WAIT_FOR_COMPLETION": "true",
            "TAP_PRISM_IMPORTS_POLL_INTERVAL_SECONDS": "1",
            "TAP_PRISM_IMPORTS_MAX_WAIT_SECONDS": str(WAIT_SECONDS),
        }
    )
    return meltano


def test_a_second_run_is_refused_on_one_system_database_and_harmless_on_two(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    waiting = sandbox.add_job(rows=ROWS, status="processing", rows_per_second=0.001)
    other = sandbox.add_job(rows=3)
    not_asked = sandbox.add_job(rows=3)
    state = tmp_path / "state"
    state.mkdir()
    first = meltano_on(
        tmp_path / "host-a",
        sandbox,
        postgres,
        job_refs_file(sandbox, tmp_path / "refs-a", [waiting]),
        state,
    )
    running = first.start(tmp_path / "first.log", *PIPELINE)
    started = [running]
    try:
        wait_until(lambda: asked(sandbox, waiting) > 0, "the first run to ask about its job")

        refs = job_refs_file(sandbox, tmp_path / "refs-refused", [not_asked])
        refused = first.command(
            "run",
            "--no-install",
            *PIPELINE,
            extra_env={"TAP_PRISM_IMPORTS_JOB_IDS_FILE": str(refs)},
        )
        assert refused.returncode != 0
        output = refused.stdout + refused.stderr
        assert f"Another '{STATE_ID}' pipeline is already running" in output
        assert asked(sandbox, not_asked) == 0

        second = meltano_on(
            tmp_path / "host-b",
            sandbox,
            postgres,
            job_refs_file(sandbox, tmp_path / "refs-b", [other, waiting]),
            state,
        )
        overlapping = second.start(tmp_path / "second.log", *PIPELINE)
        started.append(overlapping)
        wait_until(lambda: asked(sandbox, other) > 0, "the second run to start")
        assert running.poll() is None, "the first run ended before the second began"

        sandbox.complete_job(waiting)
        # Each run emits the job it waited for as complete: both load it.
        for process, log, complete in ((running, "first", 1), (overlapping, "second", 2)):
            output = process_output(process, tmp_path / f"{log}.log")
            assert f"emitted jobs: {complete} complete, 0 processing" in output, output[-4000:]
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

    jobs = postgres.rows("SELECT job_id, status FROM prism.import_jobs ORDER BY job_id")
    assert jobs == sorted(
        [{"job_id": waiting, "status": "complete"}, {"job_id": other, "status": "complete"}],
        key=lambda row: row["job_id"],
    )
    counts = postgres.rows(
        "SELECT job_id, count(*) AS n, count(DISTINCT row_index) AS distinct_rows "
        "FROM prism.import_results GROUP BY job_id ORDER BY job_id"
    )
    assert {row["job_id"]: (row["n"], row["distinct_rows"]) for row in counts} == {
        waiting: (ROWS, ROWS),
        other: (3, 3),
    }
