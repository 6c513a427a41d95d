"""End to end: ``meltano run tap-prism-imports-batch target-postgres dbt-postgres:build``.

The repository's project (meltano.yml and transform/, copied so that ``meltano config
set`` can write to it) loads the demo jobs and an import log (a sync import keyed by the
caller's row keys, a rejected request) into a real PostgreSQL and builds the models:

1. dbt's tests pass on that load, which holds the legitimate cases: a job captured
   while processing (no rows yet), a failed job and a rejected request (no rows ever);
   the models answer with what the API served; every column they made is described
   (in its .yml and docs/models.md) and the docs' questions run; the sources are fresh;
   dbt's connection was set with ``meltano config set dbt-postgres …`` alone;
2. a bad load — rows of a complete job deleted, a job's record deleted (its rows
   orphaned), a row planted in a processing job, a status no API sends — fails
   ``dbt build``, naming the tests that caught each, and leaves the models as they were;
3. a load with import_results deselected builds with ``prism_results_loaded: false``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from helpers.api_requests import SYNC_KEYS, SYNC_ROWS, post_and_log
from helpers.pipeline_helpers import ROOT, Meltano, Postgres, job_refs_file, require_plugin

from prism_sandbox import seed_demo
from tap_prism_imports.import_log import ImportLog

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

PIPELINE = ("tap-prism-imports-batch", "target-postgres", "dbt-postgres:build")
SOURCE = "prism"  # target-postgres's default_target_schema in meltano.yml
MODELS = "prism_analytics"  # dbt-postgres's schema setting in meltano.yml
DOCS = ROOT / "docs" / "models.md"

REJECTED_KEYS = ["lead-1", "lead-2"]
REJECTED_ROWS: list[Any] = [{"default": {"name": "Lead 1"}}, "not an object"]

# What each planted damage must fail: (dbt's result line for the test).
BAD_LOAD_FAILURES = (
    # 7 rows of a complete job deleted, and a row planted in the processing job.
    "FAIL 2 prism_loaded_rows_match_captured_rows",
    # A complete job's record deleted: its 180 rows have no import.
    "FAIL 180 prism_every_loaded_row_has_its_import",
    # A status the API never sends.
    "FAIL 1 accepted_values_stg_prism__import_jobs_status__complete__processing__failed",
)


def project_copy(path: Path) -> Path:
    """The repository's Meltano project (its plugins shared), for ``meltano config set``."""
    path.mkdir()
    shutil.copy2(ROOT / "meltano.yml", path / "meltano.yml")
    shutil.copytree(
        ROOT / "transform", path / "transform", ignore=shutil.ignore_patterns("target", "logs")
    )
    (path / ".meltano").symlink_to(ROOT / ".meltano", target_is_directory=True)
    return path


def configure_dbt(meltano: Meltano, postgres: Postgres) -> None:
    """dbt's connection, the way a user sets it: ``meltano config set`` and nothing else."""
    for setting, value in (
        ("host", "127.0.0.1"),
        ("port", str(postgres.port)),
        ("user", postgres.user),
        ("password", postgres.password),
        ("dbname", postgres.database),
    ):
        result = meltano.command("config", "set", "dbt-postgres", setting, value)
        assert result.returncode == 0, result.stdout + result.stderr


def outcome(result: dict[str, Any]) -> str:
    if result["error"]:
        return "failed"
    return "created" if result["created"] else "existing"


def check_models(postgres: Postgres, sandbox: Sandbox, complete: list[str], sync_id: str) -> None:
    """The models say what the API served (and the import log held)."""
    imports = {row["job_id"]: row for row in postgres.rows(f"SELECT * FROM {MODELS}.prism_imports")}
    loaded_jobs = postgres.rows(f"SELECT job_id FROM {SOURCE}.import_jobs")
    assert set(imports) == {row["job_id"] for row in loaded_jobs}
    assert Counter(row["mode"] for row in imports.values()) == {
        "async": 5,
        "sync": 1,
        "rejected": 1,
    }
    for job_id in complete:
        snapshot = sandbox.snapshot(job_id)
        outcomes = Counter(outcome(result) for result in snapshot["results"])
        row = imports[job_id]
        assert (row["rows_created"], row["rows_existing"], row["rows_rejected"]) == (
            outcomes["created"],
            outcomes["existing"],
            outcomes["failed"],
        ), job_id
        assert row["rows_loaded"] == row["rows_captured"] == snapshot["total"]
        assert row["failure_rate"] == round(snapshot["failed"] / snapshot["processed"], 4)
        assert row["seconds_to_finish"] is not None
    (processing,) = [row for row in imports.values() if row["status"] == "processing"]
    assert (processing["rows_loaded"], processing["rows_captured"]) == (0, None)
    assert not processing["is_expired_before_capture"]
    assert not processing["is_stuck_processing"]
    (rejected,) = [row for row in imports.values() if row["mode"] == "rejected"]
    assert (rejected["status"], rejected["job_error_code"]) == ("failed", "http_400")

    failed_rows = postgres.rows(
        f"SELECT source_key, error_code FROM {MODELS}.prism_failed_rows "
        f"WHERE job_id = '{sync_id}' ORDER BY row_index"
    )
    assert failed_rows == [
        {"source_key": "crm-3", "error_code": "validation_error"},
        {"source_key": "crm-5", "error_code": "missing_required_property"},
    ]
    by_key = {
        row["source_key"]: row
        for row in postgres.rows(
            f"SELECT * FROM {MODELS}.prism_import_rows WHERE job_id = '{sync_id}'"
        )
    }
    assert by_key["crm-4"]["outcome"] == "existing"
    assert by_key["crm-4"]["record_id"] == by_key["crm-1"]["record_id"]

    failed_total = sum(row["rows_rejected"] for row in imports.values())
    (totals,) = postgres.rows(
        f"SELECT sum(imports) AS imports, sum(rows_created) AS created "
        f"FROM {MODELS}.prism_import_health_daily"
    )
    assert totals == {
        "imports": len(imports),
        "created": sum(row["rows_created"] for row in imports.values()),
    }
    errors = postgres.rows(f"SELECT * FROM {MODELS}.prism_row_errors ORDER BY error_rank")
    assert sum(row["rows_failed"] for row in errors) == failed_total
    assert errors[0]["rows_failed"] == max(row["rows_failed"] for row in errors)


def documented_columns(project: Path) -> dict[str, list[str]]:
    """Each model's columns as its .yml file describes them (dbt's manifest of the build)."""
    manifest = json.loads(
        (project / "transform" / "target" / "manifest.json").read_text(encoding="utf-8")
    )
    return {
        node["name"]: [name for name, column in node["columns"].items() if column["description"]]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def check_column_docs(postgres: Postgres, project: Path) -> None:
    """Every column the models made is described, in its .yml and in docs/models.md."""
    built: dict[str, list[str]] = {}
    for row in postgres.rows(
        "SELECT table_name, column_name FROM information_schema.columns "
        f"WHERE table_schema = '{MODELS}' ORDER BY table_name, ordinal_position"
    ):
        built.setdefault(row["table_name"], []).append(row["column_name"])
    assert built == documented_columns(project)
    docs = DOCS.read_text(encoding="utf-8")
    for model, names in built.items():
        paragraph = re.search(rf"\*\*`{model}`\*\*:(.*?)\n\n", docs, re.DOTALL)
        assert paragraph, f"docs/models.md describes no columns of {model}"
        assert set(names) <= set(re.findall(r"`(\w+)`", paragraph.group(1))), model


def documented_queries() -> list[str]:
    section = DOCS.read_text(encoding="utf-8").split("## Questions, in SQL", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?);\n```", section, re.DOTALL)


def check_documented_queries(postgres: Postgres) -> None:
    """The docs' questions run on the models and answer something."""
    queries = documented_queries()
    assert len(queries) >= 6
    answered = [bool(postgres.rows(query)) for query in queries]
    # Only the "needs attention" question has nothing to say about this load.
    assert answered.count(False) == 1, list(zip(queries, answered, strict=True))


def plant_bad_load(postgres: Postgres, complete: list[str], failed: str) -> None:
    """Damage the load in every way the loader's primary keys allow."""
    rows_lost, orphaned = complete[0], complete[1]
    postgres.psql(
        f"DELETE FROM {SOURCE}.import_results "
        f"WHERE job_id = '{rows_lost}' AND row_index IN (0, 3, 17, 40, 99, 120, 249);"
        f"DELETE FROM {SOURCE}.import_jobs WHERE job_id = '{orphaned}';"
        f"INSERT INTO {SOURCE}.import_results (team_id, job_id, row_index, outcome, fetched_at) "
        f"SELECT team_id, job_id, 0, 'created', fetched_at FROM {SOURCE}.import_jobs "
        "WHERE status = 'processing';"
        f"UPDATE {SOURCE}.import_jobs SET status = 'done' WHERE job_id = '{failed}';"
    )


def test_models_build_on_a_real_load_and_a_bad_load_fails_the_build(
    sandbox: Sandbox, postgres: Postgres, tmp_path: Path
) -> None:
    require_plugin("utilities", "dbt-postgres", "dbt")
    demo = [ref.split("/", 1)[1] for ref in seed_demo(sandbox)]
    complete, failed = demo[:3], demo[4]
    log = ImportLog(tmp_path / "imports.jsonl")
    sync_line = post_and_log(sandbox, log, SYNC_ROWS, SYNC_KEYS, idempotency_key="crm-batch-1")
    rejected_line = post_and_log(
        sandbox, log, REJECTED_ROWS, REJECTED_KEYS, idempotency_key="leads-batch-1"
    )
    assert (sync_line["http_status"], rejected_line["http_status"]) == (200, 400)

    meltano = Meltano.for_sandbox(sandbox, tmp_path, job_refs_file(sandbox, tmp_path / "refs"))
    meltano.project = project_copy(tmp_path / "project")
    meltano.env = {key: value for key, value in meltano.env.items() if not key.startswith("DBT_")}
    configure_dbt(meltano, postgres)
    (tmp_path / "batches").mkdir()
    env = {
        **postgres.target_env,
        "TAP_PRISM_IMPORTS_IMPORT_LOG": str(log.path),
        "TAP_PRISM_IMPORTS_BATCH_BATCH_CONFIG": json.dumps(
            {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "prism-"},
            }
        ),
    }

    # 1. The load and the build, as a scheduled pipeline runs them.
    output = meltano.run(*PIPELINE, extra_env=env)
    assert "ERROR=0" in output, output[-3000:]
    (sync_id,) = [
        row["job_id"]
        for row in postgres.rows(f"SELECT job_id FROM {SOURCE}.import_jobs WHERE mode = 'sync'")
    ]
    check_models(postgres, sandbox, complete, sync_id)
    check_column_docs(postgres, meltano.project)
    check_documented_queries(postgres)
    freshness = meltano.command("invoke", "dbt-postgres:source-freshness", extra_env=env)
    assert freshness.returncode == 0, (freshness.stdout + freshness.stderr)[-3000:]
    assert "PASS freshness of prism.import_results" in freshness.stdout + freshness.stderr
    answers = postgres.rows(f"SELECT * FROM {MODELS}.prism_imports ORDER BY job_ref")

    # 2. A bad load fails the build, names what caught it, and publishes nothing.
    plant_bad_load(postgres, complete, failed)
    result = meltano.command("invoke", "dbt-postgres:build", extra_env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for failure in BAD_LOAD_FAILURES:
        assert failure in output, f"{failure!r} not in dbt's output:\n{output[-5000:]}"
    assert "SKIP relation prism_analytics.prism_imports" in output
    assert postgres.rows(f"SELECT * FROM {MODELS}.prism_imports ORDER BY job_ref") == answers

    # 3. import_results deselected: no such table, and the build still passes.
    jobs_only = {
        **env,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "prism_jobs_only",
        "TAP_PRISM_IMPORTS_BATCH__SELECT": json.dumps(["import_jobs.*"]),
        "DBT_POSTGRES_SCHEMA": "prism_analytics_jobs_only",
    }
    meltano.run("--full-refresh", "tap-prism-imports-batch", "target-postgres", extra_env=jobs_only)
    tables = postgres.rows(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'prism_jobs_only'"
    )
    assert tables == [{"table_name": "import_jobs"}]
    vars_ = json.dumps({"prism_schema": "prism_jobs_only", "prism_results_loaded": False})
    result = meltano.command(
        "invoke", "dbt-postgres", "build", "--vars", vars_, extra_env=jobs_only
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    counts = postgres.rows(
        "SELECT count(*) AS imports, sum(rows_loaded) AS rows_loaded "
        "FROM prism_analytics_jobs_only.prism_imports"
    )
    assert counts == [{"imports": len(answers), "rows_loaded": 0}]
