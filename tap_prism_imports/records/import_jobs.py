"""The ``import_jobs`` stream's record: its schema, its values, and how each is built.

One record per import per run. A job read at the API gets its record from the body's
top-level fields, judged so that a warehouse can hold every value (a count out of
range or a date-time that is none becomes null, with one warning per job); the import
log adds the columns only it knows, and gives sync and rejected imports theirs.
Adding a column is one edit here (schema and builders) and its test.
"""

from __future__ import annotations

import typing as t
from decimal import Decimal

from singer_sdk import typing as th

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.times import normalize_datetime

if t.TYPE_CHECKING:
    from tap_prism_imports.job_refs import JobRef

JOB_STATUSES = ("complete", "processing", "failed")
TERMINAL_STATUSES = frozenset({"complete", "failed"})
IMPORT_MODES = ("async", "sync", "rejected")
# The body's top-level fields the record is built from (besides status and error).
COUNT_FIELDS = ("total", "processed", "succeeded", "failed")
DATETIME_FIELDS = ("created_at", "updated_at", "expires_at")

# Warehouses store counts as signed 64-bit integers (bigint).
MAX_COUNT = 2**63 - 1
# Values from the body quoted in warnings and errors are cut to this length.
_SHOWN_CHARACTERS = 100

SCHEMA = th.PropertiesList(
    th.Property("team_id", th.UUIDType, required=True, description="The job's team."),
    th.Property("job_id", th.StringType, required=True, description="The async job's id."),
    th.Property(
        "status",
        th.StringType(allowed_values=list(JOB_STATUSES)),
        required=True,
        description="complete, processing or failed (failed: a job-level error).",
    ),
    th.Property("total", th.IntegerType, required=True, description="Rows in the import."),
    th.Property("processed", th.IntegerType, description="Rows attempted so far."),
    th.Property("succeeded", th.IntegerType, description="Rows created or matched."),
    th.Property("failed", th.IntegerType, description="Rows rejected."),
    th.Property("error_code", th.StringType, description="Job-level error code."),
    th.Property("error_message", th.StringType, description="Job-level error message."),
    th.Property("created_at", th.DateTimeType, description="When the job was created (UTC)."),
    th.Property("updated_at", th.DateTimeType, description="Last progress (UTC)."),
    th.Property("expires_at", th.DateTimeType, description="When the API forgets the job (UTC)."),
    th.Property(
        "results_count",
        th.IntegerType,
        description="Rows in the snapshot's results, emitted to import_results; "
        "null while processing or when the API sent no results.",
    ),
    th.Property(
        "fetched_at",
        th.DateTimeType,
        required=True,
        description="When this snapshot was requested (UTC); the replication key. For "
        "sync and rejected imports, when the tap read them from the import log.",
    ),
    th.Property(
        "mode",
        th.StringType(allowed_values=[*IMPORT_MODES, None]),
        description="async (followed at GET), sync (answered by the POST, read from the "
        "import log) or rejected (the POST failed, read from the import log).",
    ),
    th.Property(
        "object_type",
        th.StringType,
        description="contact, organization, ... as in the POST path; null unless the "
        "import log names it.",
    ),
    th.Property(
        "submitted_at",
        th.DateTimeType,
        description="When the POST was sent (UTC); null unless the import log names it.",
    ),
).to_dict()


def _count(top: dict[str, t.Any], name: str, warnings: list[str]) -> int | None:
    """A count as the schema declares it (0 to 2^63-1), or ``None`` with a warning.

    ``total`` is required: a body without a usable one is refused.
    """
    value = top.get(name)
    if value is None or (type(value) is int and 0 <= value <= MAX_COUNT):
        return value
    # ijson gives int, or Decimal for any number with a fraction or exponent. The
    # range is checked first: int() of a Decimal like 1e999999999 would not finish.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        problem = "not a whole number"
    elif not 0 <= value <= MAX_COUNT:
        problem = f"not a count from 0 to {MAX_COUNT}"
    elif value != int(value):
        problem = "not a whole number"
    else:
        return int(value)
    if name == "total":
        msg = f"total is {shown(value)}, {problem}"
        raise InvalidSnapshotError(msg)
    warnings.append(f"{name} is {shown(value)}, {problem}; emitted as null")
    return None


def _counts(top: dict[str, t.Any], warnings: list[str]) -> list[int | None]:
    """The four counts, each as ``_count`` gives it; one call for the usual case."""
    counts = [top.get("total"), top.get("processed"), top.get("succeeded"), top.get("failed")]
    for value in counts:
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_COUNT):
            return [_count(top, name, warnings) for name in COUNT_FIELDS]
    return counts


def job_record(
    top: dict[str, t.Any],
    ref: JobRef,
    fetched_at: str,
    results_count: int | None,
    *,
    warnings: list[str],
    texts: TextCleaner,
) -> dict[str, t.Any]:
    """A job's record from its body's top-level fields (as ``body_reader`` gives them).

    ``results_count`` is how many rows the body held (``None`` without results).
    Raises ``InvalidSnapshotError`` when the body is no usable snapshot.
    """
    status = top.get("status")
    if status not in JOB_STATUSES:
        shown_status = "missing" if status is None else shown(status)
        msg = f"status is {shown_status}, not one of {', '.join(JOB_STATUSES)}"
        raise InvalidSnapshotError(msg)
    if top.get("total") is None:
        msg = "total is missing"
        raise InvalidSnapshotError(msg)
    error_code = error_message = None
    if "error" in top or "error.code" in top or "error.message" in top:
        error_code = texts.clean(top.get("error.code"))
        # A bare string is the message (as for a row's error).
        bare = top.get("error")
        message = top.get("error.message")
        error_message = texts.clean(bare if message is None and isinstance(bare, str) else message)
    total, processed, succeeded, failed = _counts(top, warnings)
    # Field by field, each call only for a value to convert: once per import of the log.
    created_at, updated_at = top.get("created_at"), top.get("updated_at")
    expires_at = top.get("expires_at")
    return {
        "team_id": ref.team_id,
        "job_id": ref.job_id,
        "status": status,
        "total": total,
        "processed": processed,
        "succeeded": succeeded,
        "failed": failed,
        "error_code": error_code,
        "error_message": error_message,
        "created_at": None if created_at is None else normalize_datetime(created_at),
        "updated_at": None if updated_at is None else normalize_datetime(updated_at),
        "expires_at": None if expires_at is None else normalize_datetime(expires_at),
        "results_count": results_count if status != "processing" else None,
        "fetched_at": fetched_at,
        # A job read at GET is async; the import log tells its object type and submission.
        "mode": "async",
        "object_type": None,
        "submitted_at": None,
    }


class TextCleaner:
    """Job-level text as a warehouse can store it: any scalar as text, NUL removed."""

    def __init__(self) -> None:
        self.nul_values = 0

    def clean(self, value: object) -> str | None:
        if value is None:
            return None
        text = str(value)
        if "\x00" in text:
            self.nul_values += 1
            text = text.replace("\x00", "")
        return text


def shown(value: object) -> str:
    """A value from the body for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."


def failed_import_record(
    team_id: str,
    job_id: str,
    *,
    fetched_at: str,
    error_code: str,
    error_message: str | None,
    total: int,
) -> dict[str, t.Any]:
    """The record of an import the import log holds but no snapshot describes: a
    rejected request, or an answer the tap cannot use."""
    return {
        "team_id": team_id,
        "job_id": job_id,
        "status": "failed",
        "total": total,
        "processed": None,
        "succeeded": None,
        "failed": None,
        "error_code": error_code,
        "error_message": error_message,
        "created_at": None,
        "updated_at": None,
        "expires_at": None,
        "results_count": None,
        "fetched_at": fetched_at,
        "mode": None,
        "object_type": None,
        "submitted_at": None,
    }


def with_log_columns(
    record: dict[str, t.Any], *, mode: str, object_type: str | None, submitted_at: str | None
) -> None:
    """Set in ``record`` what the import log knows of the import."""
    record["mode"], record["object_type"], record["submitted_at"] = mode, object_type, submitted_at
