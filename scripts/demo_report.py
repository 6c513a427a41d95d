"""Print the demo's report from the DuckDB warehouse, and check it against the API.

Run by ``scripts/demo.sh`` with the Python of the ``target-duckdb`` plugin (the one
that has the ``duckdb`` version that wrote the file); it needs nothing else.

The check asks the API itself for every configured job and compares: each job
the API still serves must be in ``import_jobs``, and for each job loaded as
``complete`` the rows in ``import_results`` must be exactly the API's
``results`` (same count, same row positions, same outcome and record id). Any
difference is printed as a MISMATCH and the exit status is 1.
"""

# ruff: noqa: INP001

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

TOP_ERRORS = 5
MAX_RETRIES = 5
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429


@dataclass
class Served:
    """What the API answers now for one job: its status and per-row facts."""

    status: str | None  # None: 404 (expired or unknown)
    rows: dict[int, tuple[str | None, str | None, str | None]] = field(default_factory=dict)


def out(line: str = "") -> None:
    sys.stdout.write(line.rstrip() + "\n")


def parse_refs(path: Path) -> list[tuple[str, str]]:
    """``(team_id, job_id)`` for each ref: ``TEAM/JOB`` or ``/v2/prism/TEAM/imports/JOB``."""
    refs: list[tuple[str, str]] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in urllib.parse.urlsplit(line).path.split("/") if p]
        if len(parts) >= 5 and parts[-2] == "imports":  # noqa: PLR2004
            refs.append((parts[-3].lower(), parts[-1]))
        elif len(parts) == 2:  # noqa: PLR2004
            refs.append((parts[0].lower(), parts[1]))
        else:
            msg = f"{path}: cannot read job ref {line!r} (expected TEAM_ID/JOB_ID)"
            raise SystemExit(msg)
    return refs


def fetch(api_url: str, api_key: str, team_id: str, job_id: str) -> Served:
    """GET the job's snapshot, as the tap does (429s are waited out)."""
    path = "/v2/prism/{}/imports/{}".format(
        urllib.parse.quote(team_id, safe=""), urllib.parse.quote(job_id, safe="")
    )
    request = urllib.request.Request(  # noqa: S310 - the URL is the sandbox's http URL
        api_url.rstrip("/") + path, headers={"x-api-key": api_key}
    )
    for attempt in range(MAX_RETRIES):
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == HTTP_NOT_FOUND:
                return Served(None)
            if error.code == HTTP_TOO_MANY and attempt + 1 < MAX_RETRIES:
                time.sleep(float(error.headers.get("Retry-After") or 1))
                continue
            raise
        served = Served(str(body["status"]))
        if served.status == "complete":
            for index, result in enumerate(body.get("results") or []):
                row_error = result.get("error") or {}
                served.rows[index] = (_outcome(result), result.get("id"), row_error.get("code"))
        return served
    msg = f"{team_id}/{job_id}: still rate limited after {MAX_RETRIES} tries"
    raise RuntimeError(msg)


def _outcome(result: dict[str, Any]) -> str | None:
    if result.get("error"):
        return "failed"
    if result.get("created") is True:
        return "created"
    if result.get("existing") is True:
        return "existing"
    return None


def print_report(db: duckdb.DuckDBPyConnection, schema: str) -> None:
    jobs = f'"{schema}".import_jobs'
    results = f'"{schema}".import_results'
    out("Jobs by status")
    for status, count in db.sql(
        f"SELECT status, count(*) FROM {jobs} GROUP BY 1 ORDER BY 2 DESC, 1"  # noqa: S608
    ).fetchall():
        out(f"  {status:<12} {count:>8,}")
    out()
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
    out("Jobs (failed % = rows failed / rows processed, from the job's counters)")
    out(f"  {'job_id':<28} {'status':<11} {'total':>7} {'loaded':>7} {'failed %':>8}  job error")
    for job_id, status, total, loaded, failed_pct, error_code in db.sql(
        "SELECT j.job_id, j.status, j.total, count(r.row_index), "  # noqa: S608
        "round(100.0 * j.failed / nullif(j.processed, 0), 1), j.error_code "
        f"FROM {jobs} j LEFT JOIN {results} r USING (team_id, job_id) "
        "GROUP BY j.job_id, j.status, j.total, j.failed, j.processed, j.error_code, "
        "j.created_at ORDER BY j.created_at"
    ).fetchall():
        pct = "" if failed_pct is None else f"{failed_pct:.1f}"
        out(f"  {job_id:<28} {status:<11} {total:>7,} {loaded:>7,} {pct:>8}  {error_code or ''}")
    out()


def check(
    db: duckdb.DuckDBPyConnection, schema: str, served: dict[tuple[str, str], Served]
) -> list[str]:
    """Compare the warehouse with what the API serves; return the mismatches."""
    problems: list[str] = []
    loaded_jobs = {
        (team, job): status
        for team, job, status in db.sql(
            f'SELECT team_id, job_id, status FROM "{schema}".import_jobs'  # noqa: S608
        ).fetchall()
    }
    loaded_rows: dict[tuple[str, str], dict[int, tuple[str | None, str | None, str | None]]] = {}
    duplicates = Counter[tuple[str, str, int]]()
    for team, job, index, outcome, record_id, error_code in db.sql(
        "SELECT team_id, job_id, row_index, outcome, record_id, error_code "  # noqa: S608
        f'FROM "{schema}".import_results'
    ).fetchall():
        key = (str(team), str(job))
        duplicates[(key[0], key[1], int(index))] += 1
        loaded_rows.setdefault(key, {})[int(index)] = (outcome, record_id, error_code)
    problems.extend(
        f"{team}/{job} row {index} loaded {count} times"
        for (team, job, index), count in duplicates.items()
        if count > 1
    )
    complete_jobs = expected_rows = 0
    for key, now in served.items():
        ref = "/".join(key)
        status = loaded_jobs.get(key)
        if now.status is None:
            loaded = "not loaded" if status is None else f"loaded earlier as {status}"
            out(f"  note: {ref} answers 404 (expired or unknown): {loaded}")
            continue
        if status is None:
            problems.append(f"{ref}: the API serves it ({now.status}) but it was not loaded")
            continue
        if status != "complete":
            if loaded_rows.get(key):
                problems.append(f"{ref}: loaded as {status} but has result rows")
            if now.status != status:
                out(f"  note: {ref} was {status} when extracted, is {now.status} now")
            continue
        if now.status != "complete":
            problems.append(f"{ref}: loaded as complete, the API says {now.status}")
            continue
        complete_jobs += 1
        expected_rows += len(now.rows)
        rows = loaded_rows.get(key, {})
        if rows != now.rows:
            missing = len(now.rows.keys() - rows.keys())
            extra = len(rows.keys() - now.rows.keys())
            differ = sum(1 for i in now.rows.keys() & rows.keys() if rows[i] != now.rows[i])
            problems.append(
                f"{ref}: API served {len(now.rows):,} rows, warehouse holds {len(rows):,} "
                f"({missing:,} missing, {extra:,} extra, {differ:,} different)"
            )
    configured = set(served)
    problems.extend(
        f"{'/'.join(key)}: loaded but not configured" for key in loaded_jobs.keys() - configured
    )
    loaded_total = sum(len(rows) for rows in loaded_rows.values())
    if not problems and loaded_total != expected_rows:
        problems.append(f"warehouse holds {loaded_total:,} rows, API served {expected_rows:,}")
    if not problems:
        out(
            f"Rows loaded equal what the API served: {loaded_total:,} rows "
            f"= {expected_rows:,} served by {complete_jobs} complete jobs "
            f"({len(loaded_jobs)} jobs loaded, {len(served)} configured)."
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True, help="the DuckDB file")
    parser.add_argument("--schema", default="prism", help="schema (default %(default)s)")
    parser.add_argument("--api-url", required=True, help="the API's base URL")
    parser.add_argument("--api-key", required=True, help="x-api-key for the API")
    parser.add_argument("--refs-file", type=Path, required=True, help="the job refs file")
    args = parser.parse_args(argv)

    refs = parse_refs(args.refs_file)
    served = {ref: fetch(args.api_url, args.api_key, *ref) for ref in refs}
    with duckdb.connect(str(args.warehouse), read_only=True) as db:
        out(f"Prism imports demo: warehouse {args.warehouse}, schema {args.schema}")
        out()
        print_report(db, args.schema)
        out("Check against the API")
        problems = check(db, args.schema, served)
    for problem in problems:
        out(f"  MISMATCH: {problem}")
    if problems:
        out(f"Rows loaded do NOT equal what the API served: {len(problems)} problem(s).")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
