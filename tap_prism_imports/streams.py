"""The two streams: schemas, and thin adapters between the SDK and the run engine.

``import_jobs`` drives an ``ImportRun`` (run.py), a block of jobs at a time. When
nothing transforms the records, it writes a block's rows and job records itself;
otherwise it yields one record per job, and the SDK syncs ``import_results`` for that
job before writing the job's record and resuming the generator. Only once a block's
records are all written are its jobs confirmed to the ledger.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass

import orjson
from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from typing_extensions import override

from tap_prism_imports.batch_files import RollingBatchFile, open_for_writing
from tap_prism_imports.client import PrismStream
from tap_prism_imports.import_log.reader import ImportLogReader
from tap_prism_imports.messages import PrismMessageWriter
from tap_prism_imports.records import import_jobs, import_results
from tap_prism_imports.records.import_results import (
    ResultsSpool,
    iter_result_records,
    joined_blocks,
)
from tap_prism_imports.run import ImportRun, RunSettings, Step
from tap_prism_imports.sdk_hooks import (
    AnnouncedBatchesStream,
    DirectRecordsStream,
    RationedStateStream,
    RecordLines,
)
from tap_prism_imports.signals import Interruption, RunInterrupted, exit_for_signal
from tap_prism_imports.state import JobLedger, StateCheckpoints
from tap_prism_imports.times import utc_now

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk import Tap, metrics
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib.encoding import GenericSingerWriter
    from singer_sdk.streams import Stream

    from tap_prism_imports.snapshots import JobSnapshot

# Direct writes go out in blocks this large rather than one flush per record.
WRITE_BLOCK_BYTES = 1 << 20
# In BATCH mode, pending jobs are announced (and claimed) at least this often.
ROLL_SECONDS = 60.0


@dataclass
class StreamLink:
    """What the two streams share in a run: the STATE ration and the job being emitted."""

    checkpoints: StateCheckpoints
    writer: GenericSingerWriter[t.Any, t.Any]
    interruption: Interruption
    current: JobSnapshot | None = None
    #: This run, the parent writes each job's import_results records itself.
    rows_written_by_parent: bool = False

    def current_job(self, context: Context | None) -> tuple[JobSnapshot, ResultsSpool]:
        """The job whose ``import_results`` the SDK is syncing (named by ``context``)."""
        snapshot = self.current
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


class LinkedStream(RationedStateStream):
    """A stream of this tap: it shares the run's ``StreamLink`` with the other one."""

    def __init__(self, tap: Tap, link: StreamLink) -> None:
        super().__init__(tap)
        self.link = link

    @property
    @override
    def state_checkpoints(self) -> StateCheckpoints:
        return self.link.checkpoints


class ImportJobsStream(DirectRecordsStream, LinkedStream, PrismStream):
    """One record per job per run: the last snapshot fetched."""

    name = "import_jobs"
    primary_keys = ("team_id", "job_id")
    replication_key = "fetched_at"
    is_sorted = False
    schema = import_jobs.SCHEMA
    # Records are built with the schema's types already.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        # Only ids go into the context: it is written to logs and sent to targets.
        snapshot = self.link.current
        if (
            snapshot is not None
            and snapshot.results is not None
            and not self.link.rows_written_by_parent
        ):
            yield {"team_id": snapshot.ref.team_id, "job_id": snapshot.ref.job_id}

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        run = self._start_run()
        if run is None:
            return
        results = self._results_stream
        self.link.rows_written_by_parent = results.writes_records_directly()
        direct = self.link.rows_written_by_parent and self._writes_records_directly()
        try:
            for block in run.blocks():
                if direct:
                    self._write_block(block)
                else:
                    for step in block:
                        if step.snapshot is not None:
                            yield from self._through_sdk(step.snapshot)
                        # A stop may have cut the job's rows short: it is not confirmed.
                        self.link.interruption.check()
                run.confirm(block)
                self.write_checkpoint()
        except RunInterrupted:
            pass
        finally:
            self._end_run(run)

    def _write_block(self, block: list[Step]) -> None:
        """The block's rows, then its job records, each written as a few large writes."""
        groups = _by_fetched_at([step.snapshot for step in block if step.snapshot is not None])
        if self.link.rows_written_by_parent:
            self._results_stream.write_rows(groups)
        # A stop may have cut the rows short: then no job record.
        self.link.interruption.check()
        for fetched_at, same_time in groups:
            lines = [orjson.dumps(s.record, option=orjson.OPT_APPEND_NEWLINE) for s in same_time]
            self.write_lines(
                RecordLines(
                    blocks=[b"".join(lines)],
                    count=len(lines),
                    time_extracted=fetched_at,
                    bookmark={"fetched_at": fetched_at},
                    # Whole: the block's jobs are confirmed right after their records.
                    interruption=None,
                )
            )
            self._jobs_counter.increment(len(lines))

    def _through_sdk(self, snapshot: JobSnapshot) -> Iterator[dict[str, t.Any]]:
        """The job's record, for the SDK to write after syncing its ``import_results``
        (unless written here)."""
        self.link.current = snapshot
        try:
            if self.link.rows_written_by_parent:
                self._results_stream.write_rows(_by_fetched_at([snapshot]))
            yield dict(snapshot.record)
        finally:
            self.link.current = None

    @property
    @override
    def record_writer(self) -> PrismMessageWriter:
        return t.cast("PrismMessageWriter", self.link.writer)

    @override
    def get_record_counter(self, **kwargs: t.Any) -> metrics.Counter:
        # Kept: job records written directly are counted on the SDK's own counter.
        self._jobs_counter = super().get_record_counter(**kwargs)
        return self._jobs_counter

    def _writes_records_directly(self) -> bool:
        """Whether the job records can skip the SDK's per-record path too."""
        return (
            isinstance(self.link.writer, PrismMessageWriter)
            and self.ABORT_AT_RECORD_COUNT is None
            and self.has_no_record_changes()
        )

    @override
    def get_batches(
        self, batch_config: t.Any, context: Context | None = None
    ) -> Iterator[tuple[t.Any, list[str]]]:
        """Batch files written straight from the spooled lines, rolled every N rows.

        A job is confirmed only once its ``import_jobs`` record and all its rows are in
        files that BATCH messages have announced; the STATE after that claims it.
        """
        results = self._results_stream
        if not self._writes_batches_directly(batch_config):
            # Field selection, or an encoding other than JSON Lines: the SDK's own path.
            self.link.checkpoints.final_only = True
            yield from super().get_batches(batch_config, context)
            return
        run = self._start_run()
        if run is None:
            return
        files = _BatchFiles(self, results, batch_config)
        try:
            for block in run.blocks(hold=True):
                for step in block:
                    files.write(step, self.link.interruption)
                self.link.interruption.check()
                if files.due():
                    yield from self._announce_jobs(files, run)
            files.cut_rows()
            yield from self._announce_jobs(files, run)
        except RunInterrupted:
            pass
        finally:
            # Files not announced are left unclaimed: their jobs go out again next run.
            files.close()
            self._end_run(run)

    def _announce_jobs(
        self, files: _BatchFiles, run: ImportRun
    ) -> Iterator[tuple[t.Any, list[str]]]:
        """Announce the job records written; confirm the jobs whose rows are all announced."""
        url = files.jobs.finish()
        if url is not None:
            yield files.encoding, [url]  # the SDK writes the BATCH message, then resumes here
        announced = files.announced_steps()
        run.confirm(announced)
        for step in announced:
            step.close()
        self.write_checkpoint()

    def _writes_batches_directly(self, batch_config: t.Any) -> bool:
        results = self._results_stream
        return (
            batch_config.encoding.format == "jsonl"
            and self.ABORT_AT_RECORD_COUNT is None  # --test samples through the SDK's path
            and self.has_no_record_changes()
            and (not results.selected or results.has_no_record_changes())
        )

    @property
    def _results_stream(self) -> ImportResultsStream:
        return t.cast("ImportResultsStream", self.child_streams[0])

    def _start_run(self) -> ImportRun | None:
        """The run of the configured jobs; ``None`` (and a warning) when nothing is."""
        refs = self.sync_settings.refs
        log_spec = self.config.get("import_log")
        ledger = JobLedger(self.stream_state)
        if not refs and not log_spec and not ledger.logged_jobs(utc_now()):
            self.logger.warning(
                "No job refs configured: set `job_ids`, `job_ids_file` or `import_log`. "
                "Nothing to extract."
            )
            return None
        import_log = None
        if log_spec:
            import_log = ImportLogReader(
                log_spec,
                self.stream_state.setdefault("import_log", {}),
                now=utc_now(),
                interruption=self.link.interruption,
            )
        reader = import_log
        self.link.checkpoints.measure_with(
            lambda: len(ledger) + len(refs) + (reader.state_entries if reader else 0)
        )
        return ImportRun(
            refs,
            ledger,
            fetch=self.fetch_snapshot,
            api_url=self.api_url,
            budget=self.request_budget,
            settings=RunSettings.from_config(self.config),
            workers=self.worker_count,
            stop_requests=self.pacer.stop,
            fatal_errors=(FatalAPIError,),
            logger=self.logger,
            interruption=self.link.interruption,
            import_log=import_log,
            claims_state=self.ABORT_AT_RECORD_COUNT is None,
        )

    def _end_run(self, run: ImportRun) -> None:
        """The summary, the final STATE; then the exit a signal asked for, or the failures."""
        run.close()
        self._results_stream.count_rows_written()
        checkpoints = self.link.checkpoints
        checkpoints.unthrottled = True
        if not checkpoints.final_only:
            self.write_checkpoint()
        if self.link.interruption.is_set():
            exit_for_signal(self.link.interruption)
        run.raise_for_failures()

    def has_no_record_changes(self) -> bool:
        """Whether no stream map, flattening or field selection changes this stream's records."""
        return _unchanged_by_maps_and_selection(self)


class ImportResultsStream(DirectRecordsStream, AnnouncedBatchesStream, LinkedStream):
    """One record per row of a job's import: created, matched (existing) or failed."""

    name = "import_results"
    parent_stream_type = ImportJobsStream
    primary_keys = ("team_id", "job_id", "row_index")
    replication_key = "fetched_at"
    is_sorted = False
    # One bookmark for the stream, not one partition per job (quadratic state).
    state_partitioning_keys = ()
    schema = import_results.SCHEMA
    # Records are built with the schema's types already.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    _rows_written = 0

    @property
    @override
    def record_writer(self) -> PrismMessageWriter:
        return t.cast("PrismMessageWriter", self.link.writer)

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        _, results = self.link.current_job(context)
        for record in iter_result_records(results):
            if self.link.interruption.is_set():
                return  # the parent sees the stop too, and does not confirm the job
            yield record

    def writes_records_directly(self) -> bool:
        """Whether records can skip the SDK's per-record path: nothing would change them."""
        return (
            self.selected
            and isinstance(self.link.writer, PrismMessageWriter)
            and self.ABORT_AT_RECORD_COUNT is None
            and self.has_no_record_changes()
        )

    def has_no_record_changes(self) -> bool:
        """Whether no stream map, flattening or field selection changes this stream's records."""
        return _unchanged_by_maps_and_selection(self)

    def write_rows(self, groups: list[tuple[str, list[JobSnapshot]]]) -> None:
        """The jobs' records, written for the parent: see ``DirectRecordsStream``.

        Jobs read together (the import log's) share their fetched_at, the replication
        key and the messages' time_extracted: their rows go out as one run of blocks.
        """
        for fetched_at, same_time in groups:
            spools = [s.results for s in same_time if s.results is not None and s.results.count]
            count = sum(spool.count for spool in spools)
            if not count:
                continue
            self.write_lines(
                RecordLines(
                    blocks=joined_blocks(spools, WRITE_BLOCK_BYTES),
                    count=count,
                    time_extracted=fetched_at,
                    bookmark={"fetched_at": fetched_at},
                    interruption=self.link.interruption,
                )
            )
            self._rows_written += count

    def count_rows_written(self) -> None:
        """The run's record count, as the SDK's metrics would give it: one line."""
        if self._rows_written:
            with self.get_record_counter() as counter:
                counter.increment(self._rows_written)
            self._rows_written = 0


def _by_fetched_at(snapshots: list[JobSnapshot]) -> list[tuple[str, list[JobSnapshot]]]:
    """The snapshots in runs that share their fetched_at (the import log's imports of a
    run share one), in order."""
    groups: list[tuple[str, list[JobSnapshot]]] = []
    for snapshot in snapshots:
        fetched_at: str = snapshot.record["fetched_at"]
        if groups and groups[-1][0] == fetched_at:
            groups[-1][1].append(snapshot)
        else:
            groups.append((fetched_at, [snapshot]))
    return groups


def _unchanged_by_maps_and_selection(stream: Stream) -> bool:
    maps = stream.stream_maps
    return (
        len(maps) == 1
        and type(maps[0]) is SameRecordTransform
        and not maps[0].flattening_enabled
        and maps[0].stream_alias == stream.name
        and all(stream.mask.get(("properties", name), True) for name in stream.schema["properties"])
    )


class _BatchFiles:
    """A run's two rolling batch files, and the jobs waiting for theirs to be announced."""

    def __init__(
        self, jobs: ImportJobsStream, results: ImportResultsStream, batch_config: t.Any
    ) -> None:
        self.encoding = batch_config.encoding
        storage = batch_config.storage
        gzipped = (self.encoding.compression or "").lower() == "gzip"

        def rolling(name: str, on_full: Callable[[str], None] | None) -> RollingBatchFile:
            return RollingBatchFile(
                open_file=lambda filename: open_for_writing(storage.get_url(filename)),
                url_of=storage.get_url,
                name=f"{storage.prefix or ''}{jobs.tap_name}--{name}",
                gzipped=gzipped,
                rows_per_file=batch_config.batch_size,
                on_full=on_full,
            )

        self._results = results
        self.jobs = rolling(jobs.name, None)
        self.rows = rolling(results.name, self._announce_rows)
        self._write_rows = results.selected
        if self._write_rows:
            results.announce_schema()
        # Each step written, with the rows file its last row is in (0: none).
        self._pending: list[tuple[Step, int]] = []
        self._bookmark: dict[str, t.Any] = {"fetched_at": None}
        self._rows_announced = False
        self._cut_at = time.monotonic()

    def write(self, step: Step, interruption: Interruption) -> None:
        """The step's job record and rows, into the files being written."""
        snapshot, rows_in = step.snapshot, 0
        if snapshot is not None:
            self.jobs.write(orjson.dumps(snapshot.record, option=orjson.OPT_APPEND_NEWLINE))
            results = snapshot.results
            if self._write_rows and results is not None and results.count:
                self._bookmark["fetched_at"] = snapshot.record["fetched_at"]
                for block in results.blocks(WRITE_BLOCK_BYTES):
                    interruption.check()
                    self.rows.write(block)
                rows_in = self.rows.last_row_file
        self._pending.append((step, rows_in))

    def due(self) -> bool:
        """Whether the job records should be announced now.

        They go out with the rows files they wait on, so claims keep pace with the rows;
        in a slow run, the files are also cut every ROLL_SECONDS.
        """
        if time.monotonic() - self._cut_at > ROLL_SECONDS:
            self.cut_rows()
            return True
        return self._rows_announced or self.jobs.full

    def cut_rows(self) -> None:
        """Finish and announce the rows file being written."""
        url = self.rows.finish()
        if url is not None:
            self._announce_rows(url)

    def announced_steps(self) -> list[Step]:
        """The jobs whose rows are all in announced files (taken off the waiting list)."""
        done = [step for step, rows_in in self._pending if rows_in <= self.rows.finished]
        self._pending = [(s, n) for s, n in self._pending if n > self.rows.finished]
        self._rows_announced = False
        self._cut_at = time.monotonic()
        return done

    def close(self) -> None:
        self.jobs.finish()
        self.rows.finish()
        for step, _ in self._pending:
            step.close()

    def _announce_rows(self, url: str) -> None:
        self._results.announce_batch(self.encoding, [url], dict(self._bookmark))
        self._rows_announced = True
