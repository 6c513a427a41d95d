"""Import jobs for the sandbox: the clock, job progress and snapshot rendering.

How a job's rows turn out is decided when it is imported (see ``records``); a job only
reveals those outcomes as it progresses on the sandbox clock.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

RETENTION_SECONDS = 7 * 24 * 3600
JOB_PATH = "/v2/prism/{team_id}/imports/{job_id}"
"""Where a job's status snapshot is served (the ``Location`` of an asynchronous import)."""
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


class JobStore:
    """Every job of a sandbox by id, in creation order (expired jobs included)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._sequence = 0

    def new_id(self, team_id: str) -> str:
        """A job id not taken yet, the same for the same sequence of jobs in a team."""
        with self._lock:
            while True:
                self._sequence += 1
                digest = hashlib.sha256(f"{team_id}:{self._sequence}".encode()).hexdigest()
                job_id = f"job_{digest[:24]}"
                if job_id not in self._jobs:
                    return job_id

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.job_id] = job

    def get(self, job_id: str) -> Job:
        """The job with this id (``KeyError`` if unknown)."""
        with self._lock:
            return self._jobs[job_id]

    def find(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def complete(self, job_id: str, now: float) -> None:
        """Make a job complete at ``now`` at the latest (clears a failure)."""
        job = self.get(job_id)
        with self._lock:
            job.failed_at = None
            job.error = None
            job.complete_at = min(job.complete_at, now)
        job.invalidate()

    def fail(self, job_id: str, at: float, error: JSONDict) -> None:
        """Make a job fail at time ``at`` with a job-level ``error``."""
        job = self.get(job_id)
        with self._lock:
            job.failed_at = at
            job.error = error
        job.invalidate()
