"""The import log's line, format version 1: one definition for the writer and every reader.

JSON Lines, UTF-8, one object per line, each line ending with ``\\n``:

============== ============================= ===========================================
field          type                          meaning
============== ============================= ===========================================
v              integer                       format version, 1
team_id        string (UUID)                 team of the import
object_type    string                        contact, organization, ... as in the POST path
submitted_at   RFC 3339 date-time            when the POST was sent
http_status    integer                       the POST's HTTP status (200 sync, 202 async)
location       string or null                the Location header of a 202
idempotency_key string or null               the Idempotency-Key sent, if any
response       object                        the response body; one that is no JSON
                                             object is kept as {"body": "<text>"}
input_keys     array, optional               one identifier per submitted row, in order
rows           integer, optional             rows submitted (else len(input_keys))
writer_notes   array of strings, optional    what the writer had to change to write it
============== ============================= ===========================================

Readers take the line as leniently as they can without guessing: a key that is a
number is its JSON text, an unusable ``rows`` is ignored; each such change is a note,
for the reader to report. Unknown fields are ignored (forward compatible).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from collections.abc import Mapping

FORMAT_VERSION = 1
MAX_OBJECT_TYPE_LENGTH = 64
UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
# submitted_at as format_datetime writes it (hours and seconds in range, UTC).
_WRITTEN_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}\+00:00", re.ASCII
)
# The HTTP status codes a response can have.
HTTP_STATUSES = range(100, 600)


class LogLineError(ValueError):
    """A line that is no version-1 import log line: what is wrong with it."""


@dataclass(frozen=True)
class LogLine:
    """One import request and what it got back."""

    team_id: str
    object_type: str
    submitted_at: datetime.datetime
    http_status: int
    response: dict[str, t.Any]
    location: str | None = None
    idempotency_key: str | None = None
    input_keys: list[str | None] | None = None
    rows: int | None = None
    #: What had to be changed to write or read the line (each one a sentence).
    notes: tuple[str, ...] = field(default=())

    def to_document(self) -> dict[str, t.Any]:
        """The line's JSON object, fields in their documented order."""
        document: dict[str, t.Any] = {
            "v": FORMAT_VERSION,
            "team_id": self.team_id,
            "object_type": self.object_type,
            "submitted_at": self.submitted_at_text,
            "http_status": self.http_status,
            "location": self.location,
            "idempotency_key": self.idempotency_key,
            "response": self.response,
        }
        if self.input_keys is not None:
            document["input_keys"] = self.input_keys
        if self.rows is not None:
            document["rows"] = self.rows
        if self.notes:
            document["writer_notes"] = list(self.notes)
        return document

    @classmethod
    def from_document(cls, document: object) -> LogLine:
        """The line a parsed JSON value stands for; ``LogLineError`` says why it is none."""
        if not isinstance(document, dict):
            msg = "not a JSON object"
            raise LogLineError(msg)
        version = document.get("v")
        if version != FORMAT_VERSION or isinstance(version, bool):
            msg = f"v is {version!r}; this reader reads import log version {FORMAT_VERSION}"
            raise LogLineError(msg)
        notes = _writer_notes(document.get("writer_notes"))
        input_keys = _input_keys(document.get("input_keys"), notes)
        submitted_at = document.get("submitted_at")
        # ``submitted_at`` when it is already in the one form the log holds.
        written = (
            submitted_at
            if type(submitted_at) is str and _WRITTEN_DATETIME.fullmatch(submitted_at)
            else None
        )
        fields = {
            "team_id": _team_id(document.get("team_id")),
            "object_type": _object_type(document.get("object_type")),
            "submitted_at": _submitted_at(submitted_at, written),
            "http_status": _http_status(document.get("http_status")),
            "response": _response(document.get("response")),
            "location": _optional_text(document, "location"),
            "idempotency_key": _optional_text(document, "idempotency_key"),
            "input_keys": input_keys,
            "rows": _rows(document.get("rows"), notes),
            "notes": tuple(notes),
        }
        if written is not None:
            # Already in the one form (it parsed, so it is a real moment): the cached
            # property keeps it instead of formatting it again (measured: 3% of a
            # 100,000-import run).
            fields["submitted_at_text"] = written
        line = cls.__new__(cls)
        # Filled in directly: a frozen dataclass's __init__ sets each field through
        # object.__setattr__, three times the cost (measured: 2% of a long log's run).
        object.__setattr__(line, "__dict__", fields)
        return line

    @functools.cached_property
    def submitted_at_text(self) -> str:
        """``submitted_at`` in the one form the log holds."""
        return format_datetime(self.submitted_at)

    @property
    def row_count(self) -> int | None:
        """Rows submitted: ``rows``, else the number of ``input_keys``."""
        if self.rows is not None:
            return self.rows
        return None if self.input_keys is None else len(self.input_keys)


def is_team_id(value: object) -> bool:
    return isinstance(value, str) and _canonical_team_id(value) is not None


def format_datetime(moment: datetime.datetime) -> str:
    """UTC, microseconds, explicit offset: the one form the log holds (and the tap emits)."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


def parse_datetime(value: str) -> datetime.datetime:
    """An RFC 3339 date-time, in UTC; one without an offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _team_id(value: object) -> str:
    team_id = _canonical_team_id(value) if isinstance(value, str) else None
    if team_id is None:
        msg = f"team_id {value!r} is not a UUID"
        raise LogLineError(msg)
    return team_id


@functools.lru_cache(maxsize=64)
def _canonical_team_id(value: str) -> str | None:
    """The team id in its one form (lower case), ``None`` if it is no UUID: a log holds
    few teams, so each is checked once, not on every line."""
    return value.lower() if UUID_PATTERN.fullmatch(value) else None


def _object_type(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_OBJECT_TYPE_LENGTH:
        msg = f"object_type {value!r} is not an object type such as 'contact'"
        raise LogLineError(msg)
    return value


def _submitted_at(value: object, written: str | None) -> datetime.datetime:
    try:
        if written is not None:
            # In the one form the log holds, UTC already: read as it is.
            return datetime.datetime.fromisoformat(written)
        return parse_datetime(t.cast("str", value))
    except (ValueError, AttributeError, TypeError, OverflowError) as error:
        msg = f"submitted_at {value!r} is not an RFC 3339 date-time"
        raise LogLineError(msg) from error


def _http_status(value: object) -> int:
    if type(value) is not int or value not in HTTP_STATUSES:
        shown = "missing" if value is None else repr(value)
        msg = f"http_status is {shown}, not an HTTP status code"
        raise LogLineError(msg)
    return value


def _response(value: object) -> dict[str, t.Any]:
    if not isinstance(value, dict):
        msg = "response is not the response body as a JSON object"
        raise LogLineError(msg)
    return value


def _optional_text(document: Mapping[str, t.Any], name: str) -> str | None:
    value = document.get(name)
    if value is not None and not isinstance(value, str):
        msg = f"{name} is {value!r}, not a string or null"
        raise LogLineError(msg)
    return value


def _input_keys(value: object, notes: list[str]) -> list[str | None] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        notes.append("input_keys is not an array: ignored")
        return None
    try:
        "".join(value)
    except TypeError:
        pass  # a key that is not text: null, or a value to convert
    else:
        return value  # every key is text, as the writer writes them
    keys: list[str | None] = []
    converted = 0
    for key in value:
        if key is None or isinstance(key, str):
            keys.append(key)
        else:
            keys.append(json.dumps(key, ensure_ascii=False, separators=(",", ":"), default=str))
            converted += 1
    if converted:
        notes.append(f"{converted} input_keys were not strings: each is taken as its JSON text")
    return keys


def _rows(value: object, notes: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        notes.append(f"rows is {value!r}, not a whole number >= 0: ignored")
        return None
    return value


def _writer_notes(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(note) for note in value]
