"""State ids under Meltano, end to end into PostgreSQL: what reuses the tap's state.

The tap's state says which jobs are finished; a run under a state id Meltano holds no
state for asks the API about every job again (quota). Against one sandbox seeded with
the demo jobs (3 complete, 1 processing, 1 failed, 1 expired), in this project:

1. ``meltano el … --state-id prism-el`` asks about every job; the same again asks only
   about the job still processing (none of the finished ones);
2. ``meltano el`` without ``--state-id`` takes a new, ephemeral id and asks about every
   job again;
3. ``meltano state copy`` carries the state to ``meltano run``'s id for the other
   extractor, whose first run then asks only about the processing job.

Rows are upserts: after all that, each job and row is in the warehouse once.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest
from helpers.pipeline_helpers import Meltano, Postgres, job_refs_file

from prism_sandbox import seed_demo

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

BATCH_PAIR = ("tap-prism-imports-batch", "target-postgres")
RECORD_PAIR = ("tap-prism-imports", "target-postgres")


def requested(sandbox: Sandbox, action: Callable[[], object]) -> list[str]:
    """The job ids ``action`` asked the API about, in order."""
    sandbox.clear_requests()
    action()
    return [str(entry["job_id"]) for entry in sandbox.requests]


def test_only_a_reused_state_id_spares_the_finished_jobs(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    seed_demo(sandbox)
    meltano = Meltano.for_sandbox(sandbox, tmp_path, job_refs_file(sandbox, tmp_path / "refs"))
    meltano.env.update(postgres.target_env)
    meltano.env["TAP_PRISM_IMPORTS_BATCH_BATCH_CONFIG_STORAGE_ROOT"] = f"file://{tmp_path}/batches"
    every_job = sorted(sandbox.job_ids())

    def el(*state_id: str) -> str:
        result = meltano.command("el", *BATCH_PAIR, *state_id)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    assert sorted(requested(sandbox, lambda: el("--state-id", "prism-el"))) == every_job
    gone = {str(entry["job_id"]) for entry in sandbox.requests if entry["status"] == 404}
    processing = [job for job in every_job if sandbox.snapshot(job)["status"] == "processing"]
    assert requested(sandbox, lambda: el("--state-id", "prism-el")) == processing

    ephemeral: list[str] = []
    assert sorted(requested(sandbox, lambda: ephemeral.append(el()))) == every_job
    assert "Using an ephemeral state ID" in ephemeral[0]

    copied = meltano.command(
        "state", "copy", "--force", "prism-el", "dev:tap-prism-imports-to-target-postgres"
    )
    assert copied.returncode == 0, copied.stderr[-3000:]
    assert requested(sandbox, lambda: meltano.run(*RECORD_PAIR)) == processing

    jobs = Counter(row["job_id"] for row in postgres.rows("SELECT job_id FROM prism.import_jobs"))
    assert set(jobs) == set(every_job) - gone
    assert set(jobs.values()) == {1}
    rows = postgres.rows(
        "SELECT count(*) AS n, count(DISTINCT (job_id, row_index)) AS keys "
        "FROM prism.import_results"
    )
    assert rows[0]["n"] == rows[0]["keys"] > 0
