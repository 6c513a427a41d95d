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
    the tap's own writer: ``MsgSpecWriter`` flushing stdout only at STATE messages.
``schema_once``
    the tap's own behaviour, not an SDK lever: ``import_results`` sends its SCHEMA once
    per run instead of once per job (the SDK re-sends a child's SCHEMA for every parent
    record).

Without a lever the writer is the SDK's default one.
``rare_state``
    an experiment: periodic STATE messages off (only the run's first and final ones),
    to measure what the 1-per-second checkpoints cost.

Run it like the tap: ``BENCH_LEVERS=sdk_path,msgspec python benchmarks/lever_tap.py --config C``.
"""

from __future__ import annotations

import os
import sys

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter
from singer_sdk.streams import Stream
from typing_extensions import override

from tap_prism_imports.messages import PrismMessageWriter
from tap_prism_imports.state import StateCheckpoints
from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream, StreamLink
from tap_prism_imports.tap import TapPrismImports

LEVERS = frozenset(filter(None, os.environ.get("BENCH_LEVERS", "").split(",")))
KNOWN_LEVERS = frozenset({"sdk_path", "conform", "msgspec", "noflush", "schema_once", "rare_state"})


class LeverResultsStream(ImportResultsStream):
    if "conform" in LEVERS:
        TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.RECURSIVE

    @override
    def writes_records_directly(self) -> bool:
        return "sdk_path" not in LEVERS and super().writes_records_directly()

    @override
    def _write_schema_message(self) -> None:
        if "schema_once" in LEVERS:
            super()._write_schema_message()
        else:  # the SDK's own behaviour: the child's SCHEMA again for every job
            Stream._write_schema_message(self)


class LeverTap(TapPrismImports):
    # The SDK's default writer, unless a lever says otherwise; "noflush" is the tap's own.
    if "noflush" in LEVERS:
        message_writer_class = PrismMessageWriter
    elif "msgspec" in LEVERS:
        message_writer_class = MsgSpecWriter  # type: ignore[assignment]
    else:
        message_writer_class = SimpleSingerWriter  # type: ignore[assignment]

    @override
    def discover_streams(self) -> list[ImportJobsStream | ImportResultsStream]:
        interval = 24 * 3600 if "rare_state" in LEVERS else 1.0
        link = StreamLink(
            StateCheckpoints(interval_seconds=interval),
            writer=self.message_writer,
            interruption=self.interruption,
        )
        return [ImportJobsStream(self, link), LeverResultsStream(self, link)]


if __name__ == "__main__":
    if unknown := LEVERS - KNOWN_LEVERS:
        sys.exit(f"unknown BENCH_LEVERS: {', '.join(sorted(unknown))}")
    LeverTap.cli()
