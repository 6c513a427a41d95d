"""HTTP client behaviour for the Prism Imports API.

One GET per job feeds both streams, so requests are the scarce resource: they are
paced client-side (the API allows 10 per second), overlapped up to that pace,
retried with backoff on transient failures, and never repeated for a job whose
final snapshot the tap already has.
"""

from __future__ import annotations

import email.utils
import enum
import functools
import math
import random
import threading
import time
import typing as t
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus

import backoff
import ijson
import requests
import urllib3.exceptions
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream
from typing_extensions import override

from tap_prism_imports import __version__
from tap_prism_imports.errors import (
    STOPPED_BY_API_LIMIT,
    STOPPED_UNREACHABLE,
    ApiUnreachableError,
    InvalidSnapshotError,
    JobFetchError,
    JobNotFoundError,
)
from tap_prism_imports.pacing import RequestBudget, RequestPacer
from tap_prism_imports.settings import (
    API_KEY_ENV,
    DEFAULT_API_URL,
    SyncSettings,
    check_sync_settings,
)
from tap_prism_imports.snapshots import JobSnapshot, parse_snapshot
from tap_prism_imports.times import utc_now

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from backoff.types import Details

    from tap_prism_imports.job_refs import JobRef

# As the official SDK: Retry-After is obeyed up to 60 s; otherwise exponential
# backoff from 0.5 s to 8 s with jitter; 5 s to connect.
MAX_RETRY_AFTER_SECONDS = 60.0
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
CONNECT_TIMEOUT_SECONDS = 5.0
# A body that stops arriving for this long is abandoned, whatever the whole request may take.
STALL_TIMEOUT_SECONDS = 30.0
MAX_TRIES = 5
# One job may not hold the run longer than this in retries.
MAX_RETRY_SECONDS_PER_JOB = 180.0
RETRIABLE_STATUSES = frozenset({408, 409, 429})


class RetryAfterTooLongError(JobFetchError):
    """The API asked for a longer pause than the tap will wait within a run."""


class ThrottledError(RetriableAPIError):
    """429 with the pause the API asked for."""

    def __init__(self, message: str, response: requests.Response, retry_after: float) -> None:
        super().__init__(message, response)
        self.retry_after = retry_after


class BodyTransferError(RetriableAPIError):
    """The body was cut off in transit (connection dropped or truncated)."""


class RequestDeadlineError(requests.exceptions.Timeout):
    """The whole request, connect to last byte, took longer than ``request_timeout_seconds``."""


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
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


class Verdict(enum.Enum):
    """What an answer means for the request that got it."""

    OK = "ok"
    MISSING_KEY = "missing_key"  # 401: the run stops
    FORBIDDEN = "forbidden"  # 403: the run stops
    REDIRECT = "redirect"  # 3xx: never followed (the key would go along); the run stops
    NOT_FOUND = "not_found"  # 404: the job is gone or unknown
    RETRY = "retry"  # transient: back off exponentially and try again
    THROTTLED = "throttled"  # 429 with a pause to honour before every next request
    QUOTA_SPENT = "quota_spent"  # 429 asking for a longer pause than a run waits
    NOT_RETRIED = "not_retried"  # the job fails this run; the others go on


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    #: The pause the API asked for (Retry-After), in seconds, when it matters.
    wait: float = 0.0


def classify_response(  # noqa: PLR0911 - one return per verdict
    status: int, headers: Mapping[str, str], now: float | None = None
) -> Classification:
    """Classify an answer by its status and headers, as the official SDK would retry it.

    ``headers`` should be case-insensitive, as ``requests`` gives them.
    """
    fixed = {
        HTTPStatus.OK: Verdict.OK,
        HTTPStatus.UNAUTHORIZED: Verdict.MISSING_KEY,
        HTTPStatus.FORBIDDEN: Verdict.FORBIDDEN,
        HTTPStatus.NOT_FOUND: Verdict.NOT_FOUND,
    }
    if status in fixed:
        return Classification(fixed[HTTPStatus(status)])
    if HTTPStatus.MULTIPLE_CHOICES <= status < HTTPStatus.BAD_REQUEST:
        return Classification(Verdict.REDIRECT)
    should_retry = headers.get("x-should-retry", "").lower()
    if should_retry == "false":
        return Classification(Verdict.NOT_RETRIED)
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        retry_after = parse_retry_after(headers, now)
        if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
            return Classification(Verdict.QUOTA_SPENT, retry_after)
        if retry_after:
            return Classification(Verdict.THROTTLED, retry_after)
        # No pause given (or 0, as the official SDK reads it): exponential backoff.
        return Classification(Verdict.RETRY)
    if status in RETRIABLE_STATUSES or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return Classification(Verdict.RETRY)
    if should_retry == "true":
        return Classification(Verdict.RETRY)
    return Classification(Verdict.NOT_RETRIED)


class PrismStream(RESTStream[t.Any]):
    """Base for streams that read job snapshots from the Prism Imports API."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.worker_count)
        self.requests_session.mount("https://", adapter)
        self.requests_session.mount("http://", adapter)

    @functools.cached_property
    def sync_settings(self) -> SyncSettings:
        """The settings of a sync, checked once (the tap asks before the sync starts)."""
        return check_sync_settings(self.config, self.logger)

    @property
    def api_url(self) -> str:
        return self.sync_settings.connection.api_url

    @property
    @override
    def url_base(self) -> str:
        return self.api_url

    @functools.cached_property
    @override
    def authenticator(self) -> APIKeyAuthenticator:
        return APIKeyAuthenticator(key="x-api-key", value=self.sync_settings.connection.api_key)

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"User-Agent": f"tap-prism-imports/{__version__}", "Accept": "application/json"}

    @functools.cached_property
    def pacer(self) -> RequestPacer:
        """Paces every request of the run (one stream instance per run)."""
        return RequestPacer(float(self.config.get("requests_per_second", 10)))

    @functools.cached_property
    def request_budget(self) -> RequestBudget:
        """Counts every request of the run against ``max_requests_per_run``."""
        return RequestBudget(self.config.get("max_requests_per_run"))

    @property
    def worker_count(self) -> int:
        """Requests in flight at once: enough to keep the pace despite latency."""
        rate = float(self.config.get("requests_per_second", 10))
        return max(4, min(32, math.ceil(rate)))

    @override
    def validate_response(self, response: requests.Response) -> None:
        # The SDK's default treats every 4xx as fatal and ignores Retry-After.
        classification = classify_response(response.status_code, response.headers)
        verdict, wait = classification.verdict, classification.wait
        if verdict is Verdict.OK:
            return
        reason = f"{response.status_code} {self._api_message(response)}"
        if verdict is Verdict.MISSING_KEY:
            msg = (
                f"The API refused the request ({reason}): no API key reached it. "
                f"Set the `api_key` setting or {API_KEY_ENV}."
            )
            raise FatalAPIError(msg)
        if verdict is Verdict.FORBIDDEN:
            msg = (
                f"The API refused the request ({reason}): the key in `api_key` is invalid "
                f"or revoked, or has no access to team {_team_in_path(response.url)}. "
                "Check `api_key`, and the team in `team_id` or the job refs."
            )
            raise FatalAPIError(msg)
        if verdict is Verdict.REDIRECT:
            msg = (
                f"The API answered {response.status_code} redirecting to "
                f"{response.headers.get('Location')!r}: set `api_url` to the API's own base "
                f"URL (such as {DEFAULT_API_URL})."
            )
            raise FatalAPIError(msg)
        if verdict is Verdict.NOT_FOUND:
            raise JobNotFoundError(reason, url=response.url)
        if verdict is Verdict.QUOTA_SPENT:
            # Limits are per key: every other request would be refused too.
            self.pacer.stop(STOPPED_BY_API_LIMIT)
            msg = (
                f"{reason}: the API asked to wait {wait:.0f} s (Retry-After), more "
                f"than the {MAX_RETRY_AFTER_SECONDS:.0f} s the tap waits; the key's rate "
                "or monthly quota may be spent. No more requests this run; run again later."
            )
            raise RetryAfterTooLongError(msg)
        if verdict is Verdict.THROTTLED:
            self.pacer.pause(wait)
            raise ThrottledError(reason, response, wait)
        if verdict is Verdict.RETRY:
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
        error = details.get("exception")
        cause = (
            f"{self.api_url}: {_root_cause(error)}"
            if isinstance(error, requests.exceptions.ConnectionError)
            else error
        )
        self.logger.warning(
            "Job %s: retrying in %.1f s after try %d failed: %s",
            getattr(ref, "key", "?"),
            details.get("wait", 0.0),
            details["tries"],
            cause,
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

    def fetch_snapshot(self, ref: JobRef) -> JobSnapshot:
        """GET one job's snapshot, with retries; raises the job's error when it cannot."""
        try:
            return t.cast("JobSnapshot", self.request_decorator(self._get_snapshot)(ref))
        except requests.exceptions.ConnectionError as error:
            if _connection_refused_or_unresolved(error):
                # Every other job would fail the same way: stop, as a spent quota does.
                self.pacer.stop(STOPPED_UNREACHABLE)
                msg = (
                    f"Cannot connect to the API at `api_url` {self.api_url} ({MAX_TRIES} tries): "
                    f"{_root_cause(error)}. No more requests this run; check `api_url` and "
                    "the network."
                )
                raise ApiUnreachableError(msg) from error
            raise self._gave_up(error) from error
        except (RetriableAPIError, requests.exceptions.RequestException) as error:
            raise self._gave_up(error) from error

    @staticmethod
    def _gave_up(error: Exception) -> JobFetchError:
        return JobFetchError(
            f"gave up after {MAX_TRIES} tries or {MAX_RETRY_SECONDS_PER_JOB:.0f} s: {error}"
        )

    def _get_snapshot(self, ref: JobRef) -> JobSnapshot:
        self.pacer.wait_turn()
        self.request_budget.spend()
        request = self.requests_session.prepare_request(
            requests.Request("GET", self.url_base + ref.path, headers=self.http_headers)
        )
        request = self.authenticator(request)
        timeout = float(self.config["request_timeout_seconds"])
        fetched_at = utc_now()
        started = time.monotonic()
        with self.requests_session.send(
            request,
            stream=True,
            timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), min(STALL_TIMEOUT_SECONDS, timeout)),
            allow_redirects=False,
        ) as response:
            self.request_budget.note_answer()
            self.logger.debug(
                "GET %s -> %s in %.3f s",
                ref.path,
                response.status_code,
                time.monotonic() - started,
            )
            self.validate_response(response)
            response.raw.decode_content = True
            # The socket timeout bounds each read; this bounds the request as a whole.
            overdue = threading.Event()

            def end_the_request() -> None:
                overdue.set()  # before the shutdown, which the reading thread sees at once
                response.raw.shutdown()

            deadline = threading.Timer(
                max(0.0, started + timeout - time.monotonic()), end_the_request
            )
            deadline.daemon = True
            deadline.start()
            try:
                return parse_snapshot(t.cast("t.BinaryIO", response.raw), ref, fetched_at)
            except (
                urllib3.exceptions.ProtocolError,
                urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.DecodeError,
                ijson.JSONError,
            ) as error:
                if overdue.is_set():
                    msg = f"the request took longer than `request_timeout_seconds` ({timeout:g} s)"
                    raise RequestDeadlineError(msg) from error
                if isinstance(error, ijson.JSONError) and (
                    not _ended_early(error) or _arrived_whole(response)
                ):
                    # Broken before its end, or ended where the transport says it ends:
                    # the API sent it so, and would again.
                    msg = f"the body is not valid JSON: {_first_line(error)}"
                    raise InvalidSnapshotError(msg) from error
                msg = f"body cut off in transit: {_first_line(error)}"
                raise BodyTransferError(msg, response) from error
            finally:
                deadline.cancel()


def _team_in_path(url: str) -> str:
    segments = urllib.parse.urlsplit(url).path.split("/")
    return urllib.parse.unquote(segments[3]) if len(segments) > 3 else "?"  # noqa: PLR2004


def _ended_early(error: ijson.JSONError) -> bool:
    # yajl2_c says "premature EOF"; ijson's pure-Python backends "Incomplete or empty".
    text = str(error)
    return "premature EOF" in text or "Incomplete or empty" in text


def _arrived_whole(response: requests.Response) -> bool:
    """Whether the transport vouches the body ended where the API meant it to.

    A chunked body ends with its terminating chunk (urllib3 raises on a stream cut
    before it), a sized one after Content-Length bytes; a body delimited only by the
    connection closing could have been cut anywhere.
    """
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        return True
    length = response.headers.get("Content-Length", "")
    return length.isdigit() and response.raw.tell() >= int(length)


def _connection_refused_or_unresolved(error: requests.exceptions.ConnectionError) -> bool:
    """A failure to connect at all (refused, DNS, TLS, connect timeout), not a drop mid-way."""
    # NameResolutionError is a NewConnectionError too.
    return isinstance(
        error, (requests.exceptions.SSLError, requests.exceptions.ConnectTimeout)
    ) or isinstance(_pool_reason(error), urllib3.exceptions.NewConnectionError)


def _root_cause(error: requests.exceptions.ConnectionError) -> str:
    """The reason without urllib3's pool and URL wrapping (``[Errno 111] Connection refused``)."""
    reason = _pool_reason(error)
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        # urllib3 puts the connection's repr and "Failed to establish..." before the reason.
        return str(reason).rsplit(": ", 1)[-1]
    return str(reason or error)


def _pool_reason(error: requests.exceptions.ConnectionError) -> BaseException | None:
    wrapped = error.args[0] if error.args else None
    return wrapped.reason if isinstance(wrapped, urllib3.exceptions.MaxRetryError) else None


def _first_line(error: Exception) -> str:
    return str(error).split("\n", 1)[0]
