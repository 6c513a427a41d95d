"""Read the import log: sync and rejected imports ready to emit, async jobs to follow.

The log (see ``import_log.py`` and the README for its format) is one JSON line
per import request, in one or more files named by the ``import_log`` setting: a
path, a glob, or an fsspec URL (``s3://bucket/prism/*.jsonl``).

Each line becomes one of:

- a sync import (200): its ``import_jobs`` record and ``import_results``
  records, parsed from the logged response exactly as a GET snapshot is;
- a rejected import (400-599): an ``import_jobs`` record with status
  ``failed`` and no results;
- an async job ref (202), for the engine to follow through the API. Refs
  submitted more than 7 days ago are left out: the API no longer has them.

Sync and rejected imports have no job id of their own, so they get a
deterministic one (``sync-…``, ``rejected-…``): a hash of the team, the
``Idempotency-Key`` and the response when a key was sent (the API replays a
key's first response, so two lines of one import hash the same), else of the
team, object type, ``submitted_at`` and response. Never of the file or the
line's position: the same line read from a rotated or copied file is the same
import.

Exactly once across runs
------------------------
The engine keeps, under the stream state's ``import_log`` key::

    {"format": 1,
     "files": {PATH: {"offset": BYTES, "line": LINES, "fingerprint": HEX,
                      "oldest": SUBMITTED_AT}},
     "emitted": {IMPORT_ID: SUBMITTED_AT}}

``emitted`` holds each import already emitted (a synthetic job id, or
``TEAM_ID/JOB_ID`` for an async job ref handed over), so no line is emitted
twice, whichever file it is read from. ``files`` only saves re-reading: each
file's ``offset`` is the end of the prefix of lines already dealt with, and its
``fingerprint`` is a hash of the first and the last 1 KiB before it. When the
fingerprint still matches, reading resumes at the offset; when it does not (the
file was truncated, rotated, renamed over or rewritten), the file is read again
from the start and ``emitted`` keeps what was emitted from coming out again.

Nothing in state runs ahead of what was emitted. Reading changes nothing but
the offsets past lines that emit nothing (blank lines, expired refs, imports
already emitted). Each import and ref carries a claim; the engine calls
``ImportLogBatch.confirm(item)`` once it has emitted the import (or recorded
the ref in its own state), and only then is the import added to ``emitted``
and the offset moved past its line (past every line before it that is dealt
with too). A run killed part-way rereads the unconfirmed lines next time.

A final line without its newline is still being written: it is left for the
next run. A malformed line is reported as ``PATH:LINE`` in ``errors`` and never
claimed, so the offset stays before it (the lines after it are still read and
emitted, once, every run until the line is fixed) and the engine can exit
non-zero.

State stays bounded by the log: an ``emitted`` entry is dropped once its
import was submitted more than 7 days ago and its line can no longer be in the
log, that is, it was not read this run and no file resumed past a prefix whose
oldest line (``oldest``) is older than it. Entries of files no longer matched
are dropped. Removing log files that were read, once their lines are a week
old, keeps state small.

Keys never enter state: a ref says where its ``input_keys`` are (path, line,
byte offset) and ``read_input_keys`` fetches them when the job's results come.
"""

from __future__ import annotations

import hashlib
import io
import typing as t
from dataclasses import dataclass, field

import fsspec  # type: ignore[import-untyped]
import ijson
import orjson
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from singer_sdk.exceptions import ConfigValidationError
from typing_extensions import Self

from tap_prism_imports.body_reader import InvalidSnapshotError, ResultsSpool
from tap_prism_imports.import_log import IMPORT_LOG_FORMAT_VERSION
from tap_prism_imports.job_refs import JobRef, JobRefError, parse_job_ref, validate_team_id
from tap_prism_imports.snapshots import (
    format_datetime,
    parse_datetime,
    parse_snapshot,
)
from tap_prism_imports.state import RETENTION

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Mapping, MutableMapping, Sequence

STATE_FORMAT_VERSION = 1
FINGERPRINT_BYTES = 1024
MAX_ERROR_MESSAGE_CHARS = 1000
MAX_OBJECT_TYPE_LENGTH = 64
_GLOB_CHARACTERS = frozenset("*?[")
_SYNC, _ASYNC = 200, 202
_ERROR_STATUSES = range(400, 600)


class ImportLogLineError(ValueError):
    """A log line that cannot be read as an import request."""


@dataclass(frozen=True)
class InputKeysLocation:
    """Where an async import's ``input_keys`` are: its log line. Kept in state instead of them."""

    path: str
    line: int
    offset: int

    def to_state(self) -> dict[str, t.Any]:
        return {"path": self.path, "line": self.line, "offset": self.offset}

    @classmethod
    def from_state(cls, value: Mapping[str, t.Any]) -> InputKeysLocation:
        return cls(path=str(value["path"]), line=int(value["line"]), offset=int(value["offset"]))


@dataclass
class Claim:
    """What ``ImportLogBatch.confirm`` records once an item was emitted."""

    import_id: str
    # The latest submitted_at among the lines of this import, for pruning.
    submitted_at: str
    file: str
    segment: int


@dataclass
class LoggedJobRef:
    """An async import (202) to follow through the API."""

    ref: JobRef
    submitted_at: str
    object_type: str
    rows: int | None
    input_keys_at: InputKeysLocation | None
    where: str
    claim: Claim


@dataclass
class LoggedImport:
    """A sync or rejected import, ready to emit: one ``import_jobs`` record and its results."""

    job_id: str
    mode: str
    record: dict[str, t.Any]
    results: ResultsSpool | None
    warnings: list[str]
    where: str
    claim: Claim

    def close(self) -> None:
        if self.results is not None:
            self.results.close()
            self.results = None


@dataclass
class _Segment:
    """One line of a file, from the previous one's end to ``end``."""

    start: int
    end: int
    line: int
    fingerprint: str
    submitted_at: str | None
    done: bool = False


@dataclass
class _FileProgress:
    key: str
    segments: list[_Segment] = field(default_factory=list)
    next_segment: int = 0


@dataclass
class ImportLogBatch:
    """Everything one read of the log found; ``confirm`` each item once it is emitted."""

    refs: list[LoggedJobRef] = field(default_factory=list)
    imports: list[LoggedImport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _state: _LogState | None = None
    _files: dict[str, _FileProgress] = field(default_factory=dict)

    def confirm(self, item: LoggedImport | LoggedJobRef) -> None:
        """Record in state that ``item`` was emitted: it will not be emitted again."""
        claim = item.claim
        if self._state is None:  # pragma: no cover - batches come from read_import_log
            msg = "this batch was not read from a state"
            raise RuntimeError(msg)
        self._state.mark_emitted(claim.import_id, claim.submitted_at)
        progress = self._files[claim.file]
        progress.segments[claim.segment].done = True
        self._state.advance(progress)

    def close(self) -> None:
        """Free the spooled results of every import, emitted or not."""
        for item in self.imports:
            item.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _LogState:
    """The ``import_log`` entry of the stream state, changed in place."""

    def __init__(self, state: MutableMapping[str, t.Any]) -> None:
        version = state.get("format", STATE_FORMAT_VERSION)
        if version != STATE_FORMAT_VERSION:
            msg = (
                f"The state's import_log.format {version!r} was written by another version of "
                f"tap-prism-imports (this one reads {STATE_FORMAT_VERSION}); "
                "upgrade the tap or run without state."
            )
            raise ConfigValidationError(msg, errors=[msg])
        state["format"] = STATE_FORMAT_VERSION
        self.files: dict[str, dict[str, t.Any]] = state.setdefault("files", {})
        self.emitted: dict[str, str] = state.setdefault("emitted", {})

    def mark_emitted(self, import_id: str, submitted_at: str) -> None:
        self.emitted[import_id] = max(submitted_at, self.emitted.get(import_id, ""))

    def advance(self, progress: _FileProgress) -> None:
        """Move the file's offset past every line dealt with, up to the first one that is not."""
        segments, index = progress.segments, progress.next_segment
        if index >= len(segments) or not segments[index].done:
            return
        entry = self.files[progress.key]
        oldest = entry.get("oldest")
        while index < len(segments) and segments[index].done:
            segment = segments[index]
            if segment.submitted_at is not None and (
                oldest is None or segment.submitted_at < oldest
            ):
                oldest = segment.submitted_at
            index += 1
        last = segments[index - 1]
        entry.update(
            {
                "offset": last.end,
                "line": last.line,
                "fingerprint": last.fingerprint,
                "oldest": oldest,
            }
        )
        progress.next_segment = index


@dataclass
class _Line:
    """A log line that passed the envelope checks."""

    where: str
    team_id: str
    object_type: str
    submitted_at: str
    http_status: int
    location: str | None
    idempotency_key: str | None
    response: dict[str, t.Any]
    input_keys: list[str | None] | None
    rows: int | None


def read_import_log(
    spec: str, *, now: datetime.datetime, state: MutableMapping[str, t.Any]
) -> ImportLogBatch:
    """Read every file ``spec`` names, resuming from ``state`` (the ``import_log`` entry).

    ``state`` is changed in place: offsets past lines that emit nothing, and entries
    pruned; the rest only through ``ImportLogBatch.confirm``.

    Raises:
        ConfigValidationError: ``spec`` is a path that does not exist, or the state's
            format is unknown.
    """
    log_state = _LogState(state)
    batch = ImportLogBatch(_state=log_state)
    reader = _Reader(batch, log_state, now)
    filesystem, paths = _resolve(spec, batch.warnings)
    keys = []
    for path in paths:
        key = _display_path(filesystem, path)
        keys.append(key)
        reader.read_file(filesystem, path, key)
    for key in set(log_state.files) - set(keys):
        del log_state.files[key]
    reader.prune()
    if reader.expired_refs:
        batch.warnings.append(
            f"{reader.expired_refs} async import(s) in the import log were submitted more than "
            f"{RETENTION.days} days ago and are skipped: the API no longer keeps their jobs."
        )
    return batch


def _resolve(spec: str, warnings: list[str]) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    filesystem, path = _open_filesystem(spec)
    if _GLOB_CHARACTERS & set(path):
        matched = sorted(p for p in filesystem.glob(path) if filesystem.isfile(p))
        if not matched:
            warnings.append(f"`import_log` {spec!r} matches no file: no imports read from it.")
        return filesystem, matched
    if not filesystem.exists(path):
        msg = (
            f"`import_log` {spec!r} does not exist. Point it at the import log file, "
            "or use a glob (such as logs/*.jsonl) if files may not exist yet."
        )
        raise ConfigValidationError(msg, errors=[msg])
    if not filesystem.isfile(path):
        msg = f"`import_log` {spec!r} is not a file; use a glob such as {spec.rstrip('/')}/*.jsonl"
        raise ConfigValidationError(msg, errors=[msg])
    return filesystem, [path]


def _open_filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    # fsspec would reuse a filesystem, with its listings and its endpoint, from an
    # earlier read in this process: a listing can name an object version since replaced.
    filesystem, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    return filesystem, path


def _display_path(filesystem: fsspec.AbstractFileSystem, path: str) -> str:
    """The file's name in state and messages; one fsspec can open again as it is."""
    if isinstance(filesystem, LocalFileSystem):
        return path
    return t.cast("str", filesystem.unstrip_protocol(path))


def _fingerprint(head: bytes, end: int, tail: bytes) -> str:
    digest = hashlib.sha256(head[: min(end, FINGERPRINT_BYTES)])
    digest.update(b"\x00")
    digest.update(tail)
    return digest.hexdigest()[:32]


class _Reader:
    def __init__(self, batch: ImportLogBatch, state: _LogState, now: datetime.datetime) -> None:
        self.batch = batch
        self.state = state
        self.now = now
        self.fetched_at = format_datetime(now)
        self.expired_before = format_datetime(now - RETENTION)
        self.expired_refs = 0
        self.claimed: dict[str, Claim] = {}
        self.met: set[str] = set()
        # The oldest line of each prefix skipped this run: an emitted import at least
        # that recent may still be in it.
        self.skipped_prefix_oldest: list[str] = []

    def read_file(self, filesystem: fsspec.AbstractFileSystem, path: str, key: str) -> None:
        entry = self.state.files.get(key)
        progress = self.batch._files[key] = _FileProgress(key)  # noqa: SLF001
        with filesystem.open(path, "rb") as file:
            offset, line_number, head, tail = self._resume_point(file, entry)
            if offset == 0:
                entry = None
            else:
                oldest = t.cast("dict[str, t.Any]", entry).get("oldest")
                if oldest is not None:
                    self.skipped_prefix_oldest.append(oldest)
            self.state.files[key] = entry or {
                "offset": 0,
                "line": 0,
                "fingerprint": _fingerprint(b"", 0, b""),
                "oldest": None,
            }
            file.seek(offset)
            position = offset
            while (data := file.readline()).endswith(b"\n"):
                line_number += 1
                start, position = position, position + len(data)
                # head: the first min(position, 1 KiB) bytes, also while the file grows.
                if len(head) < FINGERPRINT_BYTES:
                    head = (head + data)[:FINGERPRINT_BYTES]
                tail = (tail + data)[-FINGERPRINT_BYTES:]
                segment = _Segment(
                    start, position, line_number, _fingerprint(head, position, tail), None
                )
                progress.segments.append(segment)
                where = f"{key}:{line_number}"
                try:
                    self._read_line(data, where, key, len(progress.segments) - 1, segment)
                except ImportLogLineError as error:
                    self.batch.errors.append(f"{where}: {error}")
        self.state.advance(progress)

    def _resume_point(
        self, file: t.BinaryIO, entry: dict[str, t.Any] | None
    ) -> tuple[int, int, bytes, bytes]:
        """Offset, line number, head and tail to resume at: past the prefix read before."""
        offset = int(entry.get("offset") or 0) if entry else 0
        if not entry or offset <= 0:
            return 0, 0, b"", b""
        window = min(offset, FINGERPRINT_BYTES)
        head = file.read(window)
        file.seek(offset - window)
        tail = file.read(window)
        if len(tail) != window or _fingerprint(head, offset, tail) != entry.get("fingerprint"):
            return 0, 0, b"", b""
        return offset, int(entry.get("line", 0)), head, tail

    def _read_line(self, data: bytes, where: str, key: str, index: int, segment: _Segment) -> None:
        if not data.strip():
            segment.done = True
            return
        line = _parse_envelope(data, where)
        segment.submitted_at = line.submitted_at
        if line.http_status == _ASYNC:
            ref = _job_ref(line)
            self._check_snapshot(line, ref)
            if line.submitted_at <= self.expired_before and ref.key not in self.state.emitted:
                self.expired_refs += 1
                segment.done = True
                return
            claim = self._claim(ref.key, line, key, index, segment)
            if claim is not None:
                keys_at = (
                    None
                    if line.input_keys is None
                    else InputKeysLocation(key, segment.line, segment.start)
                )
                self.batch.refs.append(
                    LoggedJobRef(
                        ref=ref,
                        submitted_at=line.submitted_at,
                        object_type=line.object_type,
                        rows=line.rows if line.rows is not None else _key_count(line),
                        input_keys_at=keys_at,
                        where=where,
                        claim=claim,
                    )
                )
            return
        mode = "sync" if line.http_status == _SYNC else "rejected"
        import_id = synthetic_job_id(line)
        claim = self._claim(import_id, line, key, index, segment)
        if claim is None:
            return
        if mode == "sync":
            logged = self._sync_import(line, import_id, claim)
        else:
            logged = LoggedImport(
                import_id, mode, self._rejected_record(line, import_id), None, [], where, claim
            )
        self.batch.imports.append(logged)

    def _claim(
        self, import_id: str, line: _Line, key: str, index: int, segment: _Segment
    ) -> Claim | None:
        """A claim for a new import; ``None`` (the line dealt with) for one already seen."""
        self.met.add(import_id)
        if import_id in self.state.emitted:
            self.state.mark_emitted(import_id, line.submitted_at)
            segment.done = True
            return None
        earlier = self.claimed.get(import_id)
        if earlier is not None:
            earlier.submitted_at = max(earlier.submitted_at, line.submitted_at)
            segment.done = True
            return None
        claim = self.claimed[import_id] = Claim(import_id, line.submitted_at, key, index)
        return claim

    def _check_snapshot(self, line: _Line, ref: JobRef) -> None:
        try:
            parse_snapshot(io.BytesIO(_canonical(line.response)), ref, self.now).close()
        except (InvalidSnapshotError, ijson.JSONError) as error:
            msg = f"response is not a usable import snapshot: {error}"
            raise ImportLogLineError(msg) from error

    def _sync_import(self, line: _Line, import_id: str, claim: Claim) -> LoggedImport:
        ref = JobRef(line.team_id, import_id)
        try:
            snapshot = parse_snapshot(io.BytesIO(_canonical(line.response)), ref, self.now)
        except (InvalidSnapshotError, ijson.JSONError) as error:
            del self.claimed[import_id]
            msg = f"response is not a usable import snapshot: {error}"
            raise ImportLogLineError(msg) from error
        warnings = [
            f"import {import_id} ({line.where}): {warning}" for warning in snapshot.warnings
        ]
        results = snapshot.results
        if results is not None:
            results, warning = attach_source_keys(
                results, line.input_keys, import_name=f"import {import_id} ({line.where})"
            )
            if warning is not None:
                warnings.append(warning)
        record = {**snapshot.record, **self._new_columns(line, "sync")}
        return LoggedImport(import_id, "sync", record, results, warnings, line.where, claim)

    def _rejected_record(self, line: _Line, import_id: str) -> dict[str, t.Any]:
        return {
            "team_id": line.team_id,
            "job_id": import_id,
            "status": "failed",
            "total": line.rows if line.rows is not None else _key_count(line) or 0,
            "processed": None,
            "succeeded": None,
            "failed": None,
            "error_code": f"http_{line.http_status}",
            "error_message": _error_message(line.response),
            "created_at": None,
            "updated_at": None,
            "expires_at": None,
            "results_count": None,
            "fetched_at": self.fetched_at,
            **self._new_columns(line, "rejected"),
        }

    @staticmethod
    def _new_columns(line: _Line, mode: str) -> dict[str, t.Any]:
        return {"mode": mode, "object_type": line.object_type, "submitted_at": line.submitted_at}

    def prune(self) -> None:
        """Drop emitted imports past retention whose lines can no longer be in the log."""
        floor = min(self.skipped_prefix_oldest, default=None)
        stale = [
            import_id
            for import_id, submitted_at in self.state.emitted.items()
            if import_id not in self.met
            and submitted_at <= self.expired_before
            and (floor is None or submitted_at < floor)
        ]
        for import_id in stale:
            del self.state.emitted[import_id]


def _key_count(line: _Line) -> int | None:
    return None if line.input_keys is None else len(line.input_keys)


def _error_message(response: dict[str, t.Any]) -> str:
    message = response.get("message")
    if isinstance(message, str):
        return message
    body = response.get("body")
    if isinstance(body, str) and len(response) == 1:
        return body[:MAX_ERROR_MESSAGE_CHARS]
    return _canonical(response).decode()[:MAX_ERROR_MESSAGE_CHARS]


def _canonical(value: object) -> bytes:
    """One encoding for one JSON value: sorted keys, no spaces, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def synthetic_job_id(line: _Line) -> str:
    """The id of a sync or rejected import: the same for every line of one import."""
    if line.http_status == _SYNC:
        if line.idempotency_key is not None:
            parts: list[object] = [line.team_id, line.idempotency_key, line.response]
        else:
            parts = [line.team_id, line.object_type, line.submitted_at, line.response]
        prefix = "sync"
    else:
        # Each rejection is its own event, even a repeated one with the same key.
        parts = [
            line.team_id,
            line.object_type,
            line.submitted_at,
            line.http_status,
            line.idempotency_key,
            line.response,
        ]
        prefix = "rejected"
    return f"{prefix}-{hashlib.sha256(_canonical(parts)).hexdigest()[:32]}"


def _job_ref(line: _Line) -> JobRef:
    job_id = line.response.get("job_id")
    source = line.location or job_id
    if not isinstance(source, str) or not source:
        msg = "a 202 line needs a location or response.job_id"
        raise ImportLogLineError(msg)
    try:
        ref = parse_job_ref(source, line.team_id)
    except JobRefError as error:
        msg = f"the job ref {source[:100]!r} {error}"
        raise ImportLogLineError(msg) from error
    if ref.team_id != line.team_id:
        msg = f"location {source!r} is for team {ref.team_id}, not the line's {line.team_id}"
        raise ImportLogLineError(msg)
    return ref


def _parse_envelope(data: bytes, where: str) -> _Line:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        msg = f"not JSON ({error})"
        raise ImportLogLineError(msg) from error
    if not isinstance(doc, dict):
        msg = "not a JSON object"
        raise ImportLogLineError(msg)
    if doc.get("v") != IMPORT_LOG_FORMAT_VERSION or isinstance(doc.get("v"), bool):
        msg = (
            f"v is {doc.get('v')!r}; this tap reads import log version {IMPORT_LOG_FORMAT_VERSION}"
        )
        raise ImportLogLineError(msg)
    team_id = doc.get("team_id")
    try:
        team = validate_team_id(team_id) if isinstance(team_id, str) else None
    except JobRefError:
        team = None
    if team is None:
        msg = f"team_id {team_id!r} is not a UUID"
        raise ImportLogLineError(msg)
    object_type = doc.get("object_type")
    if not isinstance(object_type, str) or not 0 < len(object_type) <= MAX_OBJECT_TYPE_LENGTH:
        msg = f"object_type {object_type!r} is not an object type such as 'contact'"
        raise ImportLogLineError(msg)
    submitted_at = doc.get("submitted_at")
    try:
        submitted = format_datetime(parse_datetime(t.cast("str", submitted_at)))
    except (ValueError, AttributeError, TypeError) as error:
        msg = f"submitted_at {submitted_at!r} is not an RFC 3339 date-time"
        raise ImportLogLineError(msg) from error
    status = doc.get("http_status")
    if (
        isinstance(status, bool)
        or not isinstance(status, int)
        or (status not in {_SYNC, _ASYNC} and status not in _ERROR_STATUSES)
    ):
        shown = "missing" if status is None else repr(status)
        msg = f"http_status is {shown}; expected 200, 202 or an error status (400-599)"
        raise ImportLogLineError(msg)
    response = doc.get("response")
    if not isinstance(response, dict):
        msg = "response is not the response body as a JSON object"
        raise ImportLogLineError(msg)
    location, idempotency_key, input_keys, rows = _optional_fields(doc)
    return _Line(
        where=where,
        team_id=team,
        object_type=object_type,
        submitted_at=submitted,
        http_status=status,
        location=location,
        idempotency_key=idempotency_key,
        response=response,
        input_keys=input_keys,
        rows=rows,
    )


def _optional_fields(
    doc: dict[str, t.Any],
) -> tuple[str | None, str | None, list[str | None] | None, int | None]:
    location = doc.get("location")
    idempotency_key = doc.get("idempotency_key")
    for name, value in (("location", location), ("idempotency_key", idempotency_key)):
        if value is not None and not isinstance(value, str):
            msg = f"{name} is {value!r}, not a string or null"
            raise ImportLogLineError(msg)
    input_keys = doc.get("input_keys")
    if input_keys is not None and (
        not isinstance(input_keys, list)
        or not all(key is None or isinstance(key, str) for key in input_keys)
    ):
        msg = "input_keys is not an array of strings or nulls"
        raise ImportLogLineError(msg)
    rows = doc.get("rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
        msg = f"rows is {rows!r}, not a whole number >= 0"
        raise ImportLogLineError(msg)
    return location, idempotency_key, input_keys, rows


def attach_source_keys(
    spool: ResultsSpool, keys: Sequence[str | None] | None, *, import_name: str
) -> tuple[ResultsSpool, str | None]:
    """The results with ``source_key`` set from ``keys`` by position (``None`` without keys).

    Returns the new spool (``spool`` is closed) and a warning when the counts differ:
    then no row gets a key, since a position off by one would name the wrong row.
    """
    warning = None
    if keys is not None and len(keys) != spool.count:
        warning = (
            f"{import_name}: the import log has {len(keys)} input_keys for {spool.count} "
            "results; source_key is left empty for its rows."
        )
        keys = None
    keyed = ResultsSpool()
    try:
        lines, outcomes = [], []
        for data in spool.lines():
            result = orjson.loads(data)
            result["source_key"] = None if keys is None else keys[result["row_index"]]
            lines.append(orjson.dumps(result, option=orjson.OPT_APPEND_NEWLINE))
            outcomes.append(result["outcome"])
        keyed.append_block(b"".join(lines), len(lines), outcomes)
    except BaseException:
        keyed.close()
        raise
    finally:
        spool.close()
    return keyed, warning


@dataclass
class InputKeysLookup:
    keys: list[str | None] | None
    warning: str | None = None


def read_input_keys(
    location: InputKeysLocation | Mapping[str, t.Any], ref: JobRef
) -> InputKeysLookup:
    """The ``input_keys`` of ``ref``'s log line, or ``None`` and a warning when it is gone."""
    where = (
        location
        if isinstance(location, InputKeysLocation)
        else InputKeysLocation.from_state(location)
    )
    shown = f"{where.path}:{where.line}"

    def gone(reason: str) -> InputKeysLookup:
        return InputKeysLookup(
            None,
            f"job {ref.key}: its import log line {shown} {reason}; "
            "its results are emitted without source_key.",
        )

    try:
        filesystem, path = _open_filesystem(where.path)
        with filesystem.open(path, "rb") as file:
            file.seek(where.offset)
            data = file.readline()
    except OSError as error:
        return gone(f"cannot be read ({error})")
    if not data.endswith(b"\n"):
        return gone("is no longer there (the file is shorter)")
    try:
        line = _parse_envelope(data, shown)
        found = _job_ref(line) if line.http_status == _ASYNC else None
    except ImportLogLineError:
        found = None
    if found != ref:
        return gone("now holds another line (the file was rotated or rewritten)")
    if line.input_keys is None:
        return gone("has no input_keys")
    return InputKeysLookup(line.input_keys)
