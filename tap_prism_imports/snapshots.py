"""Read one job's status snapshot from a response body, as a stream.

The body of a large job is one JSON object whose ``results`` array can hold a
million rows, and top-level fields may come after it. The parser walks the body
once, keeps the top-level fields, and writes each result as a finished
``import_results`` record (one JSON line) to a spool that stays in memory while
small and moves to a temporary file when it grows. Nothing is emitted from
here: the caller emits a job only after its whole body has been read intact.
"""

from __future__ import annotations

import datetime
import tempfile
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import ijson
import orjson

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_prism_imports.job_refs import JobRef

JOB_STATUSES = ("complete", "processing", "failed")
TERMINAL_STATUSES = frozenset({"complete", "failed"})
OUTCOMES = ("created", "existing", "failed")

# Spools hold finished record lines; past this size they live on disk, so many
# jobs fetched ahead of emission cost little memory.
SPOOL_MEMORY_BYTES = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024

_COUNT_FIELDS = ("total", "processed", "succeeded", "failed")
_DATETIME_FIELDS = ("created_at", "updated_at", "expires_at")
_SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})


class InvalidSnapshotError(ValueError):
    """The API answered 200 with a body that is not a usable job snapshot."""


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
    except ValueError:
        return None


def result_outcome(*, created: object, existing: object, has_error: bool) -> str | None:
    if has_error:
        return "failed"
    if created is True:
        return "created"
    if existing is True:
        return "existing"
    return None


class ResultsSpool:
    """A job's ``import_results`` records as JSON lines, counted by outcome."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        self.count = 0
        self.outcomes: Counter[str | None] = Counter()

    def append(self, line: bytes, outcome: str | None) -> None:
        self._file.write(line)
        self.count += 1
        self.outcomes[outcome] += 1

    def lines(self) -> Iterator[bytes]:
        """Each record's JSON text, with its trailing newline."""
        self._file.seek(0)
        yield from self._file

    def close(self) -> None:
        self._file.close()


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


class _ResultsWriter:
    """Turns the parser's events for ``results`` items into record lines."""

    def __init__(self, ref: JobRef, fetched_at: str) -> None:
        self.spool = ResultsSpool()
        self._head = {"team_id": ref.team_id, "job_id": ref.job_id}
        self._fetched_at = fetched_at
        self._reset()

    def _reset(self) -> None:
        self.record_id: object = None
        self.created: object = None
        self.existing: object = None
        self.error_code: object = None
        self.error_message: object = None
        self.has_error = False

    def set_field(self, name: str, event: str, value: object) -> None:
        if name == "id":
            self.record_id = value if event == "string" else None
        elif name == "created":
            self.created = value if event == "boolean" else None
        elif name == "existing":
            self.existing = value if event == "boolean" else None
        elif name == "error":
            # ``error: null`` means no error; a bare string is taken as the message.
            if event == "start_map":
                self.has_error = True
            elif event == "string":
                self.has_error = True
                self.error_message = value
        elif name == "error.code":
            self.error_code = value if event == "string" else None
        elif name == "error.message":
            self.error_message = value if event == "string" else None

    def finish_row(self) -> None:
        outcome = result_outcome(
            created=self.created, existing=self.existing, has_error=self.has_error
        )
        record = {
            **self._head,
            "row_index": self.spool.count,
            "record_id": self.record_id,
            "outcome": outcome,
            "created": self.created,
            "existing": self.existing,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "fetched_at": self._fetched_at,
        }
        self.spool.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE), outcome)
        self._reset()


class _BodyWalker:
    """One pass over the body's parse events: top-level fields kept, results spooled."""

    def __init__(self, ref: JobRef, fetched_at: str) -> None:
        self.ref = ref
        self.fetched_at = fetched_at
        self.top: dict[str, t.Any] = {}
        self.writer: _ResultsWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.spool.close()

    def walk(self, body: t.BinaryIO) -> None:  # noqa: PLR0912
        top, writer, seen_root = self.top, self.writer, False
        for prefix, event, value in ijson.parse(body, buf_size=READ_CHUNK_BYTES):
            if prefix.startswith("results.item"):
                if writer is None:  # pragma: no cover - ijson emits start_array first
                    continue
                if prefix == "results.item":
                    if event == "end_map":
                        writer.finish_row()
                    elif event not in {"start_map", "map_key"}:
                        msg = f"results[{writer.spool.count}] is not an object"
                        raise InvalidSnapshotError(msg)
                else:
                    writer.set_field(prefix[13:], event, value)
            elif prefix == "results":
                if event == "start_array":
                    writer = self.writer = _ResultsWriter(self.ref, self.fetched_at)
                elif event not in {"end_array", "null"}:
                    msg = "results is not a list"
                    raise InvalidSnapshotError(msg)
            elif not prefix:
                if not seen_root and event != "start_map":
                    msg = "the body is not a JSON object"
                    raise InvalidSnapshotError(msg)
                seen_root = True
            elif event in _SCALAR_EVENTS and (prefix in _TOP_FIELDS or prefix.startswith("error.")):
                top[prefix] = value
            elif prefix == "error" and event == "start_map":
                top["error"] = True


_TOP_FIELDS = frozenset({"job_id", "status", "error", *_COUNT_FIELDS, *_DATETIME_FIELDS})


def _count(top: dict[str, t.Any], name: str) -> int | None:
    value = top.get(name)
    if value is None:
        return None
    # ijson gives int, or Decimal for any number with a fraction or exponent.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value != int(value):
        msg = f"{name} is {value!r}, not a whole number"
        raise InvalidSnapshotError(msg)
    return int(value)


def parse_snapshot(body: t.BinaryIO, ref: JobRef, fetched_at: datetime.datetime) -> JobSnapshot:
    """Read a whole snapshot body; raises ``InvalidSnapshotError`` for unusable bodies.

    ijson's own errors (malformed or cut-off JSON) propagate unchanged so the caller
    can tell a body cut in transit from one the API sent broken.
    """
    fetched = format_datetime(fetched_at)
    walker = _BodyWalker(ref, fetched)
    try:
        walker.walk(body)
        record = _job_record(walker.top, ref, fetched, walker.writer)
    except BaseException:
        walker.close()
        raise
    top, writer = walker.top, walker.writer
    snapshot = JobSnapshot(ref=ref, record=record)
    if writer is not None and snapshot.is_terminal:
        snapshot.results = writer.spool
    elif writer is not None:
        # Results are only final once the job is: a processing job's are not emitted.
        writer.spool.close()
    for name in _DATETIME_FIELDS:
        if top.get(name) is not None and record[name] is None:
            snapshot.warnings.append(f"{name} {top[name]!r} is not an RFC 3339 date-time")
    return snapshot


def _job_record(
    top: dict[str, t.Any], ref: JobRef, fetched_at: str, writer: _ResultsWriter | None
) -> dict[str, t.Any]:
    status = top.get("status")
    if status not in JOB_STATUSES:
        shown = "missing" if status is None else repr(status)
        msg = f"status is {shown}, not one of {', '.join(JOB_STATUSES)}"
        raise InvalidSnapshotError(msg)
    if top.get("total") is None:
        msg = "total is missing"
        raise InvalidSnapshotError(msg)
    counts = {name: _count(top, name) for name in _COUNT_FIELDS}
    has_error = "error" in top or "error.code" in top or "error.message" in top
    spool = writer.spool if writer is not None else None
    return {
        "team_id": ref.team_id,
        "job_id": ref.job_id,
        "status": status,
        **counts,
        "error_code": _text(top.get("error.code")) if has_error else None,
        "error_message": _text(top.get("error.message")) if has_error else None,
        **{name: normalize_datetime(top.get(name)) for name in _DATETIME_FIELDS},
        "results_count": spool.count if spool is not None and status != "processing" else None,
        "fetched_at": fetched_at,
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def iter_result_records(spool: ResultsSpool) -> Iterator[dict[str, t.Any]]:
    """The spooled records as dicts, for the SDK's per-record path."""
    for line in spool.lines():
        yield orjson.loads(line)
