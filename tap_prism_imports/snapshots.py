"""A job's status snapshot: its job record and its result records, read from one body.

``body_reader`` reads the body as it streams in; this module judges the top-level
fields (status, counts, date-times, error) and says, once per job, what it changed so
that a warehouse can hold every value. Nothing is emitted from here: the caller emits
a job only after its whole body has been read intact.
"""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from tap_prism_imports.body_reader import (
    COUNT_FIELDS,
    DATETIME_FIELDS,
    SPOOL_BLOCK_ROWS,
    InvalidSnapshotError,
    ResultsSpool,
    read_body,
    read_document,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tap_prism_imports.body_reader import BodyContents
    from tap_prism_imports.job_refs import JobRef

JOB_STATUSES = ("complete", "processing", "failed")
TERMINAL_STATUSES = frozenset({"complete", "failed"})
IMPORT_MODES = ("async", "sync", "rejected")

# Warehouses store counts as signed 64-bit integers (bigint).
MAX_COUNT = 2**63 - 1
# Values from the body quoted in warnings and errors are cut to this length.
_SHOWN_CHARACTERS = 100


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def format_datetime(moment: datetime.datetime) -> str:
    """The one date-time format the tap emits: UTC, microseconds, explicit offset."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_datetime(value: str) -> datetime.datetime:
    """Parse an RFC 3339 date-time; one without an offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def normalize_datetime(value: object) -> str | None:
    """Return the value as a UTC date-time string, or ``None`` when it is no date-time."""
    if not isinstance(value, str):
        return None
    try:
        return format_datetime(parse_datetime(value))
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved to UTC
        return None


@dataclass
class JobSnapshot:
    """What one GET returned for one job, ready to emit."""

    ref: JobRef
    record: dict[str, t.Any]
    results: ResultsSpool | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return t.cast("str", self.record["status"])

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def close(self) -> None:
        if self.results is not None:
            self.results.close()
            self.results = None


def _count(top: dict[str, t.Any], name: str, warnings: list[str]) -> int | None:
    """A count as the schema declares it (0 to 2^63-1), or ``None`` with a warning.

    ``total`` is required: a body without a usable one is refused.
    """
    value = top.get(name)
    if value is None:
        return None
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
        msg = f"total is {_shown(value)}, {problem}"
        raise InvalidSnapshotError(msg)
    warnings.append(f"{name} is {_shown(value)}, {problem}; emitted as null")
    return None


def parse_snapshot(
    body: t.BinaryIO,
    ref: JobRef,
    fetched_at: datetime.datetime,
    source_keys: Sequence[str | None] | None = None,
) -> JobSnapshot:
    """Read a whole snapshot body; raises ``InvalidSnapshotError`` for unusable bodies.

    ijson's own errors (malformed or cut-off JSON) propagate unchanged so the caller
    can tell a body cut in transit from one the API sent broken. Values the schema
    cannot hold are emitted as null or cleaned, each kind with one warning.
    ``source_keys`` name the rows by position (see ``snapshot_from_document``).
    """
    fetched = format_datetime(fetched_at)
    try:
        contents = read_body(body, ref, fetched, source_keys)
    except UnicodeDecodeError as error:
        msg = f"the body is not UTF-8 text: {error}"
        raise InvalidSnapshotError(msg) from error
    return _snapshot(contents, ref, fetched, source_keys)


def snapshot_from_document(
    document: dict[str, t.Any],
    ref: JobRef,
    fetched_at: datetime.datetime,
    source_keys: Sequence[str | None] | None = None,
) -> JobSnapshot:
    """The snapshot a parsed body holds, judged as ``parse_snapshot`` judges its text.

    ``source_keys`` (the import log's ``input_keys``, NUL removed) set each row's
    ``source_key`` by position, unless their number differs from the rows': then no
    row gets one, since a position off by one would name the wrong row.
    """
    fetched = format_datetime(fetched_at)
    contents = read_document(document, ref, fetched, source_keys)
    return _snapshot(contents, ref, fetched, source_keys)


def _snapshot(
    contents: BodyContents,
    ref: JobRef,
    fetched: str,
    source_keys: Sequence[str | None] | None,
) -> JobSnapshot:
    top, rows, spool = contents.top, contents.rows, contents.rows.spool
    warnings: list[str] = []
    texts = _TextCleaner()
    try:
        record = _job_record(top, ref, fetched, spool, warnings=warnings, texts=texts)
    except BaseException:
        rows.close()
        raise
    snapshot = JobSnapshot(ref=ref, record=record, warnings=warnings)
    if spool is not None and source_keys is not None and len(source_keys) != spool.count:
        warnings.append(
            f"the import log has {len(source_keys)} input_keys for {spool.count} results; "
            "source_key is left empty for its rows"
        )
        spool = without_source_keys(spool)
    if spool is not None and snapshot.is_terminal:
        snapshot.results = spool
    elif spool is not None:
        # Results are only final once the job is: a processing job's are not emitted.
        spool.close()
    warnings.extend(
        f"{name} is {_shown(top[name])}, not an RFC 3339 date-time; emitted as null"
        for name in DATETIME_FIELDS
        if top.get(name) is not None and record[name] is None
    )
    body_job_id = top.get("job_id")
    if body_job_id is not None and body_job_id != ref.job_id:
        warnings.append(
            f"the body names job_id {_shown(body_job_id)}, not the job requested; "
            "its records keep the requested job's id"
        )
    if rows.ids_not_uuid:
        warnings.append(
            f"{rows.ids_not_uuid} results have an id that is not a UUID; "
            "their record_id is emitted as null"
        )
    if rows.wrong_types:
        warnings.append(
            f"{rows.wrong_types} result fields have the wrong type (id not a string, "
            "created or existing not a boolean); emitted as null"
        )
    nul_values = rows.nul_values + texts.nul_values
    if nul_values:
        warnings.append(
            f"{nul_values} text values contained NUL characters, removed "
            "(warehouses cannot store them)"
        )
    if contents.replaced_surrogates:
        warnings.append(
            f"{contents.replaced_surrogates} unpaired UTF-16 surrogate escapes "
            "(\\ud800-\\udfff) replaced with U+FFFD"
        )
    return snapshot


def _job_record(
    top: dict[str, t.Any],
    ref: JobRef,
    fetched_at: str,
    spool: ResultsSpool | None,
    *,
    warnings: list[str],
    texts: _TextCleaner,
) -> dict[str, t.Any]:
    status = top.get("status")
    if status not in JOB_STATUSES:
        shown = "missing" if status is None else _shown(status)
        msg = f"status is {shown}, not one of {', '.join(JOB_STATUSES)}"
        raise InvalidSnapshotError(msg)
    if top.get("total") is None:
        msg = "total is missing"
        raise InvalidSnapshotError(msg)
    counts = {name: _count(top, name, warnings) for name in COUNT_FIELDS}
    error_code = error_message = None
    if "error" in top or "error.code" in top or "error.message" in top:
        error_code = texts.clean(top.get("error.code"))
        # A bare string is the message (as for a row's error).
        bare = top.get("error")
        message = top.get("error.message")
        error_message = texts.clean(bare if message is None and isinstance(bare, str) else message)
    return {
        "team_id": ref.team_id,
        "job_id": ref.job_id,
        "status": status,
        **counts,
        "error_code": error_code,
        "error_message": error_message,
        **{name: normalize_datetime(top.get(name)) for name in DATETIME_FIELDS},
        "results_count": spool.count if spool is not None and status != "processing" else None,
        "fetched_at": fetched_at,
        # A job read at GET is async; the import log tells its object type and submission.
        "mode": "async",
        "object_type": None,
        "submitted_at": None,
    }


class _TextCleaner:
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


def _shown(value: object) -> str:
    """A value from the body for a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARACTERS else text[: _SHOWN_CHARACTERS - 3] + "..."


def iter_result_records(spool: ResultsSpool) -> Iterator[dict[str, t.Any]]:
    """The spooled records as dicts, for the SDK's per-record path."""
    for line in spool.lines():
        yield orjson.loads(line)


def without_source_keys(spool: ResultsSpool) -> ResultsSpool:
    """The same records with every ``source_key`` null (``spool`` is closed)."""
    return rekeyed(spool, None)


def rekeyed(spool: ResultsSpool, keys: Sequence[str | None] | None) -> ResultsSpool:
    """The same records with ``source_key`` set from ``keys`` by row (``spool`` is closed).

    Block by block, in flat memory; ``keys`` must have one key per record, or be ``None``.
    """
    keyed = ResultsSpool()
    try:
        lines: list[bytes] = []
        outcomes: list[str | None] = []
        for data in spool.lines():
            result = orjson.loads(data)
            result["source_key"] = None if keys is None else keys[result["row_index"]]
            lines.append(orjson.dumps(result, option=orjson.OPT_APPEND_NEWLINE))
            outcomes.append(result["outcome"])
            if len(lines) >= SPOOL_BLOCK_ROWS:
                keyed.append_block(b"".join(lines), len(lines), outcomes)
                lines, outcomes = [], []
        keyed.append_block(b"".join(lines), len(lines), outcomes)
    except BaseException:
        keyed.close()
        raise
    finally:
        spool.close()
    return keyed
