"""What each import log line becomes.

- a sync import (200): its ``import_jobs`` record and ``import_results`` records, parsed
  from the logged response exactly as a GET snapshot is, each row keyed by position;
- an async job ref (202), for the run to follow through the API;
- any other answer: a rejected import, an ``import_jobs`` record with status
  ``failed`` and no results.

A line whose response the tap cannot use (a 200 whose body is no snapshot, a 202
naming no job) still loads: as a ``failed`` import with ``error_code``
``unusable_response`` saying why, so it is never silently lost.

Sync and rejected imports have no job id of their own, so they get a deterministic
one (``sync-…``, ``rejected-…``): a hash of the team, the ``Idempotency-Key`` and the
response when a key was sent (the API replays a key's first response, so two lines of
one import hash the same), else of the team, object type, ``submitted_at`` and
response. Never of the file or the line's position: the same line read from a
rotated or copied file is the same import.
"""

from __future__ import annotations

import hashlib
import typing as t
from dataclasses import dataclass

from tap_prism_imports.errors import InvalidSnapshotError
from tap_prism_imports.import_log.keys import InputKeysLocation
from tap_prism_imports.import_log.lines import async_job_ref, canonical, strip_nul, strip_nul_all
from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.records.import_jobs import failed_import_record, with_log_columns
from tap_prism_imports.snapshots import JobSnapshot, snapshot_from_document

if t.TYPE_CHECKING:
    from prism_import_log import LogLine
    from tap_prism_imports.import_log.files import Slot
    from tap_prism_imports.records.import_results import ResultsSpool

SYNC, ASYNC = 200, 202
MAX_ERROR_MESSAGE_CHARS = 1000
UNUSABLE = "unusable_response"


@dataclass
class LoggedJobRef:
    """An async import (202) to follow through the API."""

    ref: JobRef
    submitted_at: str
    object_type: str
    input_keys_at: InputKeysLocation | None
    #: The line it came from: dealt with once the job is handed over.
    slot: Slot

    @property
    def where(self) -> str:
        return self.slot.where

    def ledger_entry(self) -> dict[str, t.Any]:
        """What the ledger keeps of the job: never its keys, only where they are."""
        return {
            "object_type": self.object_type,
            "submitted_at": self.submitted_at,
            "input_keys_at": None if self.input_keys_at is None else self.input_keys_at.to_state(),
        }


@dataclass
class LoggedImport:
    """A sync or rejected import, ready to emit: one ``import_jobs`` record and its results."""

    snapshot: JobSnapshot
    warnings: list[str]
    #: The line it came from: dealt with once the import is emitted.
    slot: Slot
    #: For a sync import sent with an Idempotency-Key, when it was sent (epoch seconds):
    #: its replays within the API's idempotency window are the same import.
    replay_epoch: int | None = None

    @property
    def where(self) -> str:
        return self.slot.where

    @property
    def job_id(self) -> str:
        return self.snapshot.ref.job_id

    @property
    def mode(self) -> str:
        """sync, rejected, or async (a 202 naming no job): the record's ``mode``."""
        mode: str = self.snapshot.record["mode"]
        return mode

    @property
    def record(self) -> dict[str, t.Any]:
        return self.snapshot.record

    @property
    def results(self) -> ResultsSpool | None:
        return self.snapshot.results

    def close(self) -> None:
        self.snapshot.close()


def import_id(line: LogLine) -> str:
    """The id of a sync or rejected import: the same for every line of one import."""
    submitted = line.submitted_at_text
    if line.http_status == SYNC:
        if line.idempotency_key is not None:
            parts: list[object] = [line.team_id, line.idempotency_key, line.response]
        else:
            parts = [line.team_id, line.object_type, submitted, line.response]
        prefix = "sync"
    elif line.http_status == ASYNC:
        # An async answer naming no job: one import per line, as a rejection.
        parts = [line.team_id, line.object_type, submitted, line.http_status, line.response]
        prefix = "async"
    else:
        # Each rejection is its own event, even a repeated one with the same key.
        parts = [
            line.team_id,
            line.object_type,
            submitted,
            line.http_status,
            line.idempotency_key,
            line.response,
        ]
        prefix = "rejected"
    return f"{prefix}-{hashlib.sha256(canonical(parts)).hexdigest()[:32]}"


def job_ref_item(line: LogLine, ref: JobRef, slot: Slot) -> LoggedJobRef:
    keys_at = None
    if line.input_keys is not None:
        keys_at = InputKeysLocation(slot.progress.key, slot.line, slot.start)
    return LoggedJobRef(
        ref=ref,
        submitted_at=line.submitted_at_text,
        object_type=_object_type(line)[0],
        input_keys_at=keys_at,
        slot=slot,
    )


def import_item(line: LogLine, job_id: str, slot: Slot, fetched_at: str) -> LoggedImport:
    """The sync or rejected import a line records, ready to emit (``fetched_at``:
    when the run read the log, formatted)."""
    ref = JobRef(line.team_id, job_id)
    warnings = list(line.notes)
    object_type, nul = _object_type(line)
    if line.http_status == ASYNC:
        mode = "async"
        why = "the API answered 202 without a Location or job_id naming a job of this team"
        snapshot = _failed(line, ref, fetched_at, UNUSABLE, f"{why}: it cannot be followed")
    elif line.http_status != SYNC:
        mode = "rejected"
        message, message_nul = strip_nul(_error_message(line.response))
        nul += message_nul
        snapshot = _failed(line, ref, fetched_at, f"http_{line.http_status}", message)
    else:
        mode = "sync"
        keys, key_nul = (None, 0) if line.input_keys is None else strip_nul_all(line.input_keys)
        nul += key_nul
        try:
            snapshot = snapshot_from_document(line.response, ref, fetched_at, keys)
        except InvalidSnapshotError as error:
            why = f"the POST answered 200 but its body is no import snapshot: {error}"
            warnings.append(f"{why}; loaded as failed ({UNUSABLE})")
            snapshot = _failed(line, ref, fetched_at, UNUSABLE, why)
        else:
            warnings += snapshot.warnings
    if nul:
        warnings.append(
            f"{nul} NUL characters removed from its object_type, error text and input_keys "
            "(warehouses cannot store them)"
        )
    if warnings:
        # Said once the import is known: which one, and the line it came from.
        warnings = [f"import {job_id} ({slot.where}): {warning}" for warning in warnings]
    with_log_columns(
        snapshot.record, mode=mode, object_type=object_type, submitted_at=line.submitted_at_text
    )
    # Replays of a keyed sync import are one import: remembered by when it was sent.
    replayable = mode == "sync" and line.idempotency_key is not None
    remember = int(line.submitted_at.timestamp()) if replayable else None
    return LoggedImport(snapshot, warnings, slot, remember)


def _failed(
    line: LogLine, ref: JobRef, fetched_at: str, code: str, message: str | None
) -> JobSnapshot:
    record = failed_import_record(
        ref.team_id,
        ref.job_id,
        fetched_at=fetched_at,
        error_code=code,
        error_message=message,
        total=line.row_count or 0,
    )
    return JobSnapshot(ref=ref, record=record)


def follow(line: LogLine) -> JobRef | None:
    """The job an async line hands over, if it names one."""
    return async_job_ref(line) if line.http_status == ASYNC else None


def _object_type(line: LogLine) -> tuple[str, int]:
    return strip_nul(line.object_type)


def _error_message(response: dict[str, t.Any]) -> str:
    message = response.get("message")
    if isinstance(message, str):
        return message
    body = response.get("body")
    if isinstance(body, str) and len(response) == 1:
        return body[:MAX_ERROR_MESSAGE_CHARS]
    return canonical(response).decode()[:MAX_ERROR_MESSAGE_CHARS]
