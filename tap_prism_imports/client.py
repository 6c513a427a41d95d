"""HTTP client behaviour for the Prism Imports API.

One GET per job feeds both streams, so requests are the scarce resource: they are
paced client-side (the API allows 10 per second), overlapped up to that pace,
retried with backoff on transient failures, and never repeated for a job whose
final snapshot the tap already has.
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import heapq
import ipaddress
import math
import os
import random
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus

import backoff
import ijson
import requests
import urllib3.exceptions
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import ConfigValidationError, FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream
from typing_extensions import override

from tap_prism_imports import __version__
from tap_prism_imports.snapshots import InvalidSnapshotError, JobSnapshot, parse_snapshot, utc_now

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable, Iterator

    from backoff.types import Details

    from tap_prism_imports.job_refs import JobRef

DEFAULT_API_URL = "https://developers.micro.so"
API_KEY_ENV = "MICRO_API_KEY"
API_URL_ENV = "MICRO_BASE_URL"

# As the official SDK: Retry-After is obeyed up to 60 s; otherwise exponential
# backoff from 0.5 s to 8 s with jitter; 5 s to connect.
MAX_RETRY_AFTER_SECONDS = 60.0
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_TRIES = 5
# One job may not hold the run longer than this in retries.
MAX_RETRY_SECONDS_PER_JOB = 180.0
RETRIABLE_STATUSES = frozenset({408, 409, 429})


class JobNotFoundError(Exception):
    """404: the job is unknown, or expired (the API keeps jobs 7 days)."""


class JobFetchError(Exception):
    """A job could not be read this run; the others go on."""


class RequestBudgetExhaustedError(Exception):
    """``max_requests_per_run`` is spent; the job was not requested."""


class RetryAfterTooLongError(JobFetchError):
    """The API asked for a longer pause than the tap will wait within a run."""


class ThrottledError(RetriableAPIError):
    """429 with the pause the API asked for."""

    def __init__(self, message: str, response: requests.Response, retry_after: float) -> None:
        super().__init__(message, response)
        self.retry_after = retry_after


class BodyTransferError(RetriableAPIError):
    """The body was cut off in transit (connection dropped or truncated)."""


def parse_retry_after(headers: t.Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait per ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date)."""
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class RunStoppedError(Exception):
    """The run is ending (a fatal error elsewhere): no further request is sent."""


class RequestPacer:
    """Spaces all requests at least ``1 / rate`` seconds apart, and pauses them all on a 429."""

    def __init__(self, requests_per_second: float) -> None:
        self._interval = 1.0 / requests_per_second
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._stopped = threading.Event()

    def wait_turn(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + self._interval
            if self._stopped.wait(max(0.0, slot - time.monotonic())):
                raise RunStoppedError
            with self._lock:
                if time.monotonic() >= self._paused_until:
                    return

    def stop(self) -> None:
        """Refuse every request from now on (requests already sent finish)."""
        self._stopped.set()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class RequestBudget:
    """Counts every request made in the run against an optional limit."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def spend(self) -> None:
        with self._lock:
            if self.limit is not None and self.spent >= self.limit:
                raise RequestBudgetExhaustedError
            self.spent += 1


def resolve_api_url(config: t.Mapping[str, t.Any], logger: logging.Logger) -> str:
    """The base URL from ``api_url``, else ``MICRO_BASE_URL``, else the provider's default."""
    api_url = config.get("api_url") or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
    parts = urllib.parse.urlsplit(api_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = (
            f"`api_url` {api_url!r} is not an http(s) URL; "
            f"use e.g. {DEFAULT_API_URL} (or set {API_URL_ENV})."
        )
        raise ConfigValidationError(msg, errors=[msg])
    if parts.query or parts.fragment or parts.username or parts.password:
        msg = f"`api_url` {api_url!r} must be a plain base URL: no credentials, query or fragment."
        raise ConfigValidationError(msg, errors=[msg])
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        logger.warning(
            "`api_url` %s is plain http to a non-loopback host: the API key would travel "
            "in clear text. Use https.",
            api_url,
        )
    return api_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(config: t.Mapping[str, t.Any]) -> str:
    api_key = config.get("api_key") or os.environ.get(API_KEY_ENV)
    if not api_key:
        msg = f"No API key: set the `api_key` setting or the {API_KEY_ENV} environment variable."
        raise ConfigValidationError(msg, errors=[msg])
    return str(api_key)


class PrismStream(RESTStream[t.Any]):
    """Base for streams that read job snapshots from the Prism Imports API."""

    @property
    @override
    def url_base(self) -> str:
        return self._api_url

    @property
    @override
    def authenticator(self) -> APIKeyAuthenticator:
        return APIKeyAuthenticator(key="x-api-key", value=resolve_api_key(self.config))

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"User-Agent": f"tap-prism-imports/{__version__}", "Accept": "application/json"}

    @override
    def validate_response(self, response: requests.Response) -> None:
        # The SDK's default treats every 4xx as fatal and ignores Retry-After.
        status = response.status_code
        if status == HTTPStatus.OK:
            return
        should_retry = response.headers.get("x-should-retry", "").lower()
        reason = f"{status} {self._api_message(response)}"
        if status == HTTPStatus.UNAUTHORIZED:
            msg = (
                f"The API refused the request ({reason}): no API key reached it. "
                f"Set the `api_key` setting or {API_KEY_ENV}."
            )
            raise FatalAPIError(msg)
        if status == HTTPStatus.FORBIDDEN:
            team = _team_in_path(response.url)
            msg = (
                f"The API refused the request ({reason}): the key in `api_key` is invalid "
                f"or revoked, or has no access to team {team}. Check `api_key`, and the "
                "team in `team_id` or the job refs."
            )
            raise FatalAPIError(msg)
        if HTTPStatus.MULTIPLE_CHOICES <= status < HTTPStatus.BAD_REQUEST:
            # Redirects are not followed: the key would go to wherever they point.
            msg = (
                f"The API answered {status} redirecting to {response.headers.get('Location')!r}: "
                f"set `api_url` to the API's own base URL (such as {DEFAULT_API_URL})."
            )
            raise FatalAPIError(msg)
        if status == HTTPStatus.NOT_FOUND:
            raise JobNotFoundError(reason)
        if should_retry == "false":
            raise JobFetchError(reason)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            retry_after = parse_retry_after(response.headers)
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
                # Limits are per key: every other request would be refused too.
                self._pacer.stop()
                msg = (
                    f"{reason}: the API asked to wait {retry_after:.0f} s (Retry-After), more "
                    f"than the {MAX_RETRY_AFTER_SECONDS:.0f} s the tap waits; the key's rate "
                    "or monthly quota may be spent. No more requests this run; run again later."
                )
                raise RetryAfterTooLongError(msg)
            if retry_after:
                self._pacer.pause(retry_after)
                raise ThrottledError(reason, response, retry_after)
            # No pause given (or 0, as the official SDK reads it): exponential backoff.
            raise RetriableAPIError(reason, response)
        if status in RETRIABLE_STATUSES or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            raise RetriableAPIError(reason, response)
        if should_retry == "true":
            raise RetriableAPIError(reason, response)
        raise JobFetchError(reason)

    @staticmethod
    def _api_message(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.reason or ""
        message = body.get("message") if isinstance(body, dict) else None
        return str(message)[:500] if message else (response.reason or "")

    @override
    def backoff_wait_generator(self) -> t.Generator[float, t.Any, None]:
        # The API's Retry-After is a floor, so jitter is applied here and only to
        # the exponential waits (hence the identity backoff_jitter below).
        exception = yield 0.0
        attempt = 0
        while True:
            retry_after = getattr(exception, "retry_after", None)
            if retry_after is not None:
                wait = float(retry_after)
            else:
                delay = min(INITIAL_RETRY_DELAY * 2.0**attempt, MAX_RETRY_DELAY)
                wait = delay * (1 - 0.25 * random.random())  # noqa: S311
            attempt += 1
            exception = yield wait

    @override
    def backoff_jitter(self, value: float) -> float:
        return value

    @override
    def backoff_max_tries(self) -> int:
        return MAX_TRIES

    @override
    def backoff_handler(self, details: Details) -> None:
        # The SDK's handler logs the call's arguments; ours names the job and the cause.
        ref = details["args"][0] if details["args"] else None
        self.logger.warning(
            "Job %s: retrying in %.1f s after try %d failed: %s",
            getattr(ref, "key", "?"),
            details.get("wait", 0.0),
            details["tries"],
            details.get("exception"),
        )

    @override
    def request_decorator(self, func: Callable[..., t.Any]) -> Callable[..., t.Any]:
        # The SDK's decorator has no total time bound; one job must not stall the run.
        return backoff.on_exception(
            self.backoff_wait_generator,
            (
                RetriableAPIError,
                requests.exceptions.Timeout,
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
            ),
            max_tries=self.backoff_max_tries,
            max_time=MAX_RETRY_SECONDS_PER_JOB,
            on_backoff=self.backoff_handler,
            jitter=self.backoff_jitter,
            logger=None,
        )(func)

    def setup_client(self, budget: RequestBudget) -> None:
        """Prepare shared client state once, before worker threads use it."""
        self._api_url = resolve_api_url(self.config, self.logger)
        self._api_key_authenticator = self.authenticator
        self._pacer = RequestPacer(float(self.config.get("requests_per_second", 10)))
        self._budget = budget
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.worker_count)
        self.requests_session.mount("https://", adapter)
        self.requests_session.mount("http://", adapter)
        self._fetch_with_retries = self.request_decorator(self._get_snapshot)

    def stop_requests(self) -> None:
        self._pacer.stop()

    @property
    def worker_count(self) -> int:
        """Requests in flight at once: enough to keep the pace despite latency."""
        rate = float(self.config.get("requests_per_second", 10))
        return max(4, min(32, math.ceil(rate)))

    def fetch_snapshot(self, ref: JobRef) -> JobSnapshot:
        """GET one job's snapshot, with retries; raises the job's error when it cannot."""
        try:
            return t.cast("JobSnapshot", self._fetch_with_retries(ref))
        except (RetriableAPIError, requests.exceptions.RequestException) as error:
            msg = f"gave up after {MAX_TRIES} tries or {MAX_RETRY_SECONDS_PER_JOB:.0f} s: {error}"
            raise JobFetchError(msg) from error

    def _get_snapshot(self, ref: JobRef) -> JobSnapshot:
        self._pacer.wait_turn()
        self._budget.spend()
        request = self.requests_session.prepare_request(
            requests.Request("GET", self.url_base + ref.path, headers=self.http_headers)
        )
        request = self._api_key_authenticator(request)
        timeout = self.config.get("request_timeout_seconds", 60)
        fetched_at = utc_now()
        started = time.perf_counter()
        with self.requests_session.send(
            request,
            stream=True,
            timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), timeout),
            allow_redirects=False,
        ) as response:
            self.logger.debug(
                "GET %s -> %s in %.3f s",
                ref.path,
                response.status_code,
                time.perf_counter() - started,
            )
            self.validate_response(response)
            response.raw.decode_content = True
            try:
                return parse_snapshot(t.cast("t.BinaryIO", response.raw), ref, fetched_at)
            except (
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.DecodeError,
            ) as error:
                msg = f"body cut off in transit: {error}"
                raise BodyTransferError(msg, response) from error
            except ijson.JSONError as error:
                # A body that ended early (connection closed, no length) is the network's;
                # any other parse error is in what the API sent, and would be again.
                if _ended_early(error):
                    msg = f"body cut off in transit: {_first_line(error)}"
                    raise BodyTransferError(msg, response) from error
                msg = f"the body is not valid JSON: {_first_line(error)}"
                raise InvalidSnapshotError(msg) from error


def _team_in_path(url: str) -> str:
    segments = urllib.parse.urlsplit(url).path.split("/")
    return urllib.parse.unquote(segments[3]) if len(segments) > 3 else "?"  # noqa: PLR2004


def _ended_early(error: ijson.JSONError) -> bool:
    # yajl2_c says "premature EOF"; ijson's pure-Python backends "Incomplete or empty".
    text = str(error)
    return "premature EOF" in text or "Incomplete or empty" in text


def _first_line(error: Exception) -> str:
    return str(error).split("\n", 1)[0]


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


class SnapshotPipeline:
    """Fetches jobs concurrently at the paced rate and hands them out in ref order.

    Up to ``window`` jobs are fetched ahead of the one being emitted. With a wait
    policy, processing jobs are polled again on their schedule until they finish
    or the run's deadline passes; a job whose snapshot is still processing then is
    handed out as it last was.
    """

    def __init__(
        self,
        fetch: Callable[[JobRef], JobSnapshot],
        *,
        workers: int,
        wait: WaitPolicy | None,
        stop_requests: Callable[[], None],
    ) -> None:
        self._fetch = fetch
        self._stop_requests = stop_requests
        self._requests_refused = False
        self._workers = workers
        self._wait = wait

    def run(self, refs: Iterable[JobRef]) -> Iterator[FetchOutcome]:
        jobs = list(refs)
        window = len(jobs) if self._wait else self._workers * 4
        pool = concurrent.futures.ThreadPoolExecutor(self._workers, "prism-fetch")
        pending: dict[concurrent.futures.Future[JobSnapshot], _Poll] = {}
        finished: dict[int, FetchOutcome] = {}
        polls: list[_Poll] = []
        next_submit = next_yield = 0

        def submit(poll: _Poll) -> None:
            pending[pool.submit(self._fetch, jobs[poll.index])] = poll

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
                    yield finished.pop(next_yield)
                    next_yield += 1
                    continue
                timeout = max(0.0, polls[0].due - now) if polls else None
                done, _ = concurrent.futures.wait(
                    pending, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    poll = pending.pop(future)
                    outcome = self._settle(future, poll, jobs[poll.index], polls)
                    if outcome is not None:
                        finished[poll.index] = outcome
                if self._requests_refused:
                    finished.update(self._give_up_polls(polls, jobs))
        finally:
            self._stop_requests()
            pool.shutdown(wait=True, cancel_futures=True)
            _close_unemitted(pending, finished, polls)

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
        if isinstance(error, FatalAPIError) or (
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
