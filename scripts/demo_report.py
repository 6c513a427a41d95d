"""Print the demo's report from the dbt models in DuckDB, and check the load against its sources.

Run by ``scripts/demo.sh`` with the Python of the ``target-duckdb`` plugin (the one
that has the ``duckdb`` version that wrote the file); it needs nothing else.

The report reads the models that ``dbt-duckdb:build`` made from the loaded tables
(transform/, docs/models.md) and only orders and limits them: import health per day,
object type and mode (prism_import_health_daily), the most common row errors
(prism_row_errors), the failed rows of the import log's imports by ``source_key``
(prism_failed_rows; a rejected request's keys are only in the import log), and every
import (prism_imports). Then the check (``demo_check.py``): the loaded tables against
what the API serves now and what the import log holds. Any difference is printed as a
MISMATCH and the exit status is 1.
"""

# ruff: noqa: INP001

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
from demo_check import ImportLogContents, Warehouse, check, fetch, parse_refs, read_import_log

TOP_ERRORS = 5
MAX_FAILED_ROWS = 12
SHOWN_KEYS = 5  # of a rejected request's rows
MODE_ORDER = "CASE mode WHEN 'async' THEN 1 WHEN 'sync' THEN 2 WHEN 'rejected' THEN 3 END"


def out(line: str = "") -> None:
    sys.stdout.write(line.rstrip() + "\n")


def percent(rate: float | None) -> str:
    return "" if rate is None else f"{100 * rate:.1f}"


def print_health(db: duckdb.DuckDBPyConnection, models: str) -> None:
    out("Import health per day (prism_import_health_daily; failed % = rows failed / processed)")
    out(
        f"  {'date':<10}  {'object':<13} {'mode':<9} {'imports':>7} {'complete':>8} "
        f"{'failed':>6} {'running':>7} {'rows':>6} {'created':>7} {'existing':>8} {'failed %':>8}"
    )
    for (
        day,
        kind,
        mode,
        imports,
        complete,
        failed,
        running,
        rows,
        created,
        existing,
        rate,
    ) in db.sql(
        "SELECT import_date, object_type, mode, imports, imports_complete, imports_failed, "  # noqa: S608
        "imports_processing, rows_total, rows_created, rows_existing, failure_rate "
        f"FROM {models}.prism_import_health_daily "
        f"ORDER BY import_date, object_type NULLS FIRST, {MODE_ORDER}"
    ).fetchall():
        out(
            f"  {day!s:<10}  {kind or '-':<13} {mode:<9} {imports:>7,} {complete:>8,} "
            f"{failed:>6,} {running:>7,} {rows:>6,} {created:>7,} {existing:>8,} "
            f"{percent(rate):>8}"
        )
    out()


def print_errors(db: duckdb.DuckDBPyConnection, models: str) -> None:
    out(f"Most common row errors (prism_row_errors, top {TOP_ERRORS})")
    rows = db.sql(
        "SELECT rows_failed, imports_affected, error_code, error_message "  # noqa: S608
        f"FROM {models}.prism_row_errors ORDER BY error_rank, error_code, error_message "
        f"LIMIT {TOP_ERRORS}"
    ).fetchall()
    for count, imports, code, message in rows:
        out(f"  {count:>8,}  {code}: {message}  ({imports} import{'s' if imports > 1 else ''})")
    if not rows:
        out("  (no failed rows)")
    out()


def print_failed_by_key(db: duckdb.DuckDBPyConnection, models: str, log: ImportLogContents) -> None:
    out("Failed rows by source_key (prism_failed_rows: the caller's key for each row)")
    failed = db.sql(
        "SELECT object_type, source_key, error_code, error_message "  # noqa: S608
        f"FROM {models}.prism_failed_rows WHERE source_key IS NOT NULL "
        "ORDER BY started_at, job_id, row_index"
    ).fetchall()
    for object_type, key, code, message in failed[:MAX_FAILED_ROWS]:
        out(f"  {object_type:<13} {key:<10} {code}: {message}")
    if len(failed) > MAX_FAILED_ROWS:
        out(f"  ... and {len(failed) - MAX_FAILED_ROWS:,} more")
    rejected = db.sql(
        "SELECT object_type, submitted_at, job_error_code, job_error_message "  # noqa: S608
        f"FROM {models}.prism_imports WHERE mode = 'rejected' ORDER BY started_at"
    ).fetchall()
    # The warehouse has no rows for a refused request: its keys are in the import log.
    logged_keys = {(r.object_type, r.submitted_at): r.keys for r in log.rejected}
    for object_type, submitted_at, code, message in rejected:
        keys = [key for key in logged_keys.get((object_type, submitted_at), []) if key]
        shown = ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
        out(f"  {object_type or '-':<13} {shown or '(keys not in the import log)'}")
        out(f"  {'':<13} the whole request: {code}, {message}")
    if not failed and not rejected:
        out("  (none)")
    out()


def print_imports(db: duckdb.DuckDBPyConnection, models: str) -> None:
    out("Imports, oldest first (prism_imports)")
    out(
        f"  {'mode':<9} {'object':<13} {'status':<11} {'total':>6} {'loaded':>6} "
        f"{'failed %':>8} {'secs':>5}  job"
    )
    for row in db.sql(
        "SELECT mode, object_type, status, rows_total, rows_loaded, failure_rate, "  # noqa: S608
        "seconds_to_finish, job_id, job_error_code, is_expired_before_capture, "
        f"is_stuck_processing FROM {models}.prism_imports ORDER BY started_at, job_id"
    ).fetchall():
        mode, kind, status, total, loaded, rate, seconds, job_id, code, expired, stuck = row
        notes = [text for text, on in (("EXPIRED", expired), ("STUCK", stuck)) if on]
        out(
            f"  {mode:<9} {kind or '-':<13} {status:<11} {total:>6,} {loaded:>6,} "
            f"{percent(rate):>8} {'' if seconds is None else seconds:>5}  "
            f"{' '.join([job_id, code or '', *notes]).strip()}"
        )
    out()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="the DuckDB file")
    parser.add_argument(
        "--schema", default="prism", help="the loaded tables' schema (default %(default)s)"
    )
    parser.add_argument(
        "--models-schema", default="prism_analytics", help="the models' (default %(default)s)"
    )
    parser.add_argument("--api-url", required=True, help="the API's base URL")
    parser.add_argument("--api-key", required=True, help="x-api-key for the API")
    parser.add_argument("--refs-file", type=Path, required=True, help="the job refs file")
    parser.add_argument("--import-log", type=Path, required=True, help="the import log")
    args = parser.parse_args(argv)

    log = read_import_log(args.import_log)
    refs = list(dict.fromkeys([*parse_refs(args.refs_file), *log.async_keys]))
    served = {ref: fetch(args.api_url, args.api_key, *ref) for ref in refs}
    models = f'"{args.models_schema}"'
    with duckdb.connect(str(args.warehouse), read_only=True) as db:
        out(
            f"Prism imports demo: warehouse {args.warehouse}, models in {args.models_schema}, "
            f"loaded tables in {args.schema}"
        )
        out()
        print_health(db, models)
        print_errors(db, models)
        print_failed_by_key(db, models, log)
        print_imports(db, models)
        warehouse = Warehouse.load(db, args.schema)
    out("Check against the API (async jobs) and the import log (sync and rejected imports)")
    result = check(warehouse, served, log, args.import_log)
    for note in result.notes:
        out(f"  note: {note}")
    for problem in result.problems:
        out(f"  MISMATCH: {problem}")
    if result.problems:
        out(f"Rows loaded do NOT equal what was served: {len(result.problems)} problem(s).")
        return 1
    for line in result.summary:
        out(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
