"""Following many jobs at once: fetched concurrently at the paced rate, handed out in order.

Nothing here knows HTTP or the SDK: ``fetch`` is any function from a job ref to its
snapshot, and the errors it raises decide what happens to the job.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import time
import typing as t
from dataclasses import dataclass, field

from tap_prism_imports.errors import RequestBudgetExhaustedError, RunStoppedError

INTERRUPT_CHECK_SECONDS = 0.2

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tap_prism_imports.job_refs import JobRef
    from tap_prism_imports.signals import Interruption
    from tap_prism_imports.snapshots import JobSnapshot


@dataclass
class FetchOutcome:
    """The final result of following one job this run."""

    index: int
    ref: JobRef
    snapshot: JobSnapshot | None = None
    error: Exception | None = None

    def close(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()


@dataclass(frozen=True)
class WaitPolicy:
    """How ``wait_for_completion`` polls a processing job."""

    first_interval: float
    deadline: float  # time.monotonic() value
    growth: float = 1.5
    max_interval: float = 300.0


@dataclass(order=True)
class _Poll:
    due: float
    index: int
    interval: float = field(compare=False)
    previous: JobSnapshot | None = field(compare=False)


class JobFetcher:
    """Fetches jobs concurrently at the paced rate and hands them out in ref order.

    Up to ``window`` jobs are fetched ahead of the one being emitted. With a wait
    policy, processing jobs are polled again on their schedule until they finish
    or the run's deadline passes; a job whose snapshot is still processing then is
    handed out as it last was. An error of a ``fatal_errors`` type ends the run; any
    other error is that job's alone.
    """

    def __init__(
        self,
        fetch: Callable[[JobRef], JobSnapshot],
        *,
        workers: int,
        wait: WaitPolicy | None,
        stop_requests: Callable[[], None],
        fatal_errors: tuple[type[Exception], ...],
        interruption: Interruption,
    ) -> None:
        self._fetch = fetch
        self._interruption = interruption
        self._fatal_errors = fatal_errors
        self._stop_requests = stop_requests
        self._requests_refused = False
        self._workers = workers
        self._wait = wait
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "prism-fetch")
        self._first: tuple[JobRef, concurrent.futures.Future[JobSnapshot]] | None = None

    def fetch_first(self, ref: JobRef) -> None:
        """Request ``ref`` now and wait for its answer; ``run`` hands it out in its turn.

        An error of a ``fatal_errors`` type (a refused key) is raised here, before the
        caller emits anything. Waiting notices a termination request.
        """
        future = self._pool.submit(self._fetch, ref)
        self._first = (ref, future)
        while not future.done():
            concurrent.futures.wait([future], timeout=INTERRUPT_CHECK_SECONDS)
            if self._interruption.is_set():
                self._stop_requests()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._interruption.check()
        error = future.exception()
        if isinstance(error, self._fatal_errors):
            self._stop_requests()
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise error

    def run(self, refs: Iterable[JobRef]) -> Iterator[FetchOutcome]:
        """Each job's final outcome, in the order of ``refs``."""
        jobs = list(refs)
        window = len(jobs) if self._wait else self._workers * 4
        pool = self._pool
        pending: dict[concurrent.futures.Future[JobSnapshot], _Poll] = {}
        finished: dict[int, FetchOutcome] = {}
        polls: list[_Poll] = []
        next_submit = next_yield = 0

        def submit(poll: _Poll) -> None:
            ref = jobs[poll.index]
            if self._first is not None and self._first[0] == ref and poll.previous is None:
                pending[self._first[1]] = poll
                self._first = None
            else:
                pending[pool.submit(self._fetch, ref)] = poll

        try:
            while next_yield < len(jobs):
                while next_submit < len(jobs) and next_submit - next_yield < window:
                    first_interval = self._wait.first_interval if self._wait else 0.0
                    submit(_Poll(0.0, next_submit, first_interval, None))
                    next_submit += 1
                now = time.monotonic()
                while polls and polls[0].due <= now:
                    submit(heapq.heappop(polls))
                if next_yield in finished:
                    self._interruption.check()
                    yield finished.pop(next_yield)
                    next_yield += 1
                    continue
                # Woken at least this often to notice a termination request.
                timeout = INTERRUPT_CHECK_SECONDS
                if polls:
                    timeout = min(timeout, max(0.0, polls[0].due - now))
                done, _ = concurrent.futures.wait(
                    pending, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
                )
                self._interruption.check()
                for future in done:
                    poll = pending.pop(future)
                    outcome = self._settle(future, poll, jobs[poll.index], polls)
                    if outcome is not None:
                        finished[poll.index] = outcome
                if self._requests_refused:
                    finished.update(self._give_up_polls(polls, jobs))
        finally:
            self._stop_requests()
            # Stopping for a signal: requests in flight are abandoned, not waited for.
            pool.shutdown(wait=not self._interruption.is_set(), cancel_futures=True)
            _close_unemitted(pending, finished, polls)

    def close(self) -> None:
        """Stop requesting; release the first job's answer if it was never handed out."""
        self._stop_requests()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._first is not None:
            _close_unemitted({self._first[1]: _Poll(0.0, 0, 0.0, None)}, {}, [])
            self._first = None

    @staticmethod
    def _give_up_polls(polls: list[_Poll], jobs: list[JobRef]) -> dict[int, FetchOutcome]:
        """No poll can be sent any more: each job goes out as its last poll saw it, now."""
        given_up = {
            poll.index: FetchOutcome(poll.index, jobs[poll.index], snapshot=poll.previous)
            for poll in polls
        }
        polls.clear()
        return given_up

    def _settle(
        self,
        future: concurrent.futures.Future[JobSnapshot],
        poll: _Poll,
        ref: JobRef,
        polls: list[_Poll],
    ) -> FetchOutcome | None:
        error = future.exception()
        if isinstance(error, self._fatal_errors) or (
            error is not None and not isinstance(error, Exception)
        ):
            if poll.previous is not None:
                poll.previous.close()
            raise error
        if isinstance(error, (RequestBudgetExhaustedError, RunStoppedError)):
            self._requests_refused = True
            if poll.previous is not None:
                # A poll that was never sent: the job is emitted as the last poll saw it.
                return FetchOutcome(poll.index, ref, snapshot=poll.previous)
        if error is not None:
            # A failed re-poll still leaves the snapshot the previous poll took.
            return FetchOutcome(poll.index, ref, snapshot=poll.previous, error=error)
        snapshot = future.result()
        if poll.previous is not None:
            poll.previous.close()
        if self._wait and not snapshot.is_terminal and not self._requests_refused:
            now = time.monotonic()
            if now < self._wait.deadline:
                due = min(now + poll.interval, self._wait.deadline)
                interval = min(poll.interval * self._wait.growth, self._wait.max_interval)
                heapq.heappush(polls, _Poll(due, poll.index, interval, snapshot))
                return None
        return FetchOutcome(poll.index, ref, snapshot=snapshot)


def _close_unemitted(
    pending: dict[concurrent.futures.Future[JobSnapshot], _Poll],
    finished: dict[int, FetchOutcome],
    polls: list[_Poll],
) -> None:
    """Release the spools of everything fetched but not handed out (the run is ending)."""
    for future in pending:
        if future.done() and not future.cancelled() and future.exception() is None:
            future.result().close()
    for outcome in finished.values():
        outcome.close()
    for poll in [*polls, *pending.values()]:
        if poll.previous is not None:
            poll.previous.close()
