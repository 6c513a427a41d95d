"""End to end on DuckDB: ``meltano run prism-to-duckdb``, twice, into one file.

The job is ``tap-prism-imports target-duckdb dbt-duckdb:build``: the loader writes the
file, dbt-duckdb builds the models in it, then the next run's loader writes into the
file dbt wrote, and dbt builds again. Each must open what the other wrote, which is why
meltano.yml pins dbt-duckdb's duckdb to the loader's 1.0.0: a file a newer duckdb
creates, 1.0.0 cannot open. The models are read back with the loader's duckdb.

1. The demo jobs: the models build, the processing job has no rows yet.
2. The processing job completes: its rows load into dbt's file and the rebuilt
   prism_imports shows it complete with every row.
"""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
from helpers.pipeline_helpers import Meltano, job_refs_file, require_plugin

from prism_sandbox import seed_demo

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

PROCESSING_COMPLETES_AFTER = 10 * 60.0  # seconds on the sandbox clock (sandbox/seed.py)

READ_MODELS = """
import json, sys
import duckdb
db = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({
    "duckdb": duckdb.__version__,
    "imports": db.sql(
        "SELECT job_id, status, rows_loaded, rows_captured "
        "FROM prism_analytics.prism_imports ORDER BY job_id"
    ).fetchall(),
    "failed_rows": db.sql("SELECT count(*) FROM prism_analytics.prism_failed_rows").fetchone()[0],
}))
"""


def duckdb_version(venv: Path) -> str:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import duckdb; print(duckdb.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def read_models(loader: Path, warehouse: Path) -> dict[str, Any]:
    """The models, as the loader's own duckdb reads them."""
    output = subprocess.run(
        [str(loader / "bin" / "python"), "-c", READ_MODELS, str(warehouse)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    models: dict[str, Any] = json.loads(output)
    return models


def test_loader_and_dbt_share_one_duckdb_file_run_after_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    loader = require_plugin("loaders", "target-duckdb")
    dbt = require_plugin("utilities", "dbt-duckdb", "dbt")
    require_plugin("extractors", "tap-prism-imports")
    assert duckdb_version(dbt) == duckdb_version(loader) == "1.0.0"
    ids = [ref.split("/", 1)[1] for ref in seed_demo(sandbox)]
    processing = ids[3]
    warehouse = tmp_path / "warehouse.duckdb"
    meltano = Meltano.for_sandbox(sandbox, tmp_path, job_refs_file(sandbox, tmp_path / "refs"))
    env = {
        "TARGET_DUCKDB_FILEPATH": str(warehouse),
        "DBT_DUCKDB_PATH": str(warehouse),
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }

    output = meltano.run("prism-to-duckdb", extra_env=env)
    assert "ERROR=0" in output, output[-3000:]
    first = read_models(loader, warehouse)
    assert first["duckdb"] == "1.0.0"
    imports = {
        job_id: (status, loaded, captured) for job_id, status, loaded, captured in first["imports"]
    }
    assert set(imports) == set(ids) - {ids[5]}, "every job but the expired one"
    assert imports[processing] == ("processing", 0, None)
    assert first["failed_rows"] > 0

    sandbox.advance_clock(PROCESSING_COMPLETES_AFTER)
    output = meltano.run("prism-to-duckdb", extra_env=env)
    assert "ERROR=0" in output, output[-3000:]
    second = read_models(loader, warehouse)
    imports = {
        job_id: (status, loaded, captured) for job_id, status, loaded, captured in second["imports"]
    }
    total = sandbox.snapshot(processing)["total"]
    assert imports[processing] == ("complete", total, total)
    assert second["failed_rows"] > first["failed_rows"]
