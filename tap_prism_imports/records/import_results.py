"""The ``import_results`` stream's record: its schema, and the one rule that turns a
result row of a body into a record line.

One record per element of a job's ``results``, built as the body is read (by the fast
reader and the event walker alike) and spooled as finished JSON lines. A value of the
wrong type is emitted as null and counted, a non-UUID record id is nulled, NUL is
removed from text; ``source_key`` comes from the import log's ``input_keys``.
Adding a column is one edit here (schema and ``ResultLines.add``) and its test.
"""

from __future__ import annotations

import re
import string
import tempfile
import typing as t

import orjson
from singer_sdk import typing as th

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.job_refs import UUID_PATTERN

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from tap_prism_imports.job_refs import JobRef

OUTCOMES = ("created", "existing", "failed")

# Spools hold finished record lines; past this size they live on disk, so many
# jobs fetched ahead of emission cost little memory.
SPOOL_MEMORY_BYTES = 256 * 1024
# Record lines go to the spool in blocks of this many rows.
SPOOL_BLOCK_ROWS = 1024
# Text columns of a result record that carry the API's own strings.
_ROW_TEXT_FIELDS = ("error_code", "error_message")
# orjson writes NUL as this escape; PostgreSQL text cannot hold NUL at all.
_NUL_ESCAPE = b"\\u0000"
# A record line's string record_id that is not a UUID. Hex digits and dashes need no
# escaping, so a UUID is always written as exactly these 36 characters; the key itself
# cannot occur inside a string, where its quotes would be escaped.
_RECORD_ID_NOT_UUID = re.compile(
    rb'"record_id":"(?![0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")'
)
# A record id's characters by kind: "x" for a hex digit, "-" and the "," that joins ids
# as themselves, "?" for anything else.
_ID_CHARACTER_KINDS = bytes(
    ord("x") if chr(c) in string.hexdigits else c if c in b"-," else ord("?") for c in range(256)
)
_UUID_SHAPE = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx,"
_UUID_SHAPES = _UUID_SHAPE * SPOOL_BLOCK_ROWS

SCHEMA = th.PropertiesList(
    th.Property("team_id", th.UUIDType, required=True),
    th.Property("job_id", th.StringType, required=True),
    th.Property(
        "row_index",
        th.IntegerType,
        required=True,
        description="0-based position in the import's input rows.",
    ),
    th.Property(
        "record_id",
        th.UUIDType,
        description="The Prism record the row created or matched; null when it failed.",
    ),
    th.Property(
        "outcome",
        # null is in the enum too: a row with no error and neither flag has no outcome.
        th.StringType(allowed_values=[*OUTCOMES, None]),
        description="failed if the row has an error, else created, else existing; "
        "null when the API gave none of these.",
    ),
    th.Property("created", th.BooleanType, description="The row created a new record."),
    th.Property(
        "existing",
        th.BooleanType,
        description="The row matched an existing record via the dedupe key.",
    ),
    th.Property("error_code", th.StringType, description="Why the row was rejected."),
    th.Property("error_message", th.StringType),
    th.Property(
        "fetched_at",
        th.DateTimeType,
        required=True,
        description="When the job's snapshot was requested (UTC).",
    ),
    th.Property(
        "source_key",
        th.StringType,
        description="The submitted row's own identifier, from the import log's "
        "input_keys (by position); null without them.",
    ),
).to_dict()


class ResultsSpool:
    """A job's ``import_results`` records as JSON lines, counted by outcome.

    Held in memory while small (most log imports, and every job fetched ahead of its
    turn, stay so), in a temporary file past ``SPOOL_MEMORY_BYTES``.
    """

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._size = 0
        self._file: t.IO[bytes] | None = None
        self.count = 0
        #: Lines by outcome (a Counter costs more than a small import's rows).
        self.outcomes: dict[str | None, int] = {}

    def append_block(self, block: bytes, count: int, outcomes: list[str | None]) -> None:
        """Append ``count`` record lines at once (``outcomes``: one per line)."""
        if self._file is None and self._size + len(block) <= SPOOL_MEMORY_BYTES:
            self._blocks.append(block)
            self._size += len(block)
        else:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
                    self._file.write(b"".join(self._blocks))
                    self._blocks = []
                self._file.write(block)
            except OSError as error:
                folder = tempfile.gettempdir()
                reason = f"cannot spool the rows in the temporary folder {folder} (TMPDIR)"
                raise type(error)(error.errno, f"{reason}: {error.strerror}") from error
        self.count += count
        counts = self.outcomes
        # Only the outcomes present: a small import's rows have one or two.
        for outcome in set(outcomes):
            counts[outcome] = counts.get(outcome, 0) + outcomes.count(outcome)

    def lines(self) -> Iterator[bytes]:
        """Each record's JSON text, with its trailing newline."""
        if self._file is None:
            for block in self._blocks:
                yield from block.splitlines(keepends=True)
            return
        self._file.seek(0)
        yield from self._file

    def blocks(self, size: int) -> Iterator[bytes]:
        """The record lines in blocks of about ``size`` bytes, each ending with a newline."""
        if self._file is None:
            yield from self._blocks
            return
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
        self._blocks = []
        if self._file is not None:
            self._file.close()


class ResultLines:
    """Result rows, as parsed, written to a spool as finished ``import_results`` lines.

    The one place a row's values are judged: a value of the wrong type is emitted as
    null and counted, a non-UUID record id is nulled, NUL is removed from text.
    ``source_keys`` (from the import log, NUL already removed) name the rows by position.
    """

    def __init__(
        self, ref: JobRef, fetched_at: str, source_keys: Sequence[str | None] | None = None
    ) -> None:
        self._head = {"team_id": ref.team_id, "job_id": ref.job_id}
        self._fetched_at = fetched_at
        self._keys = source_keys
        self.spool: ResultsSpool | None = None
        # The next row's position in the array: row_index.
        self.count = 0
        # Rows whose values broke the schema, counted for one warning each per job.
        self.ids_not_uuid = 0
        self.wrong_types = 0
        self.nul_values = 0
        self._lines: list[bytes] = []
        self._outcomes: list[str | None] = []
        # String record ids of the rows in ``_lines``, checked together per block.
        self._ids: list[str] = []

    def start(self) -> None:
        """The body's results array opens."""
        if self.spool is not None:
            msg = "the body has more than one results array"
            raise InvalidSnapshotError(msg)
        self.spool = ResultsSpool()

    def add(self, rows: list[t.Any]) -> None:
        # One loop over many rows, with no call per row but orjson's.
        head, fetched_at = self._head, self._fetched_at
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        lines, outcomes, add_id = self._lines, self._outcomes, self._ids.append
        index, wrong_types = self.count, 0
        keys = self._keys or ()
        keyed = len(keys)
        for row in rows:
            if type(row) is not dict:
                msg = f"results[{index}] is not an object"
                raise InvalidSnapshotError(msg)
            record_id = row.get("id")
            if type(record_id) is str:
                add_id(record_id)
            elif record_id is not None:
                record_id = None
                wrong_types += 1
            created = row.get("created")
            if created is not None and type(created) is not bool:
                created = None
                wrong_types += 1
            existing = row.get("existing")
            if existing is not None and type(existing) is not bool:
                existing = None
                wrong_types += 1
            error = row.get("error")
            error_code = error_message = outcome = None
            # ``error: null`` means no error; a bare string is taken as the message.
            if type(error) is dict:
                outcome = "failed"
                error_code = error.get("code")
                if type(error_code) is not str:
                    error_code = None
                error_message = error.get("message")
                if type(error_message) is not str:
                    error_message = None
            elif type(error) is str:
                outcome = "failed"
                error_message = error
            else:
                outcome = "created" if created is True else "existing" if existing is True else None
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
                        # From the import log's input_keys, when it has them.
                        "source_key": keys[index] if index < keyed else None,
                    },
                    option=newline,
                )
            )
            outcomes.append(outcome)
            index += 1
            if len(lines) >= SPOOL_BLOCK_ROWS:
                self._spool_block()
        self.count = index
        self.wrong_types += wrong_types

    def finish(self) -> None:
        if self._lines:
            self._spool_block()

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def _spool_block(self) -> None:
        if self.spool is None:  # pragma: no cover - rows are only read inside the array
            msg = "results rows outside the results array"
            raise AssertionError(msg)
        lines = self._lines
        block = b"".join(lines)
        # A few C-level scans per block, not a check per row: bad values are rare, and
        # cost a re-encoding of their block's lines only. No backslash, no NUL escape:
        # one memchr, where a search for the escape itself is ten times slower over
        # lines full of zeros (measured: 2 us for ten rows).
        if (b"\\" in block and _NUL_ESCAPE in block) or not _all_uuids(self._ids):
            block = b"".join(map(self._repaired, lines))
        self.spool.append_block(block, len(lines), self._outcomes)
        lines.clear()
        self._outcomes.clear()
        self._ids.clear()

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
    """Whether every value is a UUID (8-4-4-4-12 hex digits): one translation in C, each
    value's characters by kind, compared with as many UUIDs' shapes."""
    if not values:
        return True
    kinds = ",".join(values).encode(errors="replace").translate(_ID_CHARACTER_KINDS)
    # Compared in place with a block's worth of shapes (a block holds no more ids).
    return len(kinds) == len(values) * len(_UUID_SHAPE) - 1 and _UUID_SHAPES.startswith(kinds)


def joined_blocks(spools: Iterable[ResultsSpool], size: int) -> Iterator[bytes]:
    """The spools' record lines, in order, in blocks of about ``size`` bytes: many small
    spools make a few large writes."""
    pending: list[bytes] = []
    pending_bytes = 0
    for spool in spools:
        for block in spool.blocks(size):
            pending.append(block)
            pending_bytes += len(block)
            if pending_bytes >= size:
                yield b"".join(pending)
                pending, pending_bytes = [], 0
    if pending:
        yield b"".join(pending)


def iter_result_records(spool: ResultsSpool) -> Iterator[dict[str, t.Any]]:
    """The spooled records as dicts, for the SDK's per-record path."""
    for line in spool.lines():
        yield orjson.loads(line)


def without_source_keys(spool: ResultsSpool) -> ResultsSpool:
    """The same records with every ``source_key`` null (``spool`` is closed)."""
    return rekeyed(spool, None)


def rekeyed(spool: ResultsSpool, keys: Sequence[str | None] | None) -> ResultsSpool:
    """The same records with ``source_key`` set from ``keys`` by row (``spool`` is closed).

    Block by block, in flat memory; ``keys`` must have one key per record, or be ``None``.
    """
    keyed = ResultsSpool()
    try:
        lines: list[bytes] = []
        outcomes: list[str | None] = []
        for data in spool.lines():
            result = orjson.loads(data)
            result["source_key"] = None if keys is None else keys[result["row_index"]]
            lines.append(orjson.dumps(result, option=orjson.OPT_APPEND_NEWLINE))
            outcomes.append(result["outcome"])
            if len(lines) >= SPOOL_BLOCK_ROWS:
                keyed.append_block(b"".join(lines), len(lines), outcomes)
                lines, outcomes = [], []
        keyed.append_block(b"".join(lines), len(lines), outcomes)
    except BaseException:
        keyed.close()
        raise
    finally:
        spool.close()
    return keyed
