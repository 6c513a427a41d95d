"""Write the import log: one line per import request, appended whole, readable by its owner.

The code that makes the imports (``POST /v2/prism/{teamId}/{objectType}/import``) calls
``ImportLog.record`` with whatever the request gave back: the official SDK's raw
response or its ``APIStatusError``, or a ``requests``/``httpx`` response. By then the
import was made, so ``record`` writes a line for any answer: a body or key it cannot
write as it is (an unpaired surrogate, a number where text belongs, a body that is no
JSON object) is written in a form the tap loads, and the change is noted in the line.
It raises only for arguments that are the caller's own mistakes (``team_id``,
``object_type``, something that is no response) and when the line cannot be written
at all (a full disk, a missing folder): then the error names the file.

Appends are whole lines even when several processes write to one file: each line is
written by one ``write`` on an ``O_APPEND`` descriptor while holding an exclusive
``flock`` (POSIX only: ``ImportLog`` refuses to start elsewhere). A new file is created
readable and writable by its owner only: the log holds the callers' record keys and
the API's error messages, which echo submitted values.

Nothing secret is written: of the response headers only ``Location`` is kept, and of
the request headers only ``Idempotency-Key``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import typing as t
from pathlib import Path

from prism_import_log.format import MAX_OBJECT_TYPE_LENGTH, LogLine, is_team_id

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: New log files: read and write for their owner only.
FILE_MODE = 0o600
_ACCEPTED = 202


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
        input_keys: Iterable[object] | None = None,
        rows: int | None = None,
        idempotency_key: str | None = None,
        submitted_at: datetime.datetime | None = None,
    ) -> dict[str, t.Any]:
        """Append one line for one import request and return what was written.

        ``input_keys`` names each submitted row (in submission order) so the tap can tell
        which input row each result belongs to; ``submitted_at`` defaults to now, so
        pass the time the request was sent (a naive one is taken as local time).
        """
        line = build_line(
            response_or_error,
            team_id=team_id,
            object_type=object_type,
            input_keys=input_keys,
            rows=rows,
            idempotency_key=idempotency_key,
            submitted_at=submitted_at,
        )
        document = line.to_document()
        encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        append_line(self.path, encoded.encode("utf-8") + b"\n")
        return document


def append_line(path: Path, line: bytes) -> None:
    """Append ``line`` whole: concurrent appenders wait for each other's write to end."""
    import fcntl  # noqa: PLC0415 - POSIX only; ImportLog refuses other systems first

    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        raise _naming(error, path, "open") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        # A regular file takes the whole buffer in one write; the loop only guards
        # against a short write (a signal), still under the lock.
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as error:
        raise _naming(error, path, "append to") from error
    finally:
        os.close(fd)  # closing releases the lock


def _naming(error: OSError, path: Path, action: str) -> OSError:
    reason = error.strerror or str(error)
    return type(error)(error.errno, f"cannot {action} the import log: {reason}", str(path))


def build_line(
    response_or_error: object,
    *,
    team_id: str,
    object_type: str,
    input_keys: Iterable[object] | None,
    rows: object,
    idempotency_key: object,
    submitted_at: datetime.datetime | None,
) -> LogLine:
    """The line for one request: the caller's arguments checked, every value writable."""
    if not is_team_id(team_id):
        msg = f"team_id {team_id!r} is not a UUID"
        raise ValueError(msg)
    if not isinstance(object_type, str) or not 0 < len(object_type) <= MAX_OBJECT_TYPE_LENGTH:
        msg = f"object_type must be the import path's object type, got {object_type!r}"
        raise ValueError(msg)
    response = _http_response(response_or_error)
    notes: list[str] = []
    if submitted_at is None:
        moment = datetime.datetime.now(datetime.timezone.utc)
    elif submitted_at.tzinfo is None:
        moment = submitted_at.astimezone()
        notes.append("submitted_at had no time zone: taken as the writer's local time")
    else:
        moment = submitted_at
    status = response.status_code
    key = idempotency_key if idempotency_key is not None else _sent_idempotency_key(response)
    return LogLine(
        team_id=team_id.lower(),
        object_type=object_type,
        submitted_at=moment,
        http_status=status,
        response=_body(response, notes),
        location=response.headers.get("Location") if status == _ACCEPTED else None,
        idempotency_key=None if key is None else _text(key, "idempotency_key", notes),
        input_keys=None if input_keys is None else _keys(input_keys, notes),
        rows=_row_count(rows, notes),
        notes=tuple(notes),
    )


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


class _NotWritableError(ValueError):
    """A parsed body holds a value JSON cannot carry (an infinite number)."""


def _body(response: _HttpResponse, notes: list[str]) -> dict[str, t.Any]:
    """The body as received; one that is no JSON object is kept as its text."""
    content = response.content
    try:
        body = json.loads(content, parse_constant=_refuse_constant)
        if isinstance(body, dict):
            replaced = _Replacements()
            cleaned = t.cast("dict[str, t.Any]", replaced.clean(body))
            if replaced.surrogates:
                notes.append(
                    f"{replaced.surrogates} unpaired UTF-16 surrogates in the response "
                    "replaced with U+FFFD"
                )
            return cleaned
        reason = "is JSON but not an object"
    except (ValueError, _NotWritableError, RecursionError) as error:
        reason = f"is not JSON ({error})"
    text = content.decode("utf-8", errors="replace")
    replaced = _Replacements()
    notes.append(f"the response body {reason}: kept as its text")
    return {"body": replaced.clean(text)}


def _refuse_constant(name: str) -> t.NoReturn:
    msg = f"{name} is no JSON number"
    raise _NotWritableError(msg)


class _Replacements:
    """Makes every string writable as UTF-8, counting the unpaired surrogates replaced."""

    def __init__(self) -> None:
        self.surrogates = 0

    def clean(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self.clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.clean(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"the number {value} cannot be written as JSON"
            raise _NotWritableError(msg)
        return value

    def text(self, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Pairs split into two code points become one character again; each
            # unpaired surrogate becomes U+FFFD, as the API's JSON readers do.
            fixed = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            self.surrogates += fixed.count("\ufffd") - value.count("\ufffd")
            return fixed
        return value


def _keys(input_keys: Iterable[object], notes: list[str]) -> list[str | None] | None:
    try:
        keys = list(input_keys)
    except TypeError:
        notes.append(f"input_keys was {type(input_keys).__name__}, not an iterable: left out")
        return None
    replaced = _Replacements()
    converted = 0
    written: list[str | None] = []
    for key in keys:
        if key is None or isinstance(key, str):
            written.append(None if key is None else replaced.text(key))
        else:
            written.append(replaced.text(str(key)))
            converted += 1
    if converted:
        notes.append(f"{converted} input_keys were not strings: each is written as str(key)")
    if replaced.surrogates:
        notes.append(
            f"{replaced.surrogates} unpaired UTF-16 surrogates in input_keys replaced with U+FFFD"
        )
    return written


def _text(value: object, name: str, notes: list[str]) -> str:
    replaced = _Replacements()
    text = replaced.text(value if isinstance(value, str) else str(value))
    if not isinstance(value, str):
        notes.append(f"{name} was {type(value).__name__}: written as str()")
    if replaced.surrogates:
        notes.append(f"unpaired UTF-16 surrogates in {name} replaced with U+FFFD")
    return text


def _row_count(rows: object, notes: list[str]) -> int | None:
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        notes.append(f"rows was {rows!r}, not a whole number >= 0: left out")
        return None
    return rows
