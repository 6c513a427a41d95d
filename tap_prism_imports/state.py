"""What the tap remembers between runs about each job, and when it says so.

The ledger lives in the ``import_jobs`` stream state under ``jobs``:
``{"TEAM_ID/JOB_ID": {"status": ..., "requested_at": ..., "expires_at": ...}}``.
An entry changes only after everything fetched for that job has been emitted,
so a STATE message never claims more than the records before it.
"""

from __future__ import annotations

import datetime
import time
import typing as t

from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.snapshots import (
    TERMINAL_STATUSES,
    format_datetime,
    normalize_datetime,
    parse_datetime,
)

if t.TYPE_CHECKING:
    from collections.abc import Collection

    from tap_prism_imports.snapshots import JobSnapshot

STATE_FORMAT_VERSION = 1
NOT_FOUND = "not_found"
KNOWN_STATUSES = frozenset({"complete", "processing", "failed", NOT_FOUND})
JOBS_STREAM = "import_jobs"
# The API keeps async jobs 7 days; an entry past that can only ever answer 404.
RETENTION = datetime.timedelta(days=7)


class InvalidStateError(ConfigValidationError):
    """The incoming state cannot be read; nothing was requested."""

    def __init__(self, key: str, problem: str) -> None:
        msg = (
            f"The state's `{key}` {problem}. Fix or remove that key in the state, or run "
            "without state (every configured job is then requested again; rows are upserted "
            "on their keys, so nothing is duplicated)."
        )
        super().__init__(msg, errors=[msg])


def validate_state(state: object) -> None:
    """Check the shape of an incoming state before any request; raise naming the key."""
    problem = _shape_problem(state)
    if problem is not None:
        raise InvalidStateError(*problem)
    jobs_format = t.cast("dict[str, t.Any]", state).get("bookmarks", {}).get(JOBS_STREAM, {})
    version = jobs_format.get("jobs_format", STATE_FORMAT_VERSION)
    if version != STATE_FORMAT_VERSION:
        msg = (
            f"The state's jobs_format {version!r} was written by another version of "
            f"tap-prism-imports (this one reads {STATE_FORMAT_VERSION}); "
            "upgrade the tap or run without state."
        )
        raise ConfigValidationError(msg, errors=[msg])


def _shape_problem(state: object) -> tuple[str, str] | None:  # noqa: PLR0911 - one per key
    """The first key of ``state`` whose value has the wrong shape, and what is wrong."""
    if not isinstance(state, dict):
        return "(top level)", f"is {_kind(state)}, not a JSON object"
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        return "bookmarks", f"is {_kind(bookmarks)}, not an object"
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, dict):
            return f"bookmarks.{stream}", f"is {_kind(stream_state)}, not an object"
    key = f"bookmarks.{JOBS_STREAM}"
    jobs_state = bookmarks.get(JOBS_STREAM, {})
    version = jobs_state.get("jobs_format", STATE_FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        return f"{key}.jobs_format", f"is {version!r}, not an integer"
    import_log = jobs_state.get("import_log", {})
    if not isinstance(import_log, dict):
        return f"{key}.import_log", f"is {_kind(import_log)}, not an object"
    jobs = jobs_state.get("jobs", {})
    if not isinstance(jobs, dict):
        return f"{key}.jobs", f"is {_kind(jobs)}, not an object"
    for job, entry in jobs.items():
        if not isinstance(entry, dict):
            return f'{key}.jobs["{job}"]', f"is {_kind(entry)}, not an object"
    return None


def _kind(value: object) -> str:
    names = {str: "a string", list: "a list", int: "a number", float: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)


class JobLedger:
    """Per-job progress, kept inside the SDK's state dict and updated in place.

    The state was checked by ``validate_state`` before the run.
    """

    def __init__(self, stream_state: dict[str, t.Any]) -> None:
        stream_state["jobs_format"] = STATE_FORMAT_VERSION
        self._jobs: dict[str, dict[str, t.Any]] = stream_state.setdefault("jobs", {})

    def __len__(self) -> int:
        return len(self._jobs)

    def status(self, ref: JobRef) -> str | None:
        entry = self._jobs.get(ref.key)
        return None if entry is None else entry.get("status")

    def requested_at(self, ref: JobRef) -> str:
        """When the job was last requested ('' if never), for oldest-first budgeting."""
        entry = self._jobs.get(ref.key)
        return "" if entry is None else str(entry.get("requested_at") or "")

    def is_expired(self, ref: JobRef, now: datetime.datetime) -> bool:
        entry = self._jobs.get(ref.key)
        return entry is not None and _is_complete(entry) and _past_retention(entry, now)

    def needs_request(self, ref: JobRef, now: datetime.datetime, *, refresh_terminal: bool) -> bool:
        entry = self._jobs.get(ref.key)
        if entry is None or not _is_complete(entry):
            # Nothing reliable is known of the job: it is requested, never skipped.
            return True
        if _past_retention(entry, now):
            return False
        return refresh_terminal or entry.get("status") not in TERMINAL_STATUSES

    def record_snapshot(self, snapshot: JobSnapshot) -> None:
        record = snapshot.record
        expires_at = record["expires_at"]
        if expires_at is None and record["created_at"] is not None:
            expires_at = format_datetime(parse_datetime(record["created_at"]) + RETENTION)
        self._set(
            snapshot.ref,
            status=record["status"],
            requested_at=record["fetched_at"],
            expires_at=expires_at,
        )

    def record_not_found(self, ref: JobRef, requested_at: datetime.datetime) -> None:
        self._set(
            ref, status=NOT_FOUND, requested_at=format_datetime(requested_at), expires_at=None
        )

    def _set(self, ref: JobRef, **fields: t.Any) -> None:
        # What the import log said of the job stays: its keys are needed once it completes.
        logged = self._jobs.get(ref.key, {}).get("log")
        self._jobs[ref.key] = {**fields, **({"log": logged} if logged is not None else {})}

    def remember_logged_job(self, ref: JobRef, log: dict[str, t.Any]) -> None:
        """A job handed over by the import log: followed from now on, as a configured one.

        ``log`` holds its ``object_type``, ``submitted_at`` and ``input_keys_at`` (where its
        keys are; never the keys themselves).
        """
        entry = self._jobs.setdefault(ref.key, {"status": None, "requested_at": None})
        entry.setdefault("expires_at", None)
        entry["log"] = log

    def logged_job(self, ref: JobRef) -> dict[str, t.Any] | None:
        entry = self._jobs.get(ref.key)
        return None if entry is None else entry.get("log")

    def logged_jobs(self, now: datetime.datetime) -> list[JobRef]:
        """Jobs the import log handed over in earlier runs, while the API may still keep them."""
        refs = []
        for key, entry in self._jobs.items():
            submitted_at = normalize_datetime((entry.get("log") or {}).get("submitted_at"))
            if submitted_at is not None and parse_datetime(submitted_at) + RETENTION > now:
                team_id, _, job_id = key.partition("/")
                refs.append(JobRef(team_id, job_id))
        return refs

    def record_request(self, ref: JobRef, requested_at: datetime.datetime) -> None:
        """A request was spent on the job without a usable answer: status stays as it was."""
        entry = self._jobs.setdefault(ref.key, {"status": None, "expires_at": None})
        entry["requested_at"] = format_datetime(requested_at)

    def prune(self, configured: Collection[str], now: datetime.datetime) -> None:
        """Drop entries of jobs no longer configured that can no longer be fetched."""
        # An incomplete entry of a job no longer configured can tell nothing to anyone.
        stale = [
            key
            for key, entry in self._jobs.items()
            if key not in configured and (not _is_complete(entry) or _past_retention(entry, now))
        ]
        for key in stale:
            del self._jobs[key]


def _is_complete(entry: dict[str, t.Any]) -> bool:
    """A known status and a readable ``expires_at`` or ``requested_at``: safe to act on."""
    return entry.get("status") in KNOWN_STATUSES and (
        normalize_datetime(entry.get("expires_at")) is not None
        or normalize_datetime(entry.get("requested_at")) is not None
    )


def _past_retention(entry: dict[str, t.Any], now: datetime.datetime) -> bool:
    """Whether the API can only answer 404 for the job (of a complete entry): known gone,
    or past 7 days."""
    if entry.get("status") == NOT_FOUND:
        return True
    expires_at = normalize_datetime(entry.get("expires_at"))
    if expires_at is not None:
        return parse_datetime(expires_at) <= now
    requested_at = normalize_datetime(entry.get("requested_at"))
    return requested_at is not None and parse_datetime(requested_at) + RETENTION <= now


class StateCheckpoints:
    """Rations STATE messages to one per interval.

    Every STATE message carries every job's entry, and the SDK writes one after each
    child sync; one per job would make a run quadratic in the number of jobs.
    """

    # With the interval at this many seconds per ledger entry, a run paced at R
    # requests/s writes about 100 / R STATE messages however many jobs it has.
    SECONDS_PER_ENTRY = 0.01

    def __init__(self, interval_seconds: float = 1.0) -> None:
        self._interval = interval_seconds
        self._last = -float("inf")
        self.unthrottled = False
        self.final_only = False

    def scale_to(self, entries: int) -> None:
        """Stretch the interval as the ledger grows, keeping the STATE bytes linear."""
        self._interval = max(self._interval, entries * self.SECONDS_PER_ENTRY)

    def due(self) -> bool:
        if self.final_only and not self.unthrottled:
            return False
        now = time.monotonic()
        if self.unthrottled or now - self._last >= self._interval:
            self._last = now
            return True
        return False
