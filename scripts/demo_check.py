"""The demo's check: the warehouse against what the API serves and what the import log holds.

Used by ``demo_report.py`` (same environment: the Python of ``target-duckdb``; nothing
but ``duckdb`` and the standard library).

- Every job the API still serves (the refs file's jobs and the import log's async jobs)
  must be in ``import_jobs``; for each job loaded as ``complete`` the rows in
  ``import_results`` must be exactly the API's ``results`` (same row positions, outcome,
  record id and error code), with the import log's ``input_keys`` as ``source_key`` for
  the log's jobs.
- Sync and rejected imports are not at the GET endpoint: only their log lines hold them.
  Each sync import (its lines: a retry with the same ``Idempotency-Key`` is replayed and
  is the same import) must be one ``mode = 'sync'`` job whose rows are the logged
  response's ``results`` keyed by ``input_keys``; each rejected request one
  ``mode = 'rejected'`` job, ``failed``, with the HTTP status and message, and no rows.
  A logged import is found in the warehouse by team, object type and ``submitted_at``.
"""

# ruff: noqa: INP001

from __future__ import annotations

import datetime
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

MAX_RETRIES = 5
HTTP_OK = 200
HTTP_ACCEPTED = 202
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429

JobKey = tuple[str, str]  # (team_id, job_id)
# What the check compares per row: outcome, record id, error code, source key.
RowFacts = tuple[str | None, str | None, str | None, str | None]


def outcome(result: dict[str, Any]) -> str | None:
    if result.get("error"):
        return "failed"
    if result.get("created") is True:
        return "created"
    if result.get("existing") is True:
        return "existing"
    return None


def row_facts(results: list[dict[str, Any]], keys: list[str | None] | None) -> dict[int, RowFacts]:
    """Rows by position; ``source_key`` from ``keys`` only when there is one per row."""
    if keys is None or len(keys) != len(results):
        keys = [None] * len(results)
    return {
        index: (outcome(result), result.get("id"), (result.get("error") or {}).get("code"), key)
        for index, (result, key) in enumerate(zip(results, keys, strict=True))
    }


# ---------------------------------------------------------------- the API


def parse_ref(text: str) -> JobKey | None:
    """``TEAM/JOB`` or ``/v2/prism/TEAM/imports/JOB`` (path or URL); ``None`` otherwise."""
    parts = [p for p in urllib.parse.urlsplit(text).path.split("/") if p]
    if len(parts) >= 5 and parts[-2] == "imports":  # noqa: PLR2004
        return parts[-3].lower(), parts[-1]
    if len(parts) == 2:  # noqa: PLR2004
        return parts[0].lower(), parts[1]
    return None


def parse_refs(path: Path) -> list[JobKey]:
    refs: list[JobKey] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        ref = parse_ref(line)
        if ref is None:
            msg = f"{path}: cannot read job ref {line!r} (expected TEAM_ID/JOB_ID)"
            raise SystemExit(msg)
        refs.append(ref)
    return refs


@dataclass
class Served:
    """What the API answers now for one job: its status and, once complete, its results."""

    status: str | None  # None: 404 (expired or unknown)
    results: list[dict[str, Any]] = field(default_factory=list)


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
        status = str(body["status"])
        return Served(status, list(body.get("results") or []) if status == "complete" else [])
    msg = f"{team_id}/{job_id}: still rate limited after {MAX_RETRIES} tries"
    raise RuntimeError(msg)


# ---------------------------------------------------------------- the import log


def utc_naive(value: str) -> datetime.datetime:
    """A logged date-time as the naive UTC value the warehouse's TIMESTAMP holds."""
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


@dataclass
class LoggedSync:
    """One sync import: its log lines (a replayed retry adds one) and its rows."""

    lines: list[int]
    team_id: str
    object_type: str
    submitted_at: set[datetime.datetime]
    rows: dict[int, RowFacts]


@dataclass
class LoggedRejected:
    line: int
    team_id: str
    object_type: str
    submitted_at: datetime.datetime
    http_status: int
    message: str
    keys: list[str | None]


@dataclass
class ImportLogContents:
    syncs: list[LoggedSync] = field(default_factory=list)
    rejected: list[LoggedRejected] = field(default_factory=list)
    # Async jobs (202) and the caller's key of each of their rows.
    async_keys: dict[JobKey, list[str | None] | None] = field(default_factory=dict)


def read_import_log(path: Path) -> ImportLogContents:
    contents = ImportLogContents()
    by_idempotency_key: dict[tuple[str, str, str], LoggedSync] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        entry = json.loads(raw)
        team, object_type, status = (
            entry["team_id"].lower(),
            entry["object_type"],
            entry["http_status"],
        )
        submitted = utc_naive(entry["submitted_at"])
        keys: list[str | None] | None = entry.get("input_keys")
        response: dict[str, Any] = entry["response"]
        if status == HTTP_ACCEPTED:
            ref = parse_ref(entry.get("location") or f"{team}/{response['job_id']}")
            if ref is None:
                msg = f"{path}:{number}: no job ref in the 202 line"
                raise SystemExit(msg)
            contents.async_keys[ref] = keys
        elif status == HTTP_OK:
            idempotency = (
                team,
                entry.get("idempotency_key") or "",
                json.dumps(response, sort_keys=True),
            )
            same = by_idempotency_key.get(idempotency) if idempotency[1] else None
            if same is not None:  # the API replayed the first answer: one import
                same.lines.append(number)
                same.submitted_at.add(submitted)
                continue
            logged = LoggedSync(
                [number], team, object_type, {submitted}, row_facts(response["results"], keys)
            )
            contents.syncs.append(logged)
            if idempotency[1]:
                by_idempotency_key[idempotency] = logged
        else:
            message = str(response.get("message") or response.get("body") or "")
            contents.rejected.append(
                LoggedRejected(number, team, object_type, submitted, status, message, keys or [])
            )
    return contents


# ---------------------------------------------------------------- the warehouse


@dataclass
class LoadedJob:
    status: str
    mode: str | None
    object_type: str | None
    submitted_at: datetime.datetime | None
    total: int
    error_code: str | None
    error_message: str | None


@dataclass
class Warehouse:
    jobs: dict[JobKey, LoadedJob]
    rows: dict[JobKey, dict[int, RowFacts]]
    duplicated_rows: list[str]

    @classmethod
    def load(cls, db: duckdb.DuckDBPyConnection, schema: str) -> Warehouse:
        jobs = {
            (str(team), str(job)): LoadedJob(status, mode, kind, submitted, int(total), code, text)
            for team, job, status, mode, kind, submitted, total, code, text in db.sql(
                "SELECT team_id, job_id, status, mode, object_type, submitted_at, total, "  # noqa: S608
                f'error_code, error_message FROM "{schema}".import_jobs'
            ).fetchall()
        }
        rows: dict[JobKey, dict[int, RowFacts]] = {}
        seen = Counter[tuple[str, str, int]]()
        for team, job, index, result, record_id, error_code, source_key in db.sql(
            "SELECT team_id, job_id, row_index, outcome, record_id, error_code, "  # noqa: S608
            f'source_key FROM "{schema}".import_results'
        ).fetchall():
            key = (str(team), str(job))
            seen[(key[0], key[1], int(index))] += 1
            rows.setdefault(key, {})[int(index)] = (result, record_id, error_code, source_key)
        duplicated = [
            f"{team}/{job} row {index} loaded {count} times"
            for (team, job, index), count in seen.items()
            if count > 1
        ]
        return cls(jobs, rows, duplicated)

    def find(
        self, mode: str, team_id: str, object_type: str, submitted_at: set[datetime.datetime]
    ) -> list[JobKey]:
        """The loaded jobs of a logged import: same mode, team, object type and submission."""
        return [
            key
            for key, job in self.jobs.items()
            if job.mode == mode
            and key[0] == team_id
            and job.object_type == object_type
            and job.submitted_at in submitted_at
        ]


# ---------------------------------------------------------------- the comparison


@dataclass
class CheckResult:
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)


def _compare_rows(
    name: str, expected: dict[int, RowFacts], loaded: dict[int, RowFacts]
) -> str | None:
    if loaded == expected:
        return None
    missing = len(expected.keys() - loaded.keys())
    extra = len(loaded.keys() - expected.keys())
    differ = sum(1 for i in expected.keys() & loaded.keys() if loaded[i] != expected[i])
    return (
        f"{name}: served {len(expected):,} rows, warehouse holds {len(loaded):,} "
        f"({missing:,} missing, {extra:,} extra, {differ:,} different)"
    )


def check_api(
    warehouse: Warehouse, served: dict[JobKey, Served], log: ImportLogContents, result: CheckResult
) -> tuple[int, int]:
    """Jobs the API serves against the warehouse; returns (complete jobs, their rows)."""
    complete_jobs = expected_rows = 0
    for key, now in served.items():
        ref = "/".join(key)
        loaded = warehouse.jobs.get(key)
        if now.status is None:
            shown = "not loaded" if loaded is None else f"loaded earlier as {loaded.status}"
            result.notes.append(f"{ref} answers 404 (expired or unknown): {shown}")
            continue
        if loaded is None:
            result.problems.append(f"{ref}: the API serves it ({now.status}) but it was not loaded")
            continue
        if loaded.status != "complete":
            if warehouse.rows.get(key):
                result.problems.append(f"{ref}: loaded as {loaded.status} but has result rows")
            if now.status != loaded.status:
                result.notes.append(
                    f"{ref} was {loaded.status} when extracted, is {now.status} now"
                )
            continue
        if now.status != "complete":
            result.problems.append(f"{ref}: loaded as complete, the API says {now.status}")
            continue
        complete_jobs += 1
        expected = row_facts(now.results, log.async_keys.get(key))
        expected_rows += len(expected)
        problem = _compare_rows(ref, expected, warehouse.rows.get(key, {}))
        if problem:
            result.problems.append(problem)
    return complete_jobs, expected_rows


def check_log(
    warehouse: Warehouse, log: ImportLogContents, path: Path, result: CheckResult
) -> tuple[set[JobKey], int]:
    """Sync and rejected imports of the log against the warehouse; returns their jobs, rows."""
    matched: set[JobKey] = set()
    expected_rows = 0
    for sync in log.syncs:
        name = f"sync import at {path.name}:{','.join(map(str, sync.lines))}"
        found = warehouse.find("sync", sync.team_id, sync.object_type, sync.submitted_at)
        if len(found) != 1:
            result.problems.append(f"{name}: loaded as {len(found)} jobs, not 1")
            continue
        matched.add(found[0])
        expected_rows += len(sync.rows)
        if warehouse.jobs[found[0]].status != "complete":
            result.problems.append(f"{name}: loaded as {warehouse.jobs[found[0]].status}")
        problem = _compare_rows(name, sync.rows, warehouse.rows.get(found[0], {}))
        if problem:
            result.problems.append(problem)
    for rejected in log.rejected:
        name = f"rejected import at {path.name}:{rejected.line}"
        found = warehouse.find(
            "rejected", rejected.team_id, rejected.object_type, {rejected.submitted_at}
        )
        if len(found) != 1:
            result.problems.append(f"{name}: loaded as {len(found)} jobs, not 1")
            continue
        matched.add(found[0])
        job = warehouse.jobs[found[0]]
        facts = (job.status, job.error_code, job.error_message, job.total)
        logged = ("failed", f"http_{rejected.http_status}", rejected.message, len(rejected.keys))
        if facts != logged:
            result.problems.append(f"{name}: loaded as {facts}, the log says {logged}")
        if warehouse.rows.get(found[0]):
            result.problems.append(f"{name}: has result rows")
    return matched, expected_rows


def check(
    warehouse: Warehouse, served: dict[JobKey, Served], log: ImportLogContents, log_path: Path
) -> CheckResult:
    """Compare the warehouse with the API and the import log."""
    result = CheckResult(problems=list(warehouse.duplicated_rows))
    complete_jobs, api_rows = check_api(warehouse, served, log, result)
    from_log, log_rows = check_log(warehouse, log, log_path, result)
    result.problems.extend(
        f"{'/'.join(key)}: loaded but neither configured nor in the import log"
        for key in warehouse.jobs.keys() - served.keys() - from_log
    )
    loaded_rows = sum(len(rows) for rows in warehouse.rows.values())
    if not result.problems and loaded_rows != api_rows + log_rows:
        result.problems.append(
            f"warehouse holds {loaded_rows:,} rows, the API and the log served "
            f"{api_rows + log_rows:,}"
        )
    if not result.problems:
        result.summary = [
            (
                f"Rows loaded equal what was served: {loaded_rows:,} rows = {api_rows:,} "
                f"from the API ({complete_jobs} complete jobs)"
            ),
            (
                f"  + {log_rows:,} from the import log ({len(log.syncs)} sync imports); "
                f"{len(log.rejected)} rejected import(s) loaded as failed jobs; "
                f"{len(warehouse.jobs)} jobs loaded."
            ),
        ]
    return result
