"""Write the import log: one JSON line per import request, for the tap to read.

The code that makes the imports (``POST /v2/prism/{teamId}/{objectType}/import``)
records each answer here: sync imports, which only ever exist in the POST's
response, async job refs, and rejected requests. The format (version 1) is part
of the tap's contract and is documented in the README.

Appends are whole lines even when several processes write to one file at once:
each line is written with a single ``os.write`` on an ``O_APPEND`` descriptor
while holding an exclusive ``flock``. That needs POSIX file locks; on Windows
``ImportLog`` refuses to start rather than risk interleaved lines.

Nothing secret is written: of the response headers only ``Location`` is kept,
and of the request headers only ``Idempotency-Key``.
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import orjson

from tap_prism_imports.job_refs import JobRefError, validate_team_id
from tap_prism_imports.snapshots import format_datetime, utc_now

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Mapping

IMPORT_LOG_FORMAT_VERSION = 1


class _HttpResponse(t.Protocol):
    """What ``requests.Response`` and ``httpx.Response`` have in common here."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


class ImportLog:
    """Appends import records to one log file, creating it if needed."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if os.name != "posix":  # pragma: no cover - the tests run on POSIX
            msg = "ImportLog needs POSIX file locks (fcntl.flock); Windows is not supported"
            raise OSError(msg)
        self.path = Path(path)

    def record(
        self,
        response_or_error: object,
        *,
        team_id: str,
        object_type: str,
        input_keys: Iterable[str | None] | None = None,
        rows: int | None = None,
        idempotency_key: str | None = None,
        submitted_at: datetime.datetime | None = None,
    ) -> dict[str, t.Any]:
        """Append one line for one import request and return what was written.

        ``response_or_error`` is what the request gave back: the official SDK's raw
        response (``with_raw_response``), its ``APIStatusError``, or a
        ``requests``/``httpx`` response. ``input_keys`` names each submitted row (in
        submission order) so the tap can tell which input row each result belongs to;
        ``submitted_at`` defaults to now, so pass the time the request was sent.
        """
        entry = build_entry(
            response_or_error,
            team_id=team_id,
            object_type=object_type,
            input_keys=input_keys,
            rows=rows,
            idempotency_key=idempotency_key,
            submitted_at=submitted_at or utc_now(),
        )
        append_line(self.path, orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        return entry


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` whole: concurrent appenders wait for each other's write to end."""
    import fcntl  # noqa: PLC0415 - POSIX only; ImportLog refuses other systems first

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        # A regular file takes the whole buffer in one write; the loop only guards
        # against a short write (a signal, a full disk), still under the lock.
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)  # closing releases the lock


def build_entry(
    response_or_error: object,
    *,
    team_id: str,
    object_type: str,
    input_keys: Iterable[str | None] | None,
    rows: int | None,
    idempotency_key: str | None,
    submitted_at: datetime.datetime,
) -> dict[str, t.Any]:
    """The log entry for one request, checked so that the tap can read it back."""
    try:
        team = validate_team_id(team_id)
    except JobRefError as error:
        raise ValueError(str(error)) from error
    if not isinstance(object_type, str) or not object_type:
        msg = f"object_type must be the import path's object type, got {object_type!r}"
        raise ValueError(msg)
    if submitted_at.tzinfo is None:
        msg = "submitted_at must be timezone-aware"
        raise ValueError(msg)
    response = _http_response(response_or_error)
    status = response.status_code
    entry: dict[str, t.Any] = {
        "v": IMPORT_LOG_FORMAT_VERSION,
        "team_id": team,
        "object_type": object_type,
        "submitted_at": format_datetime(submitted_at),
        "http_status": status,
        "location": response.headers.get("Location") if status == 202 else None,  # noqa: PLR2004
        "idempotency_key": idempotency_key or _sent_idempotency_key(response),
        "response": _body(response),
    }
    if input_keys is not None:
        keys = list(input_keys)
        bad = [key for key in keys if key is not None and not isinstance(key, str)]
        if bad:
            msg = f"input_keys must be strings or None, got {bad[0]!r}"
            raise TypeError(msg)
        entry["input_keys"] = keys
    if rows is not None:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            msg = f"rows must be a whole number >= 0, got {rows!r}"
            raise ValueError(msg)
        entry["rows"] = rows
    return entry


def _http_response(response_or_error: object) -> _HttpResponse:
    # The official SDK's raw response wraps an httpx.Response as `http_response`;
    # its APIStatusError carries one as `response`. Anything else is taken to be
    # a requests or httpx response already.
    inner = getattr(response_or_error, "http_response", None)
    if inner is None and not hasattr(response_or_error, "headers"):
        inner = getattr(response_or_error, "response", None)
    candidate = response_or_error if inner is None else inner
    if not all(hasattr(candidate, name) for name in ("status_code", "headers", "content")):
        msg = (
            "expected an HTTP response (requests, httpx, the official SDK's raw response) "
            f"or the SDK's APIStatusError, got {type(response_or_error).__name__}"
        )
        raise TypeError(msg)
    return t.cast("_HttpResponse", candidate)


def _sent_idempotency_key(response: _HttpResponse) -> str | None:
    try:
        request = getattr(response, "request", None)
    except RuntimeError:  # httpx: a response built without its request
        return None
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    key = headers.get("Idempotency-Key")
    return key if isinstance(key, str) else None


def _body(response: _HttpResponse) -> dict[str, t.Any]:
    """The body as received; one that is no JSON object is kept as its text."""
    content = response.content
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        return body
    return {"body": content.decode("utf-8", errors="replace")}
