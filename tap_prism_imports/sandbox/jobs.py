"""Import jobs for the sandbox: the clock, row outcomes, job progress and snapshot rendering.

Row outcome rules (applied to every row of an import request, in input order):

* A row is ``{"default": {slug: value, ...}}`` (an optional ``list`` key is accepted and
  ignored). A row without ``default`` has no properties.
* Required properties, per object type (at least one of them must be a non-empty value):

  ===============  ======================
  object type      needs one of
  ===============  ======================
  ``contact``      ``email``, ``name``
  ``organization`` ``name``, ``domain``
  ``deal``         ``name``
  ``document``     ``title``
  ``engagement``   ``type``
  ``action``       ``title``
  ``identity``     ``value``
  ===============  ======================

  A row missing them fails with code ``missing_required_property``.
* An ``email`` property, on any object type, must look like ``local@domain.tld``; otherwise
  the row fails with code ``validation_error`` and message ``email is invalid``.
* With ``options.dedupe_by`` set, a valid row whose value for that slug equals the value of a
  record already in the same team and object type (compared case-insensitively when
  ``options.caseInsensitive`` is true) is ``existing: true`` with that record's id. Records
  created earlier in the same batch count.
* Any other valid row creates a record: ``created: true`` with a new id, a UUID5 of the team,
  object type, the record's sequence number in that team and object type, and the row's
  properties, so the same sequence of imports always yields the same ids.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

OBJECT_TYPES: frozenset[str] = frozenset(
    {"action", "contact", "deal", "document", "engagement", "identity", "organization"}
)
RETENTION_SECONDS = 7 * 24 * 3600
REQUIRED_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contact": ("email", "name"),
    "organization": ("name", "domain"),
    "deal": ("name",),
    "document": ("title",),
    "engagement": ("type",),
    "action": ("title",),
    "identity": ("value",),
}
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
RECORD_NAMESPACE = uuid.UUID("0f6b8f52-6a0e-4c53-9a55-2d0c1b6f7e10")
DEFAULT_JOB_ERROR: dict[str, str] = {
    "code": "internal_error",
    "message": "The import failed before all rows were processed.",
}

JSONDict = dict[str, Any]


def format_time(timestamp: float) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``: ``2026-11-20T10:00:00.000Z``."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_timestamp(value: datetime | float | None, default: float) -> float:
    """A POSIX timestamp from a datetime (naive means UTC), a number, or the default."""
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    return float(value)


def dumps(value: Any) -> str:
    """Compact JSON, as the API sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Clock:
    """The sandbox clock: wall-clock time plus an offset tests can move forward."""

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._base = time.time() if start is None else start
        self._monotonic = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Current sandbox time as a POSIX timestamp."""
        with self._lock:
            return self._base + (time.monotonic() - self._monotonic) + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (never backwards); return the new time."""
        if seconds < 0 or math.isnan(seconds):
            msg = "the sandbox clock only moves forward"
            raise ValueError(msg)
        with self._lock:
            self._offset += seconds
        return self.now()


class RawJSON:
    """Already-rendered JSON bytes to embed as a value when rendering an object."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


Fields = list[tuple[str, Any]]


def render_object(fields: Fields) -> tuple[bytes, ...]:
    """Render ordered ``(key, value)`` pairs as a JSON object, in chunks.

    ``RawJSON`` values are emitted as their own chunk, unchanged and uncopied.
    """
    chunks: list[bytes] = []
    buffer: list[str] = ["{"]
    for index, (key, value) in enumerate(fields):
        if index:
            buffer.append(",")
        buffer.append(dumps(key))
        buffer.append(":")
        if isinstance(value, RawJSON):
            chunks.append("".join(buffer).encode())
            buffer = []
            chunks.append(value.data)
        else:
            buffer.append(dumps(value))
    buffer.append("}")
    chunks.append("".join(buffer).encode())
    return tuple(chunks)


class Results(Protocol):
    """Per-row outcomes of one import, in input order."""

    total: int

    def failed_before(self, rows: int) -> int:
        """How many of the first ``rows`` rows failed."""
        ...

    def render(self) -> bytes:
        """The ``results`` array as JSON bytes (rendered once, then cached)."""
        ...


class RowResults:
    """Outcomes computed from real rows (imports and the demo seed)."""

    def __init__(self, outcomes: list[JSONDict]) -> None:
        self.outcomes = outcomes
        self.total = len(outcomes)
        self._failed = bytearray(1 if row["error"] is not None else 0 for row in outcomes)
        self._rendered: bytes | None = None
        self._lock = threading.Lock()

    def failed_before(self, rows: int) -> int:
        return self._failed.count(1, 0, max(0, rows))

    def render(self) -> bytes:
        with self._lock:
            if self._rendered is None:
                self._rendered = dumps(self.outcomes).encode()
            return self._rendered


class SyntheticResults:
    """Outcomes generated from a pattern, for big jobs made quickly.

    Row ``i`` (0-based) fails when ``failed_every`` divides ``i + 1``; otherwise it matches an
    existing record when ``existing_every`` divides ``i + 1``; otherwise it is created.
    """

    _CHUNK = 100_000

    def __init__(self, total: int, failed_every: int, existing_every: int, key: str) -> None:
        self.total = total
        self.failed_every = failed_every
        self.existing_every = existing_every
        digest = hashlib.sha256(key.encode()).hexdigest()
        # Valid UUID prefixes (version 5, RFC 4122 variant); the row number fills the last group.
        self._created_prefix = f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-8{digest[17:20]}-"
        self._existing_prefix = (
            f"{digest[20:28]}-{digest[28:32]}-5{digest[33:36]}-9{digest[37:40]}-"
        )
        self._rendered: bytes | None = None
        self._lock = threading.Lock()

    def failed_before(self, rows: int) -> int:
        if not self.failed_every:
            return 0
        return max(0, min(rows, self.total)) // self.failed_every

    def outcome(self, index: int) -> JSONDict:
        """The outcome of one row, as a dict (for tests)."""
        number = index + 1
        if self.failed_every and number % self.failed_every == 0:
            return {
                "id": None,
                "created": False,
                "existing": False,
                "error": {"code": "validation_error", "message": "email is invalid"},
            }
        if self.existing_every and number % self.existing_every == 0:
            return {
                "id": f"{self._existing_prefix}{index:012x}",
                "created": False,
                "existing": True,
                "error": None,
            }
        return {
            "id": f"{self._created_prefix}{index:012x}",
            "created": True,
            "existing": False,
            "error": None,
        }

    def render(self) -> bytes:
        with self._lock:
            if self._rendered is None:
                self._rendered = self._generate()
            return self._rendered

    def _generate(self) -> bytes:
        failed = (
            '{"id":null,"created":false,"existing":false,'
            '"error":{"code":"validation_error","message":"email is invalid"}}'
        )
        created = (
            '{"id":"'
            + self._created_prefix
            + '%012x","created":true,"existing":false,"error":null}'
        )
        existing = (
            '{"id":"'
            + self._existing_prefix
            + '%012x","created":false,"existing":true,"error":null}'
        )
        fe, ee = self.failed_every, self.existing_every
        parts: list[bytes] = []
        for start in range(0, self.total, self._CHUNK):
            stop = min(self.total, start + self._CHUNK)
            rows = [
                failed
                if fe and (i + 1) % fe == 0
                else (existing % i if ee and (i + 1) % ee == 0 else created % i)
                for i in range(start, stop)
            ]
            parts.append(",".join(rows).encode())
        return b"[" + b",".join(parts) + b"]"


@dataclass
class Job:
    """One asynchronous import job and how it progresses on the sandbox clock.

    The job processes ``rows_per_second`` rows from ``created_at`` and is complete at
    ``complete_at``. If ``failed_at`` is set the job stops there with status ``failed``.
    """

    job_id: str
    team_id: str
    object_type: str
    results: Results
    created_at: float
    rows_per_second: float
    complete_at: float
    failed_at: float | None = None
    error: JSONDict | None = None
    _cache: tuple[Fields, tuple[bytes, ...]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return self.results.total

    @property
    def expires_at(self) -> float:
        return self.created_at + RETENTION_SECONDS

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at

    def _processed_at(self, moment: float) -> int:
        if moment >= self.complete_at:
            return self.total
        done = int(max(0.0, moment - self.created_at) * self.rows_per_second)
        return min(done, max(0, self.total - 1))

    def state(self, now: float) -> tuple[str, int, float]:
        """``(status, processed rows, updated_at)`` at time ``now``."""
        if self.failed_at is not None and now >= self.failed_at:
            return "failed", self._processed_at(self.failed_at), self.failed_at
        if now >= self.complete_at:
            return "complete", self.total, self.complete_at
        return "processing", self._processed_at(now), now

    def invalidate(self) -> None:
        """Forget the cached rendering (call after changing the job)."""
        with self._lock:
            self._cache = None

    def snapshot(self, now: float) -> tuple[Fields, tuple[bytes, ...]]:
        """The status snapshot as ordered fields and rendered body chunks.

        Terminal snapshots (complete or failed) never change, so they are rendered once and
        cached until the job is changed.
        """
        status, processed, updated = self.state(now)
        terminal = status != "processing"
        if terminal:
            with self._lock:
                if self._cache is not None and self._cache[0][1][1] == status:
                    return self._cache
        failed = self.results.failed_before(processed)
        fields: Fields = [
            ("job_id", self.job_id),
            ("status", status),
            ("total", self.total),
            ("processed", processed),
        ]
        if status == "complete":
            fields.append(("results", RawJSON(self.results.render())))
        fields.extend([("succeeded", processed - failed), ("failed", failed)])
        if status == "failed":
            fields.append(("error", self.error or dict(DEFAULT_JOB_ERROR)))
        fields.extend(
            [
                ("created_at", format_time(self.created_at)),
                ("updated_at", format_time(updated)),
                ("expires_at", format_time(self.expires_at)),
            ]
        )
        rendered = (fields, render_object(fields))
        if terminal:
            with self._lock:
                self._cache = rendered
        return rendered


class RowError(Exception):
    """A row that fails validation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return not (isinstance(value, (list, dict)) and not value)


def validate_row(object_type: str, properties: JSONDict) -> None:
    """Raise ``RowError`` if the row breaks the documented rules."""
    required = REQUIRED_PROPERTIES[object_type]
    if not any(_present(properties.get(slug)) for slug in required):
        names = " or ".join(required)
        code, message = "missing_required_property", f"{object_type} requires {names}"
        raise RowError(code, message)
    email = properties.get("email")
    if email is not None and not (isinstance(email, str) and EMAIL_PATTERN.fullmatch(email)):
        code, message = "validation_error", "email is invalid"
        raise RowError(code, message)


def _dedupe_value(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


class RecordIndex:
    """Records created by imports, per team and object type, indexed for dedupe."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str, str], dict[str, str]] = {}
        self._folded: dict[tuple[str, str, str], dict[str, str]] = {}
        self._sequence: dict[tuple[str, str], int] = {}

    def find(
        self, team_id: str, object_type: str, slug: str, value: Any, *, case_insensitive: bool
    ) -> str | None:
        text = _dedupe_value(value)
        if text is None:
            return None
        if case_insensitive:
            return self._folded.get((team_id, object_type, slug), {}).get(text.casefold())
        return self._exact.get((team_id, object_type, slug), {}).get(text)

    def create(self, team_id: str, object_type: str, properties: JSONDict) -> str:
        sequence = self._sequence.get((team_id, object_type), 0) + 1
        self._sequence[(team_id, object_type)] = sequence
        content = json.dumps(properties, sort_keys=True, default=str)
        record_id = str(
            uuid.uuid5(RECORD_NAMESPACE, f"{team_id}/{object_type}/{sequence}/{content}")
        )
        for slug, value in properties.items():
            text = _dedupe_value(value)
            if text is None:
                continue
            self._exact.setdefault((team_id, object_type, slug), {}).setdefault(text, record_id)
            self._folded.setdefault((team_id, object_type, slug), {}).setdefault(
                text.casefold(), record_id
            )
        return record_id

    def process(
        self, team_id: str, object_type: str, objects: list[JSONDict], options: JSONDict
    ) -> list[JSONDict]:
        """Outcomes of importing ``objects``, creating records as a side effect."""
        dedupe_by = options.get("dedupe_by")
        case_insensitive = bool(options.get("caseInsensitive", False))
        outcomes: list[JSONDict] = []
        for row in objects:
            properties: JSONDict = row.get("default") or {}
            try:
                validate_row(object_type, properties)
            except RowError as error:
                outcomes.append(
                    {
                        "id": None,
                        "created": False,
                        "existing": False,
                        "error": {"code": error.code, "message": error.message},
                    }
                )
                continue
            match = None
            if isinstance(dedupe_by, str) and dedupe_by:
                match = self.find(
                    team_id,
                    object_type,
                    dedupe_by,
                    properties.get(dedupe_by),
                    case_insensitive=case_insensitive,
                )
            if match is not None:
                outcomes.append({"id": match, "created": False, "existing": True, "error": None})
            else:
                record_id = self.create(team_id, object_type, properties)
                outcomes.append(
                    {"id": record_id, "created": True, "existing": False, "error": None}
                )
        return outcomes
