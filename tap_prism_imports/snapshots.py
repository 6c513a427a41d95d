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
import re
import sys
import tempfile
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import ijson
import orjson

from tap_prism_imports.job_refs import UUID_PATTERN

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_prism_imports.job_refs import JobRef

JOB_STATUSES = ("complete", "processing", "failed")
TERMINAL_STATUSES = frozenset({"complete", "failed"})
OUTCOMES = ("created", "existing", "failed")
IMPORT_MODES = ("async", "sync", "rejected")

# Spools hold finished record lines; past this size they live on disk, so many
# jobs fetched ahead of emission cost little memory.
SPOOL_MEMORY_BYTES = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024
# Record lines go to the spool in blocks of this many rows.
SPOOL_BLOCK_ROWS = 1024

_COUNT_FIELDS = ("total", "processed", "succeeded", "failed")
_DATETIME_FIELDS = ("created_at", "updated_at", "expires_at")
_SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})
# Events at a field's prefix that are not (the start of) a value of the wrong type.
_NO_VALUE_EVENTS = frozenset({"null", "map_key", "end_map", "end_array"})
# Warehouses store counts as signed 64-bit integers (bigint).
MAX_COUNT = 2**63 - 1
# Text columns of a result record that carry the API's own strings.
_ROW_TEXT_FIELDS = ("error_code", "error_message")
# orjson writes NUL as this escape; PostgreSQL text cannot hold NUL at all.
_NUL_ESCAPE = b"\\u0000"
# How many bytes a surrogate pair escape takes: \ud83d\ude00.
_PAIR_ESCAPE_BYTES = 12
_BACKSLASH = ord("\\")
_SURROGATE_ESCAPE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
# A \uD800-\uDFFF escape preceded by an even run of backslashes (so it is an escape),
# either a valid high+low pair (kept) or unpaired (replaced).
_SURROGATE_ESCAPE = re.compile(
    rb"(?<!\\)(?:\\\\)*(?:(?P<pair>\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?P<lone>\\u[dD][89a-fA-F][0-9a-fA-F]{2}))"
)
_REPLACEMENT_ESCAPE = b"\\ufffd"
# A record line's string record_id that is not a UUID. Hex digits and dashes need no
# escaping, so a UUID is always written as exactly these 36 characters; the key itself
# cannot occur inside a string, where its quotes would be escaped.
_RECORD_ID_NOT_UUID = re.compile(
    rb'"record_id":"(?![0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")'
)
_UUID_LENGTH = 36
_UUID_DASHES = (8, 13, 18, 23)
_UUID_CHARACTERS = b"0123456789abcdefABCDEF-"
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
# Values from the body quoted in warnings and errors are cut to this length.
_SHOWN_CHARACTERS = 100


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
    except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved to UTC
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


class _ParserSafeBody:
    """The body as the JSON parser reads it, minus what would crash the parser or the writer.

    Unpaired UTF-16 surrogate escapes (``\\ud800`` alone) are valid JSON syntax, but the
    parser either turns them into ``?`` or fails with a decoding error, and orjson cannot
    write them: they become ``\\ufffd`` (U+FFFD, the replacement character) before parsing.
    An integer longer than Python's int conversion limit crashes the C parser outright,
    so a run of that many digits anywhere is refused.
    The work is a few C-level scans per 64 KiB chunk; the rare matches cost more.
    """

    def __init__(self, raw: t.BinaryIO) -> None:
        self._raw = raw
        # The unsent tail of the last chunk: it might hold the start of an escape.
        self._pending = b""
        self._trailing_digits = 0
        self._max_digits = sys.get_int_max_str_digits()
        self._too_many_digits = b"0" * (self._max_digits + 1)
        self.replaced_surrogates = 0

    def read(self, size: int = READ_CHUNK_BYTES) -> bytes:
        while True:
            chunk = self._raw.read(size)
            data = self._pending + chunk
            if not chunk:
                cut = len(data)
                break
            # Never cut inside an escape or a run of backslashes: the next chunk must
            # start where a backslash before it could not change its meaning.
            cut = len(data) - _PAIR_ESCAPE_BYTES
            while cut > 0 and data[cut - 1] == _BACKSLASH:
                cut -= 1
            if cut > 0:
                break
            self._pending = data
        # A one-byte search is a memchr; most bodies have no backslash at all.
        if b"\\" in data and _SURROGATE_ESCAPE_HINT.search(data):
            data, cut = self._replace_lone_surrogates(data, cut)
        head, self._pending = data[:cut], data[cut:]
        self._check_digit_runs(head)
        return head

    def _replace_lone_surrogates(self, data: bytes, cut: int) -> tuple[bytes, int]:
        """Replace each unpaired surrogate escape that starts before ``cut``.

        The cut moves past an escape it would split, so that the low half of a pair
        is never judged without its high half. Replacements keep the length.
        """
        parts: list[bytes] = []
        position = 0
        for match in _SURROGATE_ESCAPE.finditer(data):
            lone = match.start("lone")
            if max(lone, match.start("pair")) >= cut:
                break
            cut = max(cut, match.end())
            if lone >= 0:
                parts += (data[position:lone], _REPLACEMENT_ESCAPE)
                position = match.end()
                self.replaced_surrogates += 1
        if parts:
            data = b"".join(parts) + data[position:]
        return data, cut

    def _check_digit_runs(self, head: bytes) -> None:
        if not self._max_digits or not head:
            return
        zeros = head.translate(_DIGITS_AS_ZERO)
        leading = len(zeros) - len(zeros.lstrip(b"0"))
        if self._trailing_digits + leading > self._max_digits or self._too_many_digits in zeros:
            msg = (
                f"the body holds a number of more than {self._max_digits} digits, "
                "which the JSON parser cannot read"
            )
            raise InvalidSnapshotError(msg)
        if leading == len(zeros):
            self._trailing_digits += leading
        else:
            self._trailing_digits = len(zeros) - len(zeros.rstrip(b"0"))


class _BodyWalker:
    """One pass over the body's parse events: top-level fields kept, results spooled."""

    def __init__(self, ref: JobRef, fetched_at: str) -> None:
        self.ref = ref
        self.fetched_at = fetched_at
        self.top: dict[str, t.Any] = {}
        self.spool: ResultsSpool | None = None
        # Rows whose values broke the schema, counted for one warning each per job.
        self.ids_not_uuid = 0
        self.wrong_types = 0
        self.nul_values = 0

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def walk(self, body: _ParserSafeBody) -> None:  # noqa: PLR0912, PLR0915
        # One loop, no call per event: a million-row body is ~10 million events.
        top, seen_root = self.top, False
        spool: ResultsSpool | None = None
        head = {"team_id": self.ref.team_id, "job_id": self.ref.job_id}
        fetched_at = self.fetched_at
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        record_id = created = existing = error_code = error_message = None
        has_error = False
        wrong_types = 0
        # String record ids of the rows in ``lines``, checked together per block.
        ids: list[str] = []
        add_id = ids.append
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
                            # Set from the import log's input_keys, when it has them.
                            "source_key": None,
                        },
                        option=newline,
                    )
                )
                outcomes.append(outcome)
                index += 1
                record_id = created = existing = error_code = error_message = None
                has_error = False
                if len(lines) >= SPOOL_BLOCK_ROWS:
                    self._spool_block(spool, lines, outcomes, ids)
            elif prefix.startswith("results.item."):
                name = prefix[13:]
                # A wrong-typed value is counted once: at its scalar or its start event.
                if name == "id":
                    if event == "string":
                        record_id = value
                        add_id(value)
                    else:
                        record_id = None
                        if event not in _NO_VALUE_EVENTS:
                            wrong_types += 1
                elif name == "created":
                    if event == "boolean":
                        created = value
                    else:
                        created = None
                        if event not in _NO_VALUE_EVENTS:
                            wrong_types += 1
                elif name == "existing":
                    if event == "boolean":
                        existing = value
                    else:
                        existing = None
                        if event not in _NO_VALUE_EVENTS:
                            wrong_types += 1
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
                    self._spool_block(spool, lines, outcomes, ids)
            elif not prefix:
                if not seen_root and event != "start_map":
                    msg = "the body is not a JSON object"
                    raise InvalidSnapshotError(msg)
                seen_root = True
            elif event in _SCALAR_EVENTS and (prefix in _TOP_FIELDS or prefix.startswith("error.")):
                top[prefix] = value
            elif prefix == "error" and event == "start_map":
                top["error"] = True
            elif prefix in _TOP_FIELDS and event in _CONTAINER_EVENTS:
                top[prefix] = _Container(event)
        self.wrong_types = wrong_types

    def _spool_block(
        self,
        spool: ResultsSpool,
        lines: list[bytes],
        outcomes: list[str | None],
        record_ids: list[str],
    ) -> None:
        block = b"".join(lines)
        # A few C-level scans per block, not a check per row: bad values are rare, and
        # cost a re-encoding of their block's lines only.
        if _NUL_ESCAPE in block or not _all_uuids(record_ids):
            block = b"".join(map(self._repaired, lines))
        spool.append_block(block, len(lines), outcomes)
        lines.clear()
        outcomes.clear()
        record_ids.clear()

    def _repaired(self, line: bytes) -> bytes:
        """The record line with a non-UUID record_id nulled and NUL removed from its text."""
        if _NUL_ESCAPE not in line and not _RECORD_ID_NOT_UUID.search(line):
            return line
        record = orjson.loads(line)
        record_id = record["record_id"]
        if record_id is not None and not UUID_PATTERN.fullmatch(record_id):
            record["record_id"] = None
            self.ids_not_uuid += 1
        for name in _ROW_TEXT_FIELDS:
            value = record[name]
            if isinstance(value, str) and "\x00" in value:
                record[name] = value.replace("\x00", "")
                self.nul_values += 1
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def _all_uuids(values: list[str]) -> bool:
    """Whether every value is a UUID (8-4-4-4-12 hex digits), in a few C-level passes."""
    joined = "".join(values)
    count = len(values)
    if len(joined) != _UUID_LENGTH * count or not joined.isascii():
        return False
    text = joined.encode("ascii")
    dashes = b"-" * count
    return (
        all(text[position::_UUID_LENGTH] == dashes for position in _UUID_DASHES)
        and text.count(b"-") == len(_UUID_DASHES) * count
        and not text.translate(None, _UUID_CHARACTERS)
    )


class _Container:
    """Stands for an object or array where the body should have a scalar, in messages."""

    def __init__(self, start_event: str) -> None:
        self._kind = "an object" if start_event == "start_map" else "an array"

    def __repr__(self) -> str:
        return self._kind


_CONTAINER_EVENTS = frozenset({"start_map", "start_array"})
_TOP_FIELDS = frozenset({"job_id", "status", "error", *_COUNT_FIELDS, *_DATETIME_FIELDS})


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


def parse_snapshot(body: t.BinaryIO, ref: JobRef, fetched_at: datetime.datetime) -> JobSnapshot:
    """Read a whole snapshot body; raises ``InvalidSnapshotError`` for unusable bodies.

    ijson's own errors (malformed or cut-off JSON) propagate unchanged so the caller
    can tell a body cut in transit from one the API sent broken. Values the schema
    cannot hold are emitted as null or cleaned, each kind with one warning.
    """
    fetched = format_datetime(fetched_at)
    walker = _BodyWalker(ref, fetched)
    safe_body = _ParserSafeBody(body)
    warnings: list[str] = []
    try:
        try:
            walker.walk(safe_body)
        except UnicodeDecodeError as error:
            msg = f"the body is not UTF-8 text: {error}"
            raise InvalidSnapshotError(msg) from error
        texts = _TextCleaner()
        record = _job_record(walker.top, ref, fetched, walker.spool, warnings=warnings, texts=texts)
    except BaseException:
        walker.close()
        raise
    top, spool = walker.top, walker.spool
    snapshot = JobSnapshot(ref=ref, record=record, warnings=warnings)
    if spool is not None and snapshot.is_terminal:
        snapshot.results = spool
    elif spool is not None:
        # Results are only final once the job is: a processing job's are not emitted.
        spool.close()
    warnings.extend(
        f"{name} is {_shown(top[name])}, not an RFC 3339 date-time; emitted as null"
        for name in _DATETIME_FIELDS
        if top.get(name) is not None and record[name] is None
    )
    body_job_id = top.get("job_id")
    if body_job_id is not None and body_job_id != ref.job_id:
        warnings.append(
            f"the body names job_id {_shown(body_job_id)}, not the job requested; "
            "its records keep the requested job's id"
        )
    if walker.ids_not_uuid:
        warnings.append(
            f"{walker.ids_not_uuid} results have an id that is not a UUID; "
            "their record_id is emitted as null"
        )
    if walker.wrong_types:
        warnings.append(
            f"{walker.wrong_types} result fields have the wrong type (id not a string, "
            "created or existing not a boolean); emitted as null"
        )
    nul_values = walker.nul_values + texts.nul_values
    if nul_values:
        warnings.append(
            f"{nul_values} text values contained NUL characters, removed "
            "(warehouses cannot store them)"
        )
    if safe_body.replaced_surrogates:
        warnings.append(
            f"{safe_body.replaced_surrogates} unpaired UTF-16 surrogate escapes "
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
    counts = {name: _count(top, name, warnings) for name in _COUNT_FIELDS}
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
        **{name: normalize_datetime(top.get(name)) for name in _DATETIME_FIELDS},
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
