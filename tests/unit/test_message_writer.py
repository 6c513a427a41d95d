"""The tap's message writer frames STATE exactly as the SDK's writer does."""

from __future__ import annotations

import copy
import decimal

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.encoding.simple import RecordMessage, StateMessage

from tap_prism_imports.messages import PrismMessageWriter
from tap_prism_imports.state import ScalarMap


def test_a_state_message_is_the_bytes_the_sdk_writes() -> None:
    value = {
        "bookmarks": {
            "import_jobs": {"partitions": [], "ledger": {"a": {"status": None, "misses": 0}}},
            "import_results": {"replication_key_value": None},
        },
        "import_log": {"files": {"x.jsonl": {"offset": 10, "errors": []}}, "recent": {}},
        "odd": [decimal.Decimal("1.50"), "\u00e9\ufffd", None, True],
    }
    # bytes(): both writers return the one buffer msgspec reuses.
    ours = bytes(PrismMessageWriter().format_message(StateMessage(value=value)))
    assert ours == bytes(MsgSpecWriter().format_message(StateMessage(value=value)))
    assert ours.startswith(b'{"type":"STATE","value":{"bookmarks":')


def test_other_messages_keep_the_sdk_framing() -> None:
    message = RecordMessage(stream="import_jobs", record={"job_id": "j", "total": None})
    ours = bytes(PrismMessageWriter().format_message(message))
    assert ours == bytes(MsgSpecWriter().format_message(message))


def test_a_scalar_map_in_the_state_copies_as_a_whole_and_is_written_as_an_object() -> None:
    recent = ScalarMap({"sync-a": 1764900000, "sync-b": 1764900001})
    state = {"bookmarks": {"import_jobs": {"import_log": {"recent": recent}}}}

    copied = copy.deepcopy(state)
    copied["bookmarks"]["import_jobs"]["import_log"]["recent"]["sync-c"] = 1

    # The SDK compares each state with a deep copy of the last one it wrote.
    assert copied != state
    assert recent == {"sync-a": 1764900000, "sync-b": 1764900001}
    framed = bytes(PrismMessageWriter().format_message(StateMessage(value=state)))
    assert framed.endswith(b'"recent":{"sync-a":1764900000,"sync-b":1764900001}}}}}}\n')
