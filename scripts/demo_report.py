"""Print the demo's report from the DuckDB warehouse, and check it against its sources.

Run by ``scripts/demo.sh`` with the Python of the ``target-duckdb`` plugin (the one
that has the ``duckdb`` version that wrote the file); it needs nothing else.

The report: imports by mode (async, sync, rejected) and status, rows by outcome, the
most common row errors, the failed rows of the import log's imports by ``source_key``
(which of the caller's records failed, and why), and every job. Then the check
(``demo_check.py``): the warehouse against what the API serves now and what the import
log holds. Any difference is printed as a MISMATCH and the exit status is 1.
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


def print_modes(db: duckdb.DuckDBPyConnection, jobs: str) -> None:
    out("Imports by mode (async: followed at the API; sync, rejected: from the import log)")
    out(f"  {'mode':<9} {'status':<11} {'imports':>7} {'rows':>8}")
    for mode, status, count, rows in db.sql(
        f"SELECT coalesce(mode, '(none)'), status, count(*), sum(total) FROM {jobs} "  # noqa: S608
        f"GROUP BY mode, status ORDER BY {MODE_ORDER}, status"
    ).fetchall():
        out(f"  {mode:<9} {status:<11} {count:>7,} {rows:>8,}")
    out()


def print_outcomes(db: duckdb.DuckDBPyConnection, results: str) -> None:
    out("Rows by outcome")
    for outcome, count in db.sql(
        f"SELECT coalesce(outcome, '(none)'), count(*) FROM {results} "  # noqa: S608
        "GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall():
        out(f"  {outcome:<12} {count:>8,}")
    out()
    out(f"Most common row errors (top {TOP_ERRORS})")
    rows = db.sql(
        f"SELECT error_code, error_message, count(*) FROM {results} "  # noqa: S608
        "WHERE outcome = 'failed' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 "
        f"LIMIT {TOP_ERRORS}"
    ).fetchall()
    for code, message, count in rows:
        out(f"  {count:>8,}  {code}: {message}")
    if not rows:
        out("  (no failed rows)")
    out()


def print_failed_by_key(
    db: duckdb.DuckDBPyConnection, jobs: str, results: str, log: ImportLogContents
) -> None:
    out("Failed rows by source_key (the caller's key for each row, from the import log)")
    failed = db.sql(
        f"SELECT j.object_type, r.source_key, r.error_code, r.error_message "  # noqa: S608
        f"FROM {results} r JOIN {jobs} j USING (team_id, job_id) "
        "WHERE r.outcome = 'failed' AND r.source_key IS NOT NULL "
        "ORDER BY j.submitted_at, r.row_index"
    ).fetchall()
    for object_type, key, code, message in failed[:MAX_FAILED_ROWS]:
        out(f"  {object_type:<13} {key:<10} {code}: {message}")
    if len(failed) > MAX_FAILED_ROWS:
        out(f"  ... and {len(failed) - MAX_FAILED_ROWS:,} more")
    for rejected in log.rejected:
        keys = [key for key in rejected.keys if key is not None]
        shown = ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
        out(f"  {rejected.object_type:<13} {shown}")
        out(f"  {'':<13} the whole request: HTTP {rejected.http_status}, {rejected.message}")
    if not failed and not log.rejected:
        out("  (none)")
    out()


def print_jobs(db: duckdb.DuckDBPyConnection, jobs: str, results: str) -> None:
    out("Jobs, oldest first (failed % = rows failed / rows processed)")
    out(
        f"  {'mode':<9} {'object':<13} {'status':<11} {'total':>6} {'loaded':>6} "
        f"{'failed %':>8}  job"
    )
    for mode, object_type, status, total, loaded, failed_pct, job_id, error_code in db.sql(
        "SELECT j.mode, j.object_type, j.status, j.total, count(r.row_index), "  # noqa: S608
        "round(100.0 * j.failed / nullif(j.processed, 0), 1), j.job_id, j.error_code "
        f"FROM {jobs} j LEFT JOIN {results} r USING (team_id, job_id) "
        "GROUP BY j.mode, j.object_type, j.status, j.total, j.failed, j.processed, j.job_id, "
        "j.error_code, j.submitted_at, j.created_at "
        "ORDER BY coalesce(j.submitted_at, j.created_at), j.job_id"
    ).fetchall():
        pct = "" if failed_pct is None else f"{failed_pct:.1f}"
        out(
            f"  {mode or '':<9} {object_type or '-':<13} {status:<11} {total:>6,} {loaded:>6,} "
            f"{pct:>8}  {job_id} {error_code or ''}"
        )
    out()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="the DuckDB file")
    parser.add_argument("--schema", default="prism", help="schema (default %(default)s)")
    parser.add_argument("--api-url", required=True, help="the API's base URL")
    parser.add_argument("--api-key", required=True, help="x-api-key for the API")
    parser.add_argument("--refs-file", type=Path, required=True, help="the job refs file")
    parser.add_argument("--import-log", type=Path, required=True, help="the import log")
    args = parser.parse_args(argv)

    log = read_import_log(args.import_log)
    refs = list(dict.fromkeys([*parse_refs(args.refs_file), *log.async_keys]))
    served = {ref: fetch(args.api_url, args.api_key, *ref) for ref in refs}
    jobs, results = f'"{args.schema}".import_jobs', f'"{args.schema}".import_results'
    with duckdb.connect(str(args.warehouse), read_only=True) as db:
        out(f"Prism imports demo: warehouse {args.warehouse}, schema {args.schema}")
        out()
        print_modes(db, jobs)
        print_outcomes(db, results)
        print_failed_by_key(db, jobs, results, log)
        print_jobs(db, jobs, results)
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
