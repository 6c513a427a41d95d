"""Read a job's status body as it streams in: top-level fields kept, results spooled.

The body of a large job is one JSON object whose ``results`` array can hold a
million rows, and top-level fields may come after it. Each result becomes a
finished ``import_results`` record (one JSON line) in a spool that stays in memory
while small and moves to a temporary file when it grows.

Two readers share one rule for turning a row into a record line:

* The fast one finds where ``results`` opens, then cuts the array at row boundaries
  and parses each cut with orjson in C (a fraction of walking ijson's ten or so
  events per row in Python: docs/performance.md, "Reading a body"). A cut is tried at a
  ``}``; it only parses when that brace truly ends a row of the array, because the
  rows before it were parsed from a known row boundary, so a brace inside a string
  or a nested value leaves the cut unbalanced. The top-level fields before and
  after the array are read by the event walker from small stand-in documents.
* The event walker (ijson) reads anything the fast reader does not vouch for: a
  ``results`` key it cannot find (escaped, not an array, too far in), a row it
  cannot cut (over 1 MiB, or a value orjson refuses), and every malformed or cut-off
  body, so errors are always ijson's own, which the client tells apart.
"""

from __future__ import annotations

import re
import sys
import typing as t
from dataclasses import dataclass
from decimal import Decimal

import ijson
import orjson

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.records.import_jobs import COUNT_FIELDS, DATETIME_FIELDS
from tap_prism_imports.records.import_results import SPOOL_BLOCK_ROWS, ResultLines

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_prism_imports.job_refs import JobRef

READ_CHUNK_BYTES = 64 * 1024
# How far into the body the fast reader looks for ``results``, and the most it holds
# while looking for the end of a row; beyond either the event walker takes over.
RESULTS_KEY_SEARCH_BYTES = 1024 * 1024
ROW_CUT_BYTES = 1024 * 1024
# Braces tried, from the end of what has arrived, before waiting for more.
CUT_TRIES = 8

# JSON's own whitespace only: a byte yajl also skips (form feed) sends the body to the walker.
_JSON_SPACE = b" \t\n\r"
_RESULTS_KEY = re.compile(rb'"results"[ \t\n\r]*:[ \t\n\r]*\[')
# Stand-ins for the parts of the body the walker is not given.
_NO_RESULTS = b'"results":null}'
_RESULTS_DONE = b'{"results":null'
_RESULTS_OPEN = b'{"results":['
# After a row, the walker is given a placeholder row it drops, so its array stays valid.
_RESULTS_AFTER_A_ROW = b'{"results":[{}'

_TOP_FIELDS = frozenset({"job_id", "status", "error", *COUNT_FIELDS, *DATETIME_FIELDS})
_SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})
_CONTAINER_EVENTS = frozenset({"start_map", "start_array"})
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
# Every digit as 0, so that a run of digits is a run of zeros: found by a C search.
DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


@dataclass
class BodyContents:
    """What a whole body held: its top-level fields, and its results when it had any."""

    top: dict[str, t.Any]
    rows: ResultLines
    replaced_surrogates: int


def read_body(
    raw: t.BinaryIO, ref: JobRef, fetched_at: str, source_keys: Sequence[str | None] | None
) -> BodyContents:
    """Read a whole body; the spool is closed again if reading fails.

    ijson's errors (malformed or cut-off JSON) and ``UnicodeDecodeError`` propagate,
    and ``InvalidSnapshotError`` says what makes a well-formed body unusable.
    """
    body = _ParserSafeBody(raw)
    rows = ResultLines(ref, fetched_at, source_keys)
    try:
        top = _FastReader(body, rows).read()
        rows.finish()
    except BaseException:
        rows.close()
        raise
    return BodyContents(top=top, rows=rows, replaced_surrogates=body.replaced_surrogates)


def read_document(
    document: dict[str, t.Any],
    ref: JobRef,
    fetched_at: str,
    source_keys: Sequence[str | None] | None,
) -> BodyContents:
    """What ``read_body`` gives for a body already parsed (the import log's responses):
    the same top-level fields, and the rows through the same rule."""
    top: dict[str, t.Any] = {}
    for name, value in document.items():
        if name not in _TOP_FIELDS:
            continue
        kind = type(value)
        if kind is str or kind is int or value is None:  # most values: kept as they are
            top[name] = value
        elif name == "error" and isinstance(value, dict):
            top["error"] = True
            top.update(
                (f"error.{key}", _as_parsed(inner))
                for key, inner in value.items()
                if not isinstance(inner, (dict, list))
            )
        elif isinstance(value, (dict, list)):
            top[name] = _Container("start_map" if isinstance(value, dict) else "start_array")
        else:
            top[name] = _as_parsed(value)
    results = document.get("results")
    if results is not None and not isinstance(results, list):
        msg = "results is not a list"
        raise InvalidSnapshotError(msg)
    rows = ResultLines(ref, fetched_at, source_keys)
    if results is not None:
        try:
            rows.start()
            rows.add(results)
            rows.finish()
        except BaseException:
            rows.close()
            raise
    return BodyContents(top=top, rows=rows, replaced_surrogates=0)


def _as_parsed(value: object) -> object:
    """A number as the event walker gives it: an int, or a Decimal for any fraction."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


class _FastReader:
    """The body read in C where it can be: see the module's docstring."""

    def __init__(self, body: _ParserSafeBody, rows: ResultLines) -> None:
        self._body = body
        self._rows = rows

    def read(self) -> dict[str, t.Any]:
        head, search_from = b"", 0
        while True:
            chunk = self._body.read()
            head += chunk
            for match in _RESULTS_KEY.finditer(head, search_from):
                # The key is the top level's exactly when the fields before it, closed
                # after it, make a whole object; a key inside a string or a nested value
                # leaves it unbalanced. Such a match stays wrong, so it is not tried again.
                try:
                    top = self._walker(top_only=True).walk(
                        _Chain(head[: match.start()] + _NO_RESULTS)
                    )
                except (ijson.JSONError, InvalidSnapshotError, UnicodeDecodeError):
                    search_from = match.start() + 1
                    continue
                self._rows.start()
                top.update(self._read_rows(head[match.end() :]))
                return top
            if not chunk or len(head) > RESULTS_KEY_SEARCH_BYTES:
                return self._walker(top_only=False).walk(_Chain(head, self._body))

    def _read_rows(self, buffer: bytes) -> dict[str, t.Any]:
        """Spool the rows that follow the array's ``[``; the top-level fields after them."""
        after_row = False
        while True:
            buffer = buffer.lstrip(_JSON_SPACE)
            if buffer[:1] == b"]":
                return self._walker(top_only=True).walk(
                    _Chain(_RESULTS_DONE + buffer[1:], self._body)
                )
            cut = self._cut(buffer, after_row=after_row) if buffer else None
            if cut is not None:
                rows, end = cut
                self._rows.add(rows)
                buffer, after_row = buffer[end:], True
                continue
            chunk = self._body.read() if len(buffer) <= ROW_CUT_BYTES else b""
            if not chunk:
                start = _RESULTS_AFTER_A_ROW if after_row else _RESULTS_OPEN
                walker = self._walker(top_only=False, continues=True)
                return walker.walk(_Chain(start + buffer, self._body), placeholder=after_row)
            buffer += chunk

    @staticmethod
    def _cut(buffer: bytes, *, after_row: bool) -> tuple[list[t.Any], int] | None:
        """The whole rows at the start of ``buffer``, and where they end."""
        # After a row the buffer starts with its comma: a stand-in row keeps the cut valid.
        start = b"[0" if after_row else b"["
        end = len(buffer)
        for _ in range(CUT_TRIES):
            brace = buffer.rfind(b"}", 0, end)
            if brace < 0:
                return None
            try:
                rows = orjson.loads(start + buffer[: brace + 1] + b"]")
            except orjson.JSONDecodeError:
                end = brace
                continue
            return (rows[1:] if after_row else rows), brace + 1
        return None

    def _walker(self, *, top_only: bool, continues: bool = False) -> _EventWalker:
        return _EventWalker(self._rows, top_only=top_only, continues=continues)


class _Chain:
    """Bytes already read, then the rest of the body, as one stream for ijson."""

    def __init__(self, first: bytes, rest: _ParserSafeBody | None = None) -> None:
        self._first: bytes | None = first
        self._rest = rest

    def read(self, size: int = READ_CHUNK_BYTES) -> bytes:
        if size == 0:  # ijson asks for nothing, to learn whether the stream gives bytes
            return b""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._rest.read(size) if self._rest is not None else b""


class _Container:
    """Stands for an object or array where the body should have a scalar, in messages."""

    def __init__(self, start_event: str) -> None:
        self._kind = "an object" if start_event == "start_map" else "an array"

    def __repr__(self) -> str:
        return self._kind


class _EventWalker:
    """One pass over a body's parse events: top-level fields kept, results rows built.

    ``top_only``: the stream may hold no results array (the fast reader has read the
    body's, or is about to). ``continues``: the stream's results array is the one the
    fast reader began, so its rows carry on its row numbers.
    """

    def __init__(self, rows: ResultLines, *, top_only: bool, continues: bool = False) -> None:
        self._rows = rows
        self._top_only = top_only
        self._continues = continues

    def walk(self, stream: _Chain, *, placeholder: bool = False) -> dict[str, t.Any]:  # noqa: PLR0912
        top: dict[str, t.Any] = {}
        rows = self._rows
        seen_root = False
        builder: ijson.ObjectBuilder | None = None
        built: list[t.Any] = []
        for prefix, event, value in ijson.parse(stream, buf_size=READ_CHUNK_BYTES):
            if builder is not None:
                builder.event(event, value)
                if not builder.containers:
                    if placeholder:
                        placeholder = False
                    else:
                        built.append(builder.value)
                    builder = None
                    if len(built) >= SPOOL_BLOCK_ROWS:
                        rows.add(built)
                        built = []
            elif prefix == "results.item":
                if event != "start_map":
                    msg = f"results[{rows.count + len(built)}] is not an object"
                    raise InvalidSnapshotError(msg)
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
            elif prefix == "results":
                if event == "start_array":
                    if self._top_only:
                        msg = "the body has more than one results array"
                        raise InvalidSnapshotError(msg)
                    if self._continues:
                        self._continues = False
                    else:
                        rows.start()
                elif event == "end_array":
                    rows.add(built)
                    built = []
                elif event != "null":
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
            elif prefix in _TOP_FIELDS and event in _CONTAINER_EVENTS:
                top[prefix] = _Container(event)
        return top


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
            data, cut, replaced = replace_lone_surrogates(data, cut)
            self.replaced_surrogates += replaced
        head, self._pending = data[:cut], data[cut:]
        self._check_digit_runs(head)
        return head

    def _check_digit_runs(self, head: bytes) -> None:
        if not self._max_digits or not head:
            return
        zeros = head.translate(DIGITS_AS_ZERO)
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


def replace_lone_surrogates(data: bytes, cut: int) -> tuple[bytes, int, int]:
    """``data`` with each unpaired surrogate escape that starts before ``cut`` replaced
    by ``\\ufffd``; the cut, and how many were replaced.

    The cut moves past an escape it would split, so that the low half of a pair is
    never judged without its high half. Replacements keep the length.
    """
    parts: list[bytes] = []
    position = replaced = 0
    for match in _SURROGATE_ESCAPE.finditer(data):
        lone = match.start("lone")
        if max(lone, match.start("pair")) >= cut:
            break
        cut = max(cut, match.end())
        if lone >= 0:
            parts += (data[position:lone], _REPLACEMENT_ESCAPE)
            position = match.end()
            replaced += 1
    if parts:
        data = b"".join(parts) + data[position:]
    return data, cut, replaced
