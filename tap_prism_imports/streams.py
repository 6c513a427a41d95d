"""Stream definitions: ``import_jobs`` and its child ``import_results``."""

from __future__ import annotations

import sys
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.streams import Stream
from typing_extensions import override

from tap_prism_imports.client import (
    FetchOutcome,
    JobFetchError,
    JobNotFoundError,
    PrismStream,
    RequestBudget,
    RequestBudgetExhaustedError,
    RunStoppedError,
    SnapshotPipeline,
    WaitPolicy,
)
from tap_prism_imports.job_refs import JobRef, resolve_job_refs
from tap_prism_imports.snapshots import (
    JOB_STATUSES,
    OUTCOMES,
    TERMINAL_STATUSES,
    JobSnapshot,
    ResultsSpool,
    format_datetime,
    iter_result_records,
    utc_now,
)
from tap_prism_imports.state import NOT_FOUND, JobLedger, StateCheckpoints

if t.TYPE_CHECKING:
    import datetime
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context, Record

# Direct writes go out in blocks this large rather than one flush per record.
WRITE_BLOCK_BYTES = 1 << 20
MAX_FAILURES_SHOWN = 10


class JobsFailedError(FatalAPIError):
    """Some jobs could not be read; the others were extracted."""


@dataclass
class RunSummary:
    """The one-line account of a run, logged at its end."""

    configured: int = 0
    already_final: int = 0
    expired: int = 0
    not_found: int = 0
    not_requested: int = 0
    failed: list[str] = field(default_factory=list)
    jobs_by_status: Counter[str] = field(default_factory=Counter)
    rows_by_outcome: Counter[str | None] = field(default_factory=Counter)

    def line(self, requests_made: int) -> str:
        statuses = ", ".join(f"{self.jobs_by_status[s]} {s}" for s in JOB_STATUSES)
        outcomes = ", ".join(f"{self.rows_by_outcome[o]} {o}" for o in OUTCOMES)
        unknown = self.rows_by_outcome[None]
        return (
            f"Run summary: {requests_made} requests; {self.configured} jobs configured; "
            f"emitted jobs: {statuses}; rows: {outcomes}"
            + (f", {unknown} without outcome" if unknown else "")
            + f"; skipped: {self.already_final} already final, {self.expired} expired, "
            f"{self.not_found} not found (expired or unknown), "
            f"{self.not_requested} left for the next run (request budget or API limit), "
            f"{len(self.failed)} failed"
        )


class ImportJobsStream(PrismStream):
    """One record per job per run: the last snapshot fetched."""

    name = "import_jobs"
    path = "/v2/prism/{team_id}/imports/{job_id}"
    primary_keys = ("team_id", "job_id")
    replication_key = "fetched_at"
    is_sorted = False

    schema = th.PropertiesList(
        th.Property("team_id", th.UUIDType, required=True, description="The job's team."),
        th.Property("job_id", th.StringType, required=True, description="The async job's id."),
        th.Property(
            "status",
            th.StringType(allowed_values=list(JOB_STATUSES)),
            required=True,
            description="complete, processing or failed (failed: a job-level error).",
        ),
        th.Property("total", th.IntegerType, required=True, description="Rows in the import."),
        th.Property("processed", th.IntegerType, description="Rows attempted so far."),
        th.Property("succeeded", th.IntegerType, description="Rows created or matched."),
        th.Property("failed", th.IntegerType, description="Rows rejected."),
        th.Property("error_code", th.StringType, description="Job-level error code."),
        th.Property("error_message", th.StringType, description="Job-level error message."),
        th.Property("created_at", th.DateTimeType, description="When the job was created (UTC)."),
        th.Property("updated_at", th.DateTimeType, description="Last progress (UTC)."),
        th.Property(
            "expires_at", th.DateTimeType, description="When the API forgets the job (UTC)."
        ),
        th.Property(
            "results_count",
            th.IntegerType,
            description="Rows in the snapshot's results, emitted to import_results; "
            "null while processing or when the API sent no results.",
        ),
        th.Property(
            "fetched_at",
            th.DateTimeType,
            required=True,
            description="When this snapshot was requested (UTC); the replication key.",
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.state_checkpoints = StateCheckpoints()
        self._current: JobSnapshot | None = None

    def current_snapshot(self, context: Context | None) -> tuple[JobSnapshot, ResultsSpool]:
        """The job whose child sync is running, and its results."""
        snapshot = self._current
        if (
            snapshot is None
            or snapshot.results is None
            or context is None
            or (context.get("team_id"), context.get("job_id"))
            != (snapshot.ref.team_id, snapshot.ref.job_id)
        ):
            msg = f"import_results has no fetched job for context {context!r}"
            raise RuntimeError(msg)
        return snapshot, snapshot.results

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        # Only ids go into the context: it is written to logs and sent to targets.
        snapshot = self._current
        if snapshot is not None and snapshot.results is not None:
            yield {"team_id": snapshot.ref.team_id, "job_id": snapshot.ref.job_id}

    @override
    def _write_state_message(self) -> None:
        # Each STATE carries every job's ledger entry: rationed, or a run is quadratic.
        if self.state_checkpoints.due():
            super()._write_state_message()

    def write_checkpoint(self) -> None:
        """Write the ledger now if its interval has passed."""
        self.state_manager.is_flushed = False
        self._write_state_message()

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        refs = resolve_job_refs(
            self.config.get("job_ids") or [],
            self.config.get("job_ids_file"),
            self.config.get("team_id"),
        )
        summary = RunSummary(configured=len(refs))
        budget = RequestBudget(self.config.get("max_requests_per_run"))
        if not refs:
            self.logger.warning(
                "No job refs configured: set `job_ids` or `job_ids_file`. Nothing to extract."
            )
            return
        self.setup_client(budget)
        # In batch mode records reach the target in BATCH messages written after the
        # sync, so no state may go out before them.
        self.state_checkpoints.final_only = self.get_batch_config(self.config) is not None
        ledger = JobLedger(self.stream_state)
        self.state_checkpoints.scale_to(len(ledger) + len(refs))
        started = utc_now()
        to_fetch = self._refs_to_fetch(refs, ledger, started, summary)
        to_fetch = self._within_budget(to_fetch, ledger, budget, summary)

        pipeline = SnapshotPipeline(
            self.fetch_snapshot,
            workers=self.worker_count,
            wait=self._wait_policy(),
            stop_requests=self.stop_requests,
        )
        try:
            for outcome in pipeline.run(to_fetch):
                if outcome.snapshot is not None:
                    yield from self._emit(outcome.snapshot, ledger, summary)
                if outcome.error is not None:
                    self._note_error(outcome, ledger, summary)
                self.write_checkpoint()
        finally:
            self._current = None
            ledger.prune({ref.key for ref in refs}, started)
            self.state_checkpoints.unthrottled = True
            if not self.state_checkpoints.final_only:
                self.write_checkpoint()
            self.logger.info(summary.line(budget.spent))
        if summary.failed:
            shown = "; ".join(summary.failed[:MAX_FAILURES_SHOWN])
            hidden = len(summary.failed) - MAX_FAILURES_SHOWN
            more = f" (and {hidden} more)" if hidden > 0 else ""
            msg = (
                f"{len(summary.failed)} of {summary.configured} jobs could not be read and "
                f"will be requested again next run: {shown}{more}"
            )
            raise JobsFailedError(msg)

    def _refs_to_fetch(
        self,
        refs: list[JobRef],
        ledger: JobLedger,
        now: datetime.datetime,
        summary: RunSummary,
    ) -> list[JobRef]:
        refresh = bool(self.config.get("refresh_terminal_jobs"))
        to_fetch: list[JobRef] = []
        for ref in refs:
            if ledger.needs_request(ref, now, refresh_terminal=refresh):
                to_fetch.append(ref)
            elif ledger.is_expired(ref, now):
                summary.expired += 1
                if ledger.status(ref) not in {*TERMINAL_STATUSES, NOT_FOUND}:
                    self.logger.warning(
                        "Job %s expired (the API keeps jobs 7 days) while %s; "
                        "its last snapshot stays as loaded.",
                        ref.key,
                        ledger.status(ref),
                    )
            else:
                summary.already_final += 1
        return to_fetch

    def _within_budget(
        self,
        refs: list[JobRef],
        ledger: JobLedger,
        budget: RequestBudget,
        summary: RunSummary,
    ) -> list[JobRef]:
        if budget.limit is None or len(refs) <= budget.limit:
            return refs
        # The jobs requested longest ago (or never) go first, so no job starves.
        chosen = set(sorted(refs, key=ledger.requested_at)[: budget.limit])
        summary.not_requested += len(refs) - len(chosen)
        self.logger.warning(
            "`max_requests_per_run` %d is below the %d jobs to request: %d wait for the next run.",
            budget.limit,
            len(refs),
            len(refs) - len(chosen),
        )
        return [ref for ref in refs if ref in chosen]

    def _wait_policy(self) -> WaitPolicy | None:
        if not self.config.get("wait_for_completion"):
            return None
        return WaitPolicy(
            first_interval=float(self.config.get("poll_interval_seconds", 30)),
            deadline=time.monotonic() + float(self.config.get("max_wait_seconds", 900)),
        )

    def _emit(
        self, snapshot: JobSnapshot, ledger: JobLedger, summary: RunSummary
    ) -> Iterator[dict[str, t.Any]]:
        for warning in snapshot.warnings:
            self.logger.warning("Job %s: %s", snapshot.ref.key, warning)
        self._current = snapshot
        try:
            # The SDK syncs import_results, then writes this record, before resuming here.
            yield dict(snapshot.record)
        finally:
            self._current = None
            results = snapshot.results
            snapshot.close()
        if self.ABORT_AT_RECORD_COUNT is None:
            # A dry run (--test) emits a sample of rows, so it claims nothing in state.
            ledger.record_snapshot(snapshot)
        summary.jobs_by_status[snapshot.status] += 1
        if results is not None:
            summary.rows_by_outcome.update(results.outcomes)

    def _note_error(self, outcome: FetchOutcome, ledger: JobLedger, summary: RunSummary) -> None:
        ref, error = outcome.ref, outcome.error
        if isinstance(error, (RequestBudgetExhaustedError, RunStoppedError)):
            summary.not_requested += 1
            return
        if isinstance(error, JobNotFoundError):
            summary.not_found += 1
            ledger.record_not_found(ref, utc_now())
            self.logger.warning(
                "Job %s: not found (%s): expired (the API keeps jobs 7 days) or unknown. "
                "Skipped, and never requested again.",
                ref.key,
                error,
            )
            return
        if outcome.snapshot is None:
            ledger.record_request(ref, utc_now())
        reason = error if isinstance(error, JobFetchError) else f"{type(error).__name__}: {error}"
        self.logger.error("Job %s could not be read: %s", ref.key, reason)
        summary.failed.append(f"{ref.key}: {reason}")


class ImportResultsStream(Stream):
    """One record per row of a job's import: created, matched (existing) or failed."""

    name = "import_results"
    parent_stream_type = ImportJobsStream
    primary_keys = ("team_id", "job_id", "row_index")
    replication_key = "fetched_at"
    is_sorted = False
    # One bookmark for the stream, not one partition per job (quadratic state).
    state_partitioning_keys = ()
    # Records are built with the schema's types already.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    schema = th.PropertiesList(
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
    ).to_dict()

    _schema_sent = False

    @override
    def _write_schema_message(self) -> None:
        # The SDK re-sends a child's SCHEMA for every parent record: once per run is enough.
        if not self._schema_sent:
            self._schema_sent = True
            super()._write_schema_message()

    @property
    def _jobs_stream(self) -> ImportJobsStream:
        return t.cast("ImportJobsStream", self._tap.streams[ImportJobsStream.name])

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        _, results = self._jobs_stream.current_snapshot(context)
        yield from iter_result_records(results)

    @override
    def _write_state_message(self) -> None:
        # See ImportJobsStream: state is written at the parent's checkpoints.
        if self._jobs_stream.state_checkpoints.due():
            super()._write_state_message()

    def writes_records_directly(self) -> bool:
        """Whether records can skip the SDK's per-record path: nothing would change them."""
        maps = self.stream_maps
        return (
            self.selected
            and self.ABORT_AT_RECORD_COUNT is None
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
            and all(self.mask.get(("properties", name), True) for name in self.schema["properties"])
        )

    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict[str, t.Any], t.Any, t.Any]:
        # The SDK's per-record path costs ~70 us a row; a million-row job needs far less.
        if not (write_messages and self.writes_records_directly()):
            yield from super()._sync_records(context, write_messages=write_messages)
            return
        snapshot, results = self._jobs_stream.current_snapshot(context)
        with self.get_record_counter() as counter, self.get_sync_timer() as timer:
            counter.with_context(context)
            timer.with_context(context)
            _write_record_lines(self.name, results)
            counter.increment(results.count)
        if results.count:
            # Every row of a snapshot shares its fetched_at, the replication key.
            bookmark = {"fetched_at": snapshot.record["fetched_at"]}
            self._increment_stream_state(bookmark, context=context)
            self.state_manager.is_flushed = False
        self._write_state_message()


def _write_record_lines(stream_name: str, results: ResultsSpool) -> None:
    """Write each spooled record as a RECORD message, in large blocks."""
    extracted = format_datetime(utc_now()).encode()
    head = b'{"type":"RECORD","stream":"' + stream_name.encode() + b'","record":'
    tail = b',"time_extracted":"' + extracted + b'"}\n'
    # Whatever went through the text layer must go out before these bytes.
    sys.stdout.flush()
    # Tests capture stdout as text; the CLI's stdout has a binary buffer.
    binary: t.BinaryIO | None = getattr(sys.stdout, "buffer", None)
    # Every line becomes head + line + tail: one bytes.replace per block, in C.
    between = tail + head
    for block in results.blocks(WRITE_BLOCK_BYTES):
        _write_block(binary, head + block[:-1].replace(b"\n", between) + tail)
    # No flush here: the next message's flush (or exit) pushes these bytes out, in order.


def _write_block(binary: t.BinaryIO | None, block: bytes) -> None:
    if binary is not None:
        binary.write(block)
    else:
        sys.stdout.write(block.decode())
