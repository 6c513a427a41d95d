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
# Record lines go to the spool in blocks of this many rows.
SPOOL_BLOCK_ROWS = 1024

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

    def append_block(self, block: bytes, count: int, outcomes: list[str | None]) -> None:
        """Append ``count`` record lines at once (``outcomes``: one per line)."""
        self._file.write(block)
        self.count += count
        self.outcomes.update(outcomes)

    def lines(self) -> Iterator[bytes]:
        """Each record's JSON text, with its trailing newline."""
        self._file.seek(0)
        yield from self._file

    def blocks(self, size: int) -> Iterator[bytes]:
        """The record lines in blocks of about ``size`` bytes, each ending with a newline."""
        self._file.seek(0)
        rest = b""
        while chunk := self._file.read(size):
            chunk = rest + chunk
            cut = chunk.rfind(b"\n") + 1
            rest = chunk[cut:]
            if cut:
                yield chunk[:cut]
        if rest:  # pragma: no cover - every line ends with a newline
            yield rest

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


class _BodyWalker:
    """One pass over the body's parse events: top-level fields kept, results spooled."""

    def __init__(self, ref: JobRef, fetched_at: str) -> None:
        self.ref = ref
        self.fetched_at = fetched_at
        self.top: dict[str, t.Any] = {}
        self.spool: ResultsSpool | None = None

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def walk(self, body: t.BinaryIO) -> None:  # noqa: PLR0912, PLR0915
        # One loop, no call per event: a million-row body is ~10 million events.
        top, seen_root = self.top, False
        spool: ResultsSpool | None = None
        head = {"team_id": self.ref.team_id, "job_id": self.ref.job_id}
        fetched_at = self.fetched_at
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        record_id = created = existing = error_code = error_message = None
        has_error = False
        lines: list[bytes] = []
        outcomes: list[str | None] = []
        index = 0
        for prefix, event, value in ijson.parse(body, buf_size=READ_CHUNK_BYTES):
            if prefix == "results.item":
                if event in {"map_key", "start_map"}:
                    continue
                if event != "end_map" or spool is None:
                    msg = f"results[{index}] is not an object"
                    raise InvalidSnapshotError(msg)
                outcome = result_outcome(created=created, existing=existing, has_error=has_error)
                lines.append(
                    dumps(
                        {
                            **head,
                            "row_index": index,
                            "record_id": record_id,
                            "outcome": outcome,
                            "created": created,
                            "existing": existing,
                            "error_code": error_code,
                            "error_message": error_message,
                            "fetched_at": fetched_at,
                        },
                        option=newline,
                    )
                )
                outcomes.append(outcome)
                index += 1
                record_id = created = existing = error_code = error_message = None
                has_error = False
                if len(lines) >= SPOOL_BLOCK_ROWS:
                    spool.append_block(b"".join(lines), len(lines), outcomes)
                    lines.clear()
                    outcomes.clear()
            elif prefix.startswith("results.item."):
                name = prefix[13:]
                if name == "id":
                    record_id = value if event == "string" else None
                elif name == "created":
                    created = value if event == "boolean" else None
                elif name == "existing":
                    existing = value if event == "boolean" else None
                elif name == "error":
                    # ``error: null`` means no error; a bare string is taken as the message.
                    if event == "start_map":
                        has_error = True
                    elif event == "string":
                        has_error = True
                        error_message = value
                elif name == "error.code":
                    error_code = value if event == "string" else None
                elif name == "error.message":
                    error_message = value if event == "string" else None
            elif prefix == "results":
                if event == "start_array":
                    spool = self.spool = ResultsSpool()
                elif event not in {"end_array", "null"}:
                    msg = "results is not a list"
                    raise InvalidSnapshotError(msg)
                elif spool is not None and lines:
                    spool.append_block(b"".join(lines), len(lines), outcomes)
                    lines.clear()
                    outcomes.clear()
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
        record = _job_record(walker.top, ref, fetched, walker.spool)
    except BaseException:
        walker.close()
        raise
    top, spool = walker.top, walker.spool
    snapshot = JobSnapshot(ref=ref, record=record)
    if spool is not None and snapshot.is_terminal:
        snapshot.results = spool
    elif spool is not None:
        # Results are only final once the job is: a processing job's are not emitted.
        spool.close()
    for name in _DATETIME_FIELDS:
        if top.get(name) is not None and record[name] is None:
            snapshot.warnings.append(f"{name} {top[name]!r} is not an RFC 3339 date-time")
    return snapshot


def _job_record(
    top: dict[str, t.Any], ref: JobRef, fetched_at: str, spool: ResultsSpool | None
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
