"""The tap with its direct-write fast path turned off and the SDK's public levers chosen.

Each lever is one switch in the comma-separated environment variable
``BENCH_LEVERS``, so the benchmark can add them one at a time:

``sdk_path``
    ``import_results`` goes through the SDK's per-record path
    (``writes_records_directly()`` answers False) instead of the fast path.
``conform``
    ``TYPE_CONFORMANCE_LEVEL`` back to the SDK default (``RECURSIVE``); without it
    the stream keeps the tap's ``NONE``.
``msgspec``
    ``message_writer_class = singer_sdk.contrib.msgspec.MsgSpecWriter``.
``noflush``
    a ``MsgSpecWriter`` that does not flush stdout after every message.
``schema_once``
    an experiment, not an SDK lever: ``import_results`` sends its SCHEMA once per run
    instead of once per job (the SDK re-sends a child's SCHEMA for every parent record).
``rare_state``
    an experiment: periodic STATE messages off (only the run's first and final ones),
    to measure what the 1-per-second checkpoints cost.

Run it like the tap: ``BENCH_LEVERS=sdk_path,msgspec python benchmarks/lever_tap.py --config C``.
"""

from __future__ import annotations

import os
import sys
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.conform import TypeConformanceLevel
from typing_extensions import override

from tap_prism_imports.state import StateCheckpoints
from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream
from tap_prism_imports.tap import TapPrismImports

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

LEVERS = frozenset(filter(None, os.environ.get("BENCH_LEVERS", "").split(",")))
KNOWN_LEVERS = frozenset({"sdk_path", "conform", "msgspec", "noflush", "schema_once", "rare_state"})


class NoFlushMsgSpecWriter(MsgSpecWriter):
    """``MsgSpecWriter`` without the flush after every message (stdout flushes at exit)."""

    @override
    def write_message(self, message: Message) -> None:
        sys.stdout.buffer.write(self.format_message(message))


class LeverResultsStream(ImportResultsStream):
    if "conform" in LEVERS:
        TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE

    @override
    def writes_records_directly(self) -> bool:
        return "sdk_path" not in LEVERS and super().writes_records_directly()

    @override
    def _write_schema_message(self) -> None:
        if "schema_once" in LEVERS and getattr(self, "_schema_sent", False):
            return
        self._schema_sent = True
        super()._write_schema_message()


class LeverTap(TapPrismImports):
    if "noflush" in LEVERS:
        message_writer_class: type[MsgSpecWriter] = NoFlushMsgSpecWriter
    elif "msgspec" in LEVERS:
        message_writer_class = MsgSpecWriter

    @override
    def discover_streams(self) -> list[ImportJobsStream | ImportResultsStream]:
        jobs = ImportJobsStream(self)
        if "rare_state" in LEVERS:
            jobs.state_checkpoints = StateCheckpoints(interval_seconds=24 * 3600)
        return [jobs, LeverResultsStream(self)]


if __name__ == "__main__":
    if unknown := LEVERS - KNOWN_LEVERS:
        sys.exit(f"unknown BENCH_LEVERS: {', '.join(sorted(unknown))}")
    LeverTap.cli()
