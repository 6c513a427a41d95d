"""End to end: ``meltano run tap-prism-imports target-duckdb`` loses no row.

``target-duckdb==0.8.0`` with any ``duckdb`` newer than 1.0.0 silently drops the first
row of every batch, so ``meltano.yml`` pins ``duckdb==1.0.0`` in that loader. This test
loads jobs of known sizes in many small batches and checks every row arrived once.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
from helpers.pipeline_helpers import Meltano, job_refs_file, require_plugin

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

JOB_SIZES = (1, 7, 250, 1_234)
BATCH_SIZE_ROWS = 100  # many batches: the bug loses one row per batch

READ_TABLES = """
import json, sys
import duckdb
db = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({
    "duckdb": duckdb.__version__,
    "jobs": db.sql("SELECT job_id, status, results_count FROM prism.import_jobs").fetchall(),
    "results": db.sql("SELECT job_id, row_index FROM prism.import_results").fetchall(),
}))
"""


def read_warehouse(python: Path, warehouse: Path) -> dict[str, Any]:
    """Query the file with the loader's own duckdb (the version that wrote it)."""
    output = subprocess.run(
        [str(python), "-c", READ_TABLES, str(warehouse)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    tables: dict[str, Any] = json.loads(output)
    return tables


def test_every_row_arrives_once_through_target_duckdb(sandbox: Sandbox, tmp_path: Path) -> None:
    venv = require_plugin("loaders", "target-duckdb")
    require_plugin("extractors", "tap-prism-imports")
    sizes = {sandbox.add_job(rows=n, failed_every=9, existing_every=4): n for n in JOB_SIZES}
    warehouse = tmp_path / "warehouse.duckdb"
    meltano = Meltano.for_sandbox(sandbox, tmp_path, job_refs_file(sandbox, tmp_path / "refs"))

    meltano.run(
        "tap-prism-imports",
        "target-duckdb",
        extra_env={
            "TARGET_DUCKDB_FILEPATH": str(warehouse),
            "TARGET_DUCKDB_BATCH_SIZE_ROWS": str(BATCH_SIZE_ROWS),
        },
    )

    tables = read_warehouse(venv / "bin" / "python", warehouse)
    assert sorted(tables["jobs"]) == sorted([job_id, "complete", n] for job_id, n in sizes.items())
    loaded = [(job_id, row_index) for job_id, row_index in tables["results"]]
    assert len(loaded) == sum(JOB_SIZES), f"{sum(JOB_SIZES) - len(loaded)} rows lost"
    assert set(loaded) == {(job_id, i) for job_id, n in sizes.items() for i in range(n)}
    assert tables["duckdb"] == "1.0.0", "meltano.yml pins duckdb==1.0.0 for target-duckdb"
