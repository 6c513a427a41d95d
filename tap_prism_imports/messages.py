"""The one writer of the tap's stdout: every Singer message goes out through it.

Messages are encoded with msgspec and stdout is flushed at STATE messages only: the
SDK's writers flush after every message (measured: a third of the per-record cost).
Records before a STATE reach the target with it, so nothing a STATE claims can be
lost in the buffer. Spooled ``import_results`` lines are framed here as RECORD
messages in large blocks, skipping per-record encoding entirely.
"""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import StateMessage
from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_prism_imports.signals import Interruption


class PrismMessageWriter(MsgSpecWriter):
    """Frames and writes every message; flushes at STATE."""

    _target_gone = False
    # The framing of the last lines written: a run's import log imports share it.
    _framing: tuple[str, str, bytes, bytes, bytes] = ("", "", b"", b"", b"")

    @override
    def write_message(self, message: t.Any) -> None:
        self._write(self.format_message(message))
        if isinstance(message, StateMessage):
            sys.stdout.flush()

    def write_record_lines(
        self,
        stream_name: str,
        blocks: Iterable[bytes],
        time_extracted: str,
        interruption: Interruption | None,
    ) -> None:
        """Write each record line (JSON text + newline) of ``blocks`` as a RECORD message.

        Stops between two blocks, never inside a line, when a stop is requested.
        """
        if self._framing[:2] != (stream_name, time_extracted):
            head = b'{"type":"RECORD","stream":"' + stream_name.encode() + b'","record":'
            tail = b',"time_extracted":"' + time_extracted.encode() + b'"}\n'
            self._framing = (stream_name, time_extracted, head, tail, tail + head)
        _, _, head, tail, between = self._framing
        # Every line becomes head + line + tail: one bytes.replace per block, in C.
        for block in blocks:
            if interruption is not None and interruption.is_set():
                return
            self._write(head + block[:-1].replace(b"\n", between) + tail)

    def _write(self, data: bytes | bytearray) -> None:
        if self._target_gone:
            return  # nothing written now could arrive; the first BrokenPipeError ends the run
        # The CLI's stdout has a binary buffer; tests capture stdout as text.
        binary: t.BinaryIO | None = getattr(sys.stdout, "buffer", None)
        try:
            if binary is None:
                sys.stdout.write(bytes(data).decode())
                return
            # A signal arriving mid-write returns a partial count (measured on a pipe):
            # the rest must follow, or the next message would land inside this line. The
            # view is released at once: msgspec reuses (and resizes) its buffer.
            with memoryview(data) as view:
                written = binary.write(view)
                while written < len(view):
                    written += binary.write(view[written:])
        except BrokenPipeError:
            self._target_gone = True
            raise
