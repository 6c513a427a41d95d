"""One line of the import log, parsed: orjson for speed, repaired where another writer
left what the API's own JSON readers would take (an unpaired surrogate escape, as
Node's ``JSON.stringify`` writes one; bytes that are not UTF-8; a number too large
for 64 bits), then checked against the format's one definition."""

from __future__ import annotations

import dataclasses
import decimal
import json
import typing as t

import orjson

from prism_import_log import LogLine, LogLineError
from tap_prism_imports.body_reader import DIGITS_AS_ZERO, replace_lone_surrogates
from tap_prism_imports.job_refs import JobRef, JobRefError, parse_job_ref

# Nineteen digits in a row may be an integer past 64 bits (2**63 has 19).
_NINETEEN_DIGITS = b"0" * 19


class ImportLogLineError(ValueError):
    """A log line that cannot be read as an import request."""


def parse_log_line(data: bytes) -> LogLine:
    """The line ``data`` holds; what was repaired to read it is among its notes."""
    notes: list[str] = []
    # orjson reads an integer past 64 bits as a float, losing digits: a line that may
    # hold one is read exactly, unless orjson read no float at all from it (its long
    # runs of digits are then in strings, such as ids given as input_keys).
    exact = _NINETEEN_DIGITS in data.translate(DIGITS_AS_ZERO)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = _parse_repaired(data, notes, exact=exact)
    else:
        if exact and _holds_a_float(document):
            document = _parse_repaired(data, notes, exact=True)
    try:
        line = LogLine.from_document(document)
    except LogLineError as error:
        raise ImportLogLineError(str(error)) from error
    if notes:
        return dataclasses.replace(line, notes=(*line.notes, *notes))
    return line


def _holds_a_float(document: object) -> bool:
    """Whether any value in the parsed ``document``, however deep, is a float."""
    # By type, not isinstance: orjson makes only the built-in types themselves, and a
    # type test costs half as much (measured: 5 us for a line of ten rows, against 9).
    pending: list[t.Any] = [document]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is dict:
            pending.extend(value.values())
        elif kind is list:
            pending.extend(value)
        elif kind is float:
            return True
    return False


def _parse_repaired(data: bytes, notes: list[str], *, exact: bool) -> object:
    text = data.decode("utf-8", errors="replace")
    if (bad := text.count("\ufffd") - data.count("\ufffd".encode())) > 0:
        notes.append(f"{bad} bytes that are not UTF-8 replaced with U+FFFD")
        data = text.encode("utf-8")
    data, _, replaced = replace_lone_surrogates(data, len(data))
    if replaced:
        notes.append(f"{replaced} unpaired UTF-16 surrogate escapes replaced with U+FFFD")
    if not exact:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        # Python's reader keeps integers past 64 bits exact, and takes numbers orjson
        # refuses (1e400): each number as written, as the API's bodies are read.
        return json.loads(data, parse_float=decimal.Decimal)
    except (ValueError, RecursionError) as error:
        msg = f"not JSON ({error})"
        raise ImportLogLineError(msg) from error


def canonical(value: object) -> bytes:
    """One encoding for one JSON value: sorted keys, no spaces, UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # An integer past 64 bits, or a Decimal: only Python's reader makes those.
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return text.encode("utf-8")


@t.overload
def strip_nul(value: str) -> tuple[str, int]: ...
@t.overload
def strip_nul(value: str | None) -> tuple[str | None, int]: ...
def strip_nul(value: str | None) -> tuple[str | None, int]:
    """The text without NUL characters (no warehouse can store them), and how many went."""
    if value is None or "\x00" not in value:
        return value, 0
    return value.replace("\x00", ""), value.count("\x00")


def strip_nul_all(values: list[str | None]) -> tuple[list[str | None], int]:
    # One search in C first: NUL is rare, and a loop per key is most of the cost.
    texts = values if None not in values else [value for value in values if value is not None]
    if "\x00" not in "".join(t.cast("list[str]", texts)):
        return values, 0
    removed = 0
    cleaned: list[str | None] = []
    for value in values:
        text, count = strip_nul(value)
        cleaned.append(text)
        removed += count
    return cleaned, removed


def async_job_ref(line: LogLine) -> JobRef | None:
    """The job an async line (202) hands over: named by its ``Location``, else (without
    one) by the body's ``job_id``; ``None`` when that names no job of the line's team."""
    source = line.location or line.response.get("job_id")
    if not isinstance(source, str) or not source:
        return None
    try:
        ref = parse_job_ref(source, line.team_id)
    except JobRefError:
        return None
    return ref if ref.team_id == line.team_id else None
