"""One run of the tap, free of the SDK: which jobs to request, in what order they are
emitted, and when the ledger changes.

``ImportRun.steps()`` hands out one step per job that was followed, in the order of
the refs. The caller writes a step's records, then calls ``confirm(step)``: only
then does the job's ledger entry change, so a STATE written after it never claims a
job whose records were not all written. Everything a run learns (requests, skipped
and failed jobs, rows by outcome) ends in its summary line.
"""

from __future__ import annotations

import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field

from tap_prism_imports.pacing import RequestBudgetExhaustedError, RunStoppedError
from tap_prism_imports.pipeline import (
    FetchOutcome,
    JobFetchError,
    JobNotFoundError,
    SnapshotPipeline,
    WaitPolicy,
)
from tap_prism_imports.snapshots import JOB_STATUSES, OUTCOMES, TERMINAL_STATUSES, utc_now
from tap_prism_imports.state import NOT_FOUND

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Generator, Mapping

    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.pacing import RequestBudget
    from tap_prism_imports.signals import Interruption
    from tap_prism_imports.snapshots import JobSnapshot
    from tap_prism_imports.state import JobLedger

MAX_FAILURES_SHOWN = 10


class JobsFailedError(Exception):
    """Some jobs could not be read; the others were extracted."""


@dataclass(frozen=True)
class RunSettings:
    """The settings that shape a run, read from the tap's config."""

    refresh_terminal: bool = False
    wait: WaitPolicy | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, t.Any]) -> RunSettings:
        wait = None
        if config.get("wait_for_completion"):
            wait = WaitPolicy(
                first_interval=float(config.get("poll_interval_seconds", 30)),
                deadline=time.monotonic() + float(config.get("max_wait_seconds", 900)),
            )
        return cls(refresh_terminal=bool(config.get("refresh_terminal_jobs")), wait=wait)


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


class ImportRun:
    """Follows the configured jobs once and keeps the ledger in step with what was emitted."""

    def __init__(
        self,
        refs: list[JobRef],
        ledger: JobLedger,
        *,
        fetch: Callable[[JobRef], JobSnapshot],
        budget: RequestBudget,
        settings: RunSettings,
        workers: int,
        stop_requests: Callable[[], None],
        fatal_errors: tuple[type[Exception], ...],
        # singer-sdk 0.55 gives streams a LoggerAdapter.
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        interruption: Interruption,
        claims_state: bool = True,
    ) -> None:
        self.refs = refs
        self.ledger = ledger
        self.budget = budget
        self.summary = RunSummary(configured=len(refs))
        self._settings = settings
        self._logger = logger
        # A dry run (--test) emits a sample of rows, so it claims nothing in state.
        self._claims_state = claims_state
        self._started = utc_now()
        self._pipeline = SnapshotPipeline(
            fetch,
            workers=workers,
            wait=settings.wait,
            stop_requests=stop_requests,
            fatal_errors=fatal_errors,
            interruption=interruption,
        )

    def steps(self) -> Generator[FetchOutcome, None, None]:
        """Each followed job, in ref order: emit its snapshot (if any), then ``confirm`` it."""
        to_fetch = self._within_budget(self._refs_to_fetch())
        for step in self._pipeline.run(to_fetch):
            if step.snapshot is not None:
                for warning in step.snapshot.warnings:
                    self._logger.warning("Job %s: %s", step.ref.key, warning)
            try:
                yield step
            finally:
                step.close()

    def confirm(self, step: FetchOutcome) -> None:
        """The step's records are all written: the ledger and summary may now say so."""
        if step.snapshot is not None:
            snapshot = step.snapshot
            if self._claims_state:
                self.ledger.record_snapshot(snapshot)
            self.summary.jobs_by_status[snapshot.status] += 1
            if snapshot.results is not None:
                self.summary.rows_by_outcome.update(snapshot.results.outcomes)
        if step.error is not None:
            self._note_error(step)

    def close(self) -> None:
        """Forget jobs that can no longer matter, and log the summary."""
        self.ledger.prune({ref.key for ref in self.refs}, self._started)
        self._logger.info(self.summary.line(self.budget.spent))

    def raise_for_failures(self) -> None:
        failed = self.summary.failed
        if not failed:
            return
        shown = "; ".join(failed[:MAX_FAILURES_SHOWN])
        hidden = len(failed) - MAX_FAILURES_SHOWN
        more = f" (and {hidden} more)" if hidden > 0 else ""
        msg = (
            f"{len(failed)} of {self.summary.configured} jobs could not be read and "
            f"will be requested again next run: {shown}{more}"
        )
        raise JobsFailedError(msg)

    def _refs_to_fetch(self) -> list[JobRef]:
        to_fetch: list[JobRef] = []
        for ref in self.refs:
            if self.ledger.needs_request(
                ref, self._started, refresh_terminal=self._settings.refresh_terminal
            ):
                to_fetch.append(ref)
            elif self.ledger.is_expired(ref, self._started):
                self.summary.expired += 1
                if self.ledger.status(ref) not in {*TERMINAL_STATUSES, NOT_FOUND}:
                    self._logger.warning(
                        "Job %s expired (the API keeps jobs 7 days) while %s; "
                        "its last snapshot stays as loaded.",
                        ref.key,
                        self.ledger.status(ref),
                    )
            else:
                self.summary.already_final += 1
        return to_fetch

    def _within_budget(self, refs: list[JobRef]) -> list[JobRef]:
        limit = self.budget.limit
        if limit is None or len(refs) <= limit:
            return refs
        # The jobs requested longest ago (or never) go first, so no job starves.
        chosen = set(sorted(refs, key=self.ledger.requested_at)[:limit])
        self.summary.not_requested += len(refs) - len(chosen)
        self._logger.warning(
            "`max_requests_per_run` %d is below the %d jobs to request: %d wait for the next run.",
            limit,
            len(refs),
            len(refs) - len(chosen),
        )
        return [ref for ref in refs if ref in chosen]

    def _note_error(self, step: FetchOutcome) -> None:
        ref, error = step.ref, step.error
        if isinstance(error, (RequestBudgetExhaustedError, RunStoppedError)):
            self.summary.not_requested += 1
            return
        if isinstance(error, JobNotFoundError):
            self.summary.not_found += 1
            self.ledger.record_not_found(ref, utc_now())
            self._logger.warning(
                "Job %s: not found (%s): expired (the API keeps jobs 7 days) or unknown. "
                "Skipped, and never requested again.",
                ref.key,
                error,
            )
            return
        if step.snapshot is None:
            self.ledger.record_request(ref, utc_now())
        reason = error if isinstance(error, JobFetchError) else f"{type(error).__name__}: {error}"
        self._logger.error("Job %s could not be read: %s", ref.key, reason)
        self.summary.failed.append(f"{ref.key}: {reason}")
