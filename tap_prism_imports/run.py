"""One run of the tap, free of the SDK: which jobs to request, in what order they are
emitted, and when the ledger changes.

``ImportRun.blocks()`` hands out the imports to emit, one step each, in blocks: first
those the import log answers itself (sync and rejected imports: no request), many to a
block, then each job followed through the API, one to a block, in the order of the
refs. The caller writes a block's records, then calls ``confirm(block)``: only then do
the jobs' ledger entries (or the import log's progress) change, so a STATE written
after it never claims an import whose records were not all written. Everything a run
learns (requests, skipped and failed jobs, rows by outcome) ends in its summary line.
"""

from __future__ import annotations

import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field

from tap_prism_imports.errors import (
    STOPPED_UNREACHABLE,
    ApiUnreachableError,
    JobFetchError,
    JobNotFoundError,
    JobsFailedError,
    RequestBudgetExhaustedError,
    RunStoppedError,
)
from tap_prism_imports.fetcher import JobFetcher, WaitPolicy
from tap_prism_imports.import_log.imports import LoggedJobRef
from tap_prism_imports.import_log.keys import attach_source_keys, read_input_keys
from tap_prism_imports.records.import_jobs import (
    IMPORT_MODES,
    JOB_STATUSES,
    TERMINAL_STATUSES,
    with_log_columns,
)
from tap_prism_imports.records.import_results import OUTCOMES
from tap_prism_imports.state import MAX_MISSES, MISS_RETRY_DELAYS, NOT_FOUND, Plan
from tap_prism_imports.times import format_datetime, utc_now

if t.TYPE_CHECKING:
    import datetime
    import logging
    from collections.abc import Callable, Generator, Mapping

    from tap_prism_imports.import_log.imports import LoggedImport
    from tap_prism_imports.import_log.reader import ImportLogReader
    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.pacing import RequestBudget
    from tap_prism_imports.signals import Interruption
    from tap_prism_imports.snapshots import JobSnapshot
    from tap_prism_imports.state import JobLedger

MAX_FAILURES_SHOWN = 10
# The import log's imports go out in blocks of this many rows (or imports): a log of
# small imports costs one write and one STATE check per block, not per import. Small
# blocks stay in the CPU's cache (measured on 100,000 imports of 10 rows: blocks of 500
# rows 8% faster than one import at a time, blocks of 3,000 rows 9% slower).
LOG_BLOCK_ROWS = 500
LOG_BLOCK_IMPORTS = 50
LEFT_BY_BUDGET = "request budget"
LEFT_INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class RunSettings:
    """The settings that shape a run, read from the tap's config."""

    refresh_terminal: bool = False
    refresh_not_found: bool = False
    wait: WaitPolicy | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, t.Any]) -> RunSettings:
        wait = None
        if config.get("wait_for_completion"):
            wait = WaitPolicy(
                first_interval=float(config.get("poll_interval_seconds", 30)),
                deadline=time.monotonic() + float(config.get("max_wait_seconds", 900)),
            )
        return cls(
            refresh_terminal=bool(config.get("refresh_terminal_jobs")),
            refresh_not_found=bool(config.get("refresh_not_found_jobs")),
            wait=wait,
        )


@dataclass
class RunSummary:
    """The one-line account of a run, logged at its end."""

    configured: int = 0
    already_final: int = 0
    expired: int = 0
    gone: int = 0
    waiting: int = 0
    #: Jobs that were to be requested but were not, by why (budget, API limit, ...).
    left: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    # Plain dicts, counted with get(): a Counter's += costs twice as much, once per
    # import of the log.
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    imports_by_mode: dict[str, int] = field(default_factory=dict)
    rows_by_outcome: dict[str | None, int] = field(default_factory=dict)

    @property
    def not_requested(self) -> int:
        return sum(self.left.values())

    def line(self, answered: int, unanswered: int) -> str:
        statuses = ", ".join(f"{self.jobs_by_status.get(s, 0)} {s}" for s in JOB_STATUSES)
        outcomes = ", ".join(f"{self.rows_by_outcome.get(o, 0)} {o}" for o in OUTCOMES)
        unknown = self.rows_by_outcome.get(None, 0)
        left = ", ".join(f"{count} ({reason})" for reason, count in sorted(self.left.items()))
        return (
            f"Run summary: {_requests(answered, unanswered)}; "
            f"{self.configured} jobs configured; emitted jobs: {statuses}; "
            + ", ".join(f"{self.imports_by_mode.get(m, 0)} {m}" for m in IMPORT_MODES)
            + f"; rows: {outcomes}"
            + (f", {unknown} without outcome" if unknown else "")
            + f"; skipped: {self.already_final} already final, {self.expired} expired, "
            f"{self.gone} gone (404 at this api_url), {self.waiting} waiting after a 404; "
            f"left for the next run: {left or 'none'}; {len(self.failed)} failed"
        )


def _requests(answered: int, unanswered: int) -> str:
    if not answered and not unanswered:
        return "no request was needed (the API key was not used this run)"
    text = f"{answered} {'request' if answered == 1 else 'requests'} answered"
    if unanswered:
        text += f", {unanswered} {'attempt' if unanswered == 1 else 'attempts'} without an answer"
    return text


@dataclass
class Step:
    """One import to emit (or one job that failed), in emission order."""

    ref: JobRef
    snapshot: JobSnapshot | None = None
    error: Exception | None = None
    #: Set when the import came from the import log: confirmed there, not in the ledger.
    logged: LoggedImport | None = None

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()


class ImportRun:
    """Follows the configured jobs once and keeps the ledger in step with what was emitted."""

    def __init__(
        self,
        refs: list[JobRef],
        ledger: JobLedger,
        *,
        fetch: Callable[[JobRef], JobSnapshot],
        api_url: str,
        budget: RequestBudget,
        settings: RunSettings,
        workers: int,
        stop_requests: Callable[[], None],
        fatal_errors: tuple[type[Exception], ...],
        # singer-sdk 0.55 gives streams a LoggerAdapter.
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        interruption: Interruption,
        import_log: ImportLogReader | None = None,
        claims_state: bool = True,
    ) -> None:
        self.ledger = ledger
        self.budget = budget
        self._api_url = api_url
        self._settings = settings
        self._logger = logger
        self._log = import_log
        self._interruption = interruption
        # A dry run (--test) emits a sample of rows, so it claims nothing in state.
        self._claims_state = claims_state
        self._started = utc_now()
        self._configured = {ref.key for ref in refs}
        # The configured jobs, then those the import log handed over in earlier runs;
        # this run's new ones are added as the log is read.
        self.refs = dict.fromkeys([*refs, *ledger.logged_jobs(self._started)])
        self._configured.update(ref.key for ref in self.refs)
        self.summary = RunSummary()
        self._fetch = fetch
        self._fetcher = JobFetcher(
            self._fetch_keyed,
            workers=workers,
            wait=settings.wait,
            stop_requests=stop_requests,
            fatal_errors=fatal_errors,
            interruption=interruption,
        )
        # Jobs to request, and those whose fate this run has settled (emitted or not).
        self._to_fetch: list[JobRef] = []
        self._settled: set[JobRef] = set()
        self._not_found: list[tuple[JobRef, JobNotFoundError]] = []
        self._teams_answered: set[str] = set()
        self._unreachable: Exception | None = None
        #: Why the run likely failed as a whole, said before the jobs that failed.
        self._explanations: list[str] = []

    def blocks(self, *, hold: bool = False) -> Generator[list[Step], None, None]:
        """Each import to emit, in order and in blocks: emit a block's snapshots, then
        ``confirm`` the block.

        When any job is to be requested, the first request is answered before the first
        block: a wrong key fails the run before it emits anything, and an unreachable API
        is found by one job's retries, not by every job's.

        A block's spools are released when the next block is asked for, unless ``hold``:
        then the caller closes each step itself (batch files confirm steps later).
        """
        first = self._first_request()
        if first is not None:
            self._fetcher.fetch_first(first)
        if self._log is not None:
            yield from self._log_blocks(self._log, hold=hold)
        self._to_fetch = self._within_budget(self._refs_to_fetch(), first)
        for outcome in self._fetcher.run(self._to_fetch):
            step = Step(outcome.ref, outcome.snapshot, outcome.error)
            if step.snapshot is not None:
                self._with_log_columns(step.snapshot)
                for warning in step.snapshot.warnings:
                    self._logger.warning("Job %s: %s", step.ref.key, warning)
            yield from _handed_out([step], hold=hold)

    def confirm(self, block: list[Step]) -> None:
        """The block's records are all written: the ledger and summary may now say so."""
        summary = self.summary
        jobs_by_status, imports_by_mode = summary.jobs_by_status, summary.imports_by_mode
        rows_by_outcome = summary.rows_by_outcome
        for step in block:
            if step.logged is None:
                self._settled.add(step.ref)
            if step.snapshot is not None:
                snapshot = step.snapshot
                if self._claims_state:
                    if step.logged is not None and self._log is not None:
                        self._log.confirm(step.logged)
                    else:
                        self.ledger.record_snapshot(snapshot)
                if step.logged is None:
                    self._teams_answered.add(step.ref.team_id)
                status, mode = snapshot.status, snapshot.record["mode"]
                jobs_by_status[status] = jobs_by_status.get(status, 0) + 1
                imports_by_mode[mode] = imports_by_mode.get(mode, 0) + 1
                if snapshot.results is not None:
                    for outcome, count in snapshot.results.outcomes.items():
                        rows_by_outcome[outcome] = rows_by_outcome.get(outcome, 0) + count
            if step.error is not None:
                self._note_error(step)

    def close(self) -> None:
        """Settle the 404s, forget jobs that can no longer matter, and log the summary."""
        self._fetcher.close()
        self._settle_not_found()
        unsettled = len([ref for ref in self._to_fetch if ref not in self._settled])
        if unsettled:
            reason = LEFT_INTERRUPTED if self._interruption.is_set() else "run stopped"
            self.summary.left[reason] += unsettled
        self.ledger.prune(self._configured, self._started)
        self.summary.configured = len(self.refs)
        self._logger.info(self.summary.line(self.budget.answered, self.budget.unanswered))

    def _first_request(self) -> JobRef | None:
        """The job to ask about before anything is emitted: a configured or ledger job,
        else the first the import log hands over; ``None`` if no request is needed."""
        known = [ref for ref in self.refs if self._plan(ref) is Plan.REQUEST]
        if known:
            # The one a request budget would serve first: asked longest ago, or never.
            return min(known, key=self.ledger.requested_at)
        if self._log is not None:
            for ref in self._log.job_refs():
                if self._plan(ref) is Plan.REQUEST:
                    return ref
        return None

    def _log_blocks(self, log: ImportLogReader, *, hold: bool) -> Generator[list[Step], None, None]:
        """The import log's sync and rejected imports, in blocks, as the log is read.

        A job the log hands over is remembered in the ledger before the log is told so:
        both changes go out in the same STATE, so the job is never lost between them.
        """
        block: list[Step] = []
        rows = 0
        try:
            for item in log.items():
                if isinstance(item, LoggedJobRef):
                    if self._claims_state:
                        self.ledger.remember_logged_job(item.ref, item.ledger_entry())
                        log.confirm(item)
                    self.refs[item.ref] = None
                    self._configured.add(item.ref.key)
                    continue
                snapshot = item.snapshot
                for warning in item.warnings:
                    self._logger.warning("%s", warning)
                block.append(Step(snapshot.ref, snapshot=snapshot, logged=item))
                rows += 0 if snapshot.results is None else snapshot.results.count
                if rows >= LOG_BLOCK_ROWS or len(block) >= LOG_BLOCK_IMPORTS:
                    full, block, rows = block, [], 0
                    yield from _handed_out(full, hold=hold)
            if block:
                full, block = block, []
                yield from _handed_out(full, hold=hold)
        finally:
            for step in block:  # read, never handed out (a stop, an error): not claimed
                step.close()
        log.close()
        for warning in log.warnings:
            self._logger.warning("%s", warning)
        for error in log.errors:
            self._logger.error("Import log %s", error)

    def _fetch_keyed(self, ref: JobRef) -> JobSnapshot:
        """``fetch``, plus what the import log knows of the job: its columns and row keys."""
        snapshot = self._fetch(ref)
        self._with_log_columns(snapshot)
        return snapshot

    def _with_log_columns(self, snapshot: JobSnapshot) -> None:
        """Set what the import log knows of the job, once: its columns and its row keys.

        The first request of a run can be answered before the log has handed its job
        over; that job gets them when it is emitted.
        """
        ref = snapshot.ref
        logged = self.ledger.logged_job(ref)
        if logged is None or snapshot.record.get("submitted_at") is not None:
            return
        with_log_columns(
            snapshot.record,
            mode=snapshot.record["mode"],
            object_type=logged.get("object_type"),
            submitted_at=logged.get("submitted_at"),
        )
        location = logged.get("input_keys_at")
        if snapshot.results is not None and location is not None:
            lookup = read_input_keys(location, ref)
            if lookup.warning is not None:
                snapshot.warnings.append(lookup.warning)
            if lookup.keys is not None:
                snapshot.results, warnings = attach_source_keys(
                    snapshot.results, lookup.keys, import_name=f"job {ref.key}"
                )
                snapshot.warnings += warnings

    def raise_for_failures(self) -> None:
        if self._unreachable is not None:
            left = self.summary.not_requested
            msg = (
                f"{self._unreachable} {left} {'job is' if left == 1 else 'jobs are'} left for "
                "the next run."
            )
            raise JobsFailedError(msg)
        failed = [
            *self.summary.failed,
            *(f"import log {e}" for e in (self._log.errors if self._log else [])),
        ]
        if not failed:
            return
        shown = "; ".join(failed[:MAX_FAILURES_SHOWN])
        hidden = len(failed) - MAX_FAILURES_SHOWN
        more = f" (and {hidden} more)" if hidden > 0 else ""
        msg = (
            f"{len(failed)} of {self.summary.configured} jobs could not be read and "
            f"will be requested again: {shown}{more}"
        )
        raise JobsFailedError(" ".join([*self._explanations, msg]))

    def _plan(self, ref: JobRef) -> Plan:
        plan = self.ledger.plan(
            ref,
            self._started,
            api_url=self._api_url,
            refresh_terminal=self._settings.refresh_terminal,
        )
        if self._settings.refresh_not_found and plan in {Plan.GONE, Plan.WAITING}:
            return Plan.REQUEST
        return plan

    def _refs_to_fetch(self) -> list[JobRef]:
        to_fetch: list[JobRef] = []
        for ref in self.refs:
            plan = self._plan(ref)
            if plan is Plan.REQUEST:
                to_fetch.append(ref)
            elif plan is Plan.EXPIRED:
                self.summary.expired += 1
                if self.ledger.status(ref) not in {*TERMINAL_STATUSES, NOT_FOUND}:
                    self._logger.warning(
                        "Job %s expired (the API keeps jobs 7 days) while %s; "
                        "its last snapshot stays as loaded.",
                        ref.key,
                        self.ledger.status(ref) or "never answered",
                    )
            elif plan is Plan.GONE:
                self.summary.gone += 1
            elif plan is Plan.WAITING:
                self.summary.waiting += 1
            else:
                self.summary.already_final += 1
        return to_fetch

    def _within_budget(self, refs: list[JobRef], first: JobRef | None) -> list[JobRef]:
        """The jobs this run may request, in ref order; ``first`` (already asked) among them."""
        limit = self.budget.limit
        if limit is None or len(refs) <= limit:
            return refs
        # The jobs requested longest ago (or never) go first, so no job starves.
        others = sorted((ref for ref in refs if ref != first), key=self.ledger.requested_at)
        led = [ref for ref in refs if ref == first]
        chosen = {*led, *others[: limit - len(led)]}
        self.summary.left[LEFT_BY_BUDGET] += len(refs) - len(chosen)
        self._logger.warning(
            "`max_requests_per_run` %d is below the %d jobs to request: %d wait for the next run.",
            limit,
            len(refs),
            len(refs) - len(chosen),
        )
        return [ref for ref in refs if ref in chosen]

    def _note_error(self, step: Step) -> None:
        ref, error = step.ref, step.error
        if isinstance(error, RequestBudgetExhaustedError):
            self.summary.left[LEFT_BY_BUDGET] += 1
            return
        if isinstance(error, RunStoppedError):
            self.summary.left[error.reason] += 1
            return
        if isinstance(error, JobNotFoundError):
            # Judged at the end of the run, with every other job's answer.
            self._not_found.append((ref, error))
            return
        if step.snapshot is None and self._claims_state:
            self.ledger.record_request(ref, utc_now())
        if isinstance(error, ApiUnreachableError):
            self._unreachable = error
            self.summary.left[STOPPED_UNREACHABLE] += 1
            return
        reason = error if isinstance(error, JobFetchError) else f"{type(error).__name__}: {error}"
        self._logger.error("Job %s could not be read: %s", ref.key, reason)
        self.summary.failed.append(f"{ref.key}: {reason}")

    def _settle_not_found(self) -> None:
        """Mark gone only the 404s that can mean "expired"; the others are misses.

        A job known to be under 7 days old cannot have expired, and when no job of a
        team was found but several answered 404, `api_url` or the team is likely wrong:
        then nothing of that team is marked gone, the run fails saying so, and the
        jobs are asked again later, at most ``MAX_MISSES`` times at one `api_url`.
        """
        now = utc_now()
        by_team: dict[str, list[tuple[JobRef, JobNotFoundError]]] = {}
        for ref, error in self._not_found:
            by_team.setdefault(ref.team_id, []).append((ref, error))
        for team_id, missing in by_team.items():
            young = {ref: self.ledger.retained_until(ref, now) for ref, _ in missing}
            suspect = team_id not in self._teams_answered and (
                len(missing) >= 2 or any(young.values())  # noqa: PLR2004
            )
            if suspect:
                self._explain_suspect_team(team_id, missing)
            for ref, error in missing:
                self._settle_one(ref, error, young[ref], suspect=suspect, now=now)

    def _settle_one(
        self,
        ref: JobRef,
        error: JobNotFoundError,
        retained_until: datetime.datetime | None,
        *,
        suspect: bool,
        now: datetime.datetime,
    ) -> None:
        if not (suspect or retained_until):
            self.summary.gone += 1
            if self._claims_state:
                self.ledger.record_gone(ref, now, self._api_url)
            self._logger.warning(
                "Job %s: not found (%s): expired (the API keeps jobs 7 days) or unknown. "
                "Not requested again at this `api_url`.",
                ref.key,
                error,
            )
            return
        misses = self.ledger.misses(ref, self._api_url) + 1
        if self._claims_state:
            self.ledger.record_miss(ref, now, self._api_url)
        if misses >= MAX_MISSES and retained_until is None:
            if self._claims_state:
                self.ledger.record_gone(ref, now, self._api_url)
            later = "now marked gone: not requested again at this `api_url`"
        elif misses >= MAX_MISSES:
            later = "not requested again at this `api_url`"
        else:
            delay = MISS_RETRY_DELAYS[misses - 1]
            later = f"asked again in {_hours(delay)} or later"
        why = ""
        if retained_until is not None and not suspect:
            why = (
                f" at GET {error.url}, though the API keeps it until "
                f"{format_datetime(retained_until)}: `api_url` or its team is likely wrong"
            )
        self.summary.failed.append(
            f"{ref.key}: 404{why} ({misses} of {MAX_MISSES} at this `api_url`; {later})"
        )

    def _explain_suspect_team(
        self, team_id: str, missing: list[tuple[JobRef, JobNotFoundError]]
    ) -> None:
        self._explanations.append(
            f"{len(missing)} {'job' if len(missing) == 1 else 'jobs'} of team {team_id} "
            "answered 404 and none of its jobs was found: `api_url` "
            f"({self._api_url}) or `team_id` (or the team in the job refs) is likely wrong; "
            f"one request was GET {missing[0][1].url}. Nothing was marked gone: each job is "
            f"asked again later, at most {MAX_MISSES} times in all at one `api_url`."
        )


def _handed_out(block: list[Step], *, hold: bool) -> Generator[list[Step], None, None]:
    """Hand ``block`` out; unless ``hold``, release its spools when the caller is done."""
    try:
        yield block
    finally:
        if not hold:
            for step in block:
                step.close()


def _hours(delay: datetime.timedelta) -> str:
    hours = delay.total_seconds() / 3600
    return f"{hours:g} h"
