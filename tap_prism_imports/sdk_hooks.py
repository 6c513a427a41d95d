"""Every use of a private singer-sdk name, in one place.

The SDK offers no public lever for these; each override or access is listed in
``PRIVATE_SDK_SURFACE`` with its measured reason, and a test checks that every name
and signature there still exists in the installed singer-sdk, so an SDK release that
renames one fails that test by name instead of silently breaking state. No other
module of the package touches a private singer-sdk name (a test scans them).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from singer_sdk import Tap
from singer_sdk.streams import Stream
from singer_sdk.streams._state import StreamStateManager
from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Iterable
    from types import FrameType

    from tap_prism_imports.messages import PrismMessageWriter
    from tap_prism_imports.signals import Interruption
    from tap_prism_imports.state import StateCheckpoints


@dataclass(frozen=True)
class PrivateName:
    """A private singer-sdk name the tap relies on, and why."""

    owner: type
    name: str
    #: The parameter names of a method (``self`` included); ``None`` for an attribute.
    parameters: tuple[str, ...] | None
    reason: str


PRIVATE_SDK_SURFACE: tuple[PrivateName, ...] = (
    PrivateName(
        Stream,
        "_write_state_message",
        ("self",),
        "Every STATE carries every job's ledger entry: unrationed, a 1,000-job run is "
        "quadratic (measured 40 s vs 5 s).",
    ),
    PrivateName(
        StreamStateManager,
        "is_flushed",
        None,
        "Marks the ledger as changed so the next rationed STATE goes out "
        "(it moved from the stream to the state manager in 0.54).",
    ),
    PrivateName(
        Stream,
        "_write_schema_message",
        ("self",),
        "The SDK re-sends a child's SCHEMA for every parent record: once per run is enough.",
    ),
    PrivateName(
        Stream,
        "_increment_stream_state",
        ("self", "latest_record", "context"),
        "Advances the child's replication-key bookmark for rows its parent writes as blocks "
        "(the per-record path costs ~70 us a row; blocks ~9 us).",
    ),
    PrivateName(
        Stream,
        "_write_batch_message",
        ("self", "encoding", "manifest"),
        "Announces import_results batch files written by the parent's run: in the SDK's "
        "own flow a child's batches come one per job, from a per-record pass.",
    ),
    PrivateName(
        Tap,
        "_handle_termination",
        ("self", "signum", "frame"),
        "The SDK's handler writes STATE into a half-written RECORD line and exits 0 "
        "(reproduced under SIGTERM); the run must stop at a message boundary instead.",
    ),
)


class SignalAwareTap(Tap):
    """Hands SIGTERM and SIGINT to ``on_termination`` instead of the SDK's handler."""

    def on_termination(self, signum: int) -> None:
        raise NotImplementedError

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        self.on_termination(signum)


class RationedStateStream(Stream):
    """Writes STATE only when the run's checkpoints say one is due."""

    @property
    def state_checkpoints(self) -> StateCheckpoints:
        raise NotImplementedError

    @override
    def _write_state_message(self) -> None:
        if self.state_checkpoints.due():
            super()._write_state_message()

    def write_checkpoint(self) -> None:
        """The state changed: write it if its interval has passed."""
        self.state_manager.is_flushed = False
        self._write_state_message()


class SchemaOnceStream(Stream):
    """Sends its SCHEMA message once per run, not once per parent record."""

    _schema_sent = False

    @override
    def _write_schema_message(self) -> None:
        if not self._schema_sent:
            self._schema_sent = True
            super()._write_schema_message()


class AnnouncedBatchesStream(SchemaOnceStream):
    """A stream whose batch files another stream writes: it only announces them."""

    def announce_schema(self) -> None:
        """The SCHEMA message, before this stream's first BATCH."""
        self._write_schema_message()

    def announce_batch(
        self, encoding: t.Any, manifest: list[str], bookmark: dict[str, t.Any]
    ) -> None:
        """A BATCH message for files already written; ``bookmark`` advances the stream's."""
        self._write_batch_message(encoding=encoding, manifest=manifest)
        self._increment_stream_state(bookmark)


@dataclass
class RecordLines:
    """One context's records as finished JSON lines, for the direct path."""

    blocks: Iterable[bytes]  # whole lines, each ending with a newline
    count: int
    #: When the records were read from the API (or the import log): the snapshot's
    #: fetched_at, already formatted.
    time_extracted: str
    #: The replication-key value every line shares, for the stream's bookmark.
    bookmark: dict[str, t.Any]
    #: Writing stops between two blocks once a stop is requested (``None``: never stops;
    #: the caller then counts on every line going out).
    interruption: Interruption | None


class DirectRecordsStream(SchemaOnceStream):
    """A child stream whose records its parent writes, ready-made, when nothing would
    change them: no child sync per parent record (measured: ~0.4 ms and three log lines
    each, most of a small import's cost), one record count for the whole run."""

    _last_bookmark: dict[str, t.Any] | None = None

    @property
    def record_writer(self) -> PrismMessageWriter:
        raise NotImplementedError

    def write_lines(self, lines: RecordLines) -> None:
        """Write ``lines`` as this stream's RECORD messages and advance its bookmark."""
        self._write_schema_message()
        self.record_writer.write_record_lines(
            self.name, lines.blocks, lines.time_extracted, lines.interruption
        )
        # The import log's imports share one fetched_at: the bookmark moves once.
        if lines.count and lines.bookmark != self._last_bookmark:
            self._last_bookmark = lines.bookmark
            self._increment_stream_state(lines.bookmark)
            self.state_manager.is_flushed = False
