"""What the tap remembers between runs about each job, and when it says so.

The ledger lives in the ``import_jobs`` stream state under ``jobs``:
``{"TEAM_ID/JOB_ID": {"status": ..., "requested_at": ..., "expires_at": ...}}``.
An entry changes only after everything fetched for that job has been emitted,
so a STATE message never claims more than the records before it.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import io
import json
import time
import typing as t

from singer_sdk.exceptions import ConfigValidationError

from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.records.import_jobs import JOB_STATUSES, TERMINAL_STATUSES
from tap_prism_imports.times import format_datetime, normalize_datetime, parse_datetime

if t.TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from tap_prism_imports.snapshots import JobSnapshot

STATE_FORMAT_VERSION = 1
# The import log's part of the state; format 1 is converted when read.
IMPORT_LOG_FORMAT_VERSION = 2
IMPORT_LOG_FORMATS_READ = frozenset({1, IMPORT_LOG_FORMAT_VERSION})
NOT_FOUND = "not_found"
KNOWN_STATUSES = frozenset({*JOB_STATUSES, NOT_FOUND})
# The API keeps async jobs 7 days; an entry past that can only ever answer 404.
RETENTION = datetime.timedelta(days=7)
# A job that answered 404 but cannot be known gone (it is under 7 days old, or every
# job asked about answered 404) is asked again after these delays: at most this
# handful of requests in all at one api_url, then no more.
MISS_RETRY_DELAYS = (
    datetime.timedelta(hours=1),
    datetime.timedelta(hours=6),
    datetime.timedelta(hours=24),
)
MAX_MISSES = len(MISS_RETRY_DELAYS) + 1
STREAM = "import_jobs"
MAX_ERRORS_SHOWN = 10
# How errors name a state that came as a dict, not a file.
STATE_GIVEN = "the state"
_RUN_WITHOUT_STATE = (
    "Run without state (every configured job is requested again; rows already loaded "
    "are upserted, not duplicated)"
)


class Plan(enum.Enum):
    """What a run does about one job, by what the ledger knows of it."""

    REQUEST = "request"
    FINAL = "final"  # captured complete or failed: no request
    EXPIRED = "expired"  # past the API's 7 days: it can only answer 404
    GONE = "gone"  # answered 404 at this api_url, and may have expired
    WAITING = "waiting"  # answered 404 though it should exist: asked again later, or not


class StateValidationError(ConfigValidationError):
    """The state given to the tap cannot be read; raised before any request."""

    def __init__(self, source: str, problems: list[str], *, whole: bool = False) -> None:
        shown = problems[:MAX_ERRORS_SHOWN]
        if len(problems) > MAX_ERRORS_SHOWN:
            shown.append(f"... and {len(problems) - MAX_ERRORS_SHOWN} more")
        fix = "or fix the file" if whole else "or fix or remove that key"
        errors = [*(f"{source}: {problem}" for problem in shown), f"{_RUN_WITHOUT_STATE}, {fix}."]
        super().__init__(" ".join(errors), errors=errors)


def read_state_file(file: t.IO[str]) -> io.StringIO:
    """Check a ``--state`` file before the SDK parses it; the same text, ready to read.

    Errors name the file: the SDK's own message for a broken file names neither the
    file nor what to do.
    """
    source = f"state file {getattr(file, 'name', '?')!r}"
    try:
        text = file.read()
    except UnicodeDecodeError as error:
        problem = f"is not UTF-8 text ({error})."
        raise StateValidationError(source, [problem], whole=True) from error
    # A BOM (Windows editors) is no JSON; the SDK would refuse it.
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise StateValidationError(source, ["is empty; a state is a JSON object."], whole=True)
    try:
        state = json.loads(text, parse_float=decimal.Decimal)
    except json.JSONDecodeError as error:
        problem = f"is not JSON: {error.msg} at line {error.lineno} column {error.colno}."
        raise StateValidationError(source, [problem], whole=True) from error
    validate_state(state, source)
    return io.StringIO(text)


def validate_state(state: object, source: str = STATE_GIVEN) -> None:
    """Raise ``StateValidationError`` naming each key the tap (or the SDK) cannot read.

    Entries that are objects but lack a known status or a readable date are not
    errors: the job is then requested, as if new.
    """
    if not isinstance(state, dict):
        problem = f"is {_kind(state)}, not a JSON object."
        raise StateValidationError(source, [problem], whole=True)
    problems: list[str] = []
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        problems.append(f"bookmarks is {_kind(bookmarks)}, not an object.")
        raise StateValidationError(source, problems)
    # The SDK reads every stream's bookmark as an object.
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, dict):
            where = _key_path("bookmarks", stream)
            problems.append(f"{where} is {_kind(stream_state)}, not an object.")
    jobs_state = bookmarks.get(STREAM)
    if isinstance(jobs_state, dict):
        problems += _ledger_problems(jobs_state, _key_path("bookmarks", STREAM))
    if problems:
        raise StateValidationError(source, problems)


def _ledger_problems(stream_state: dict[str, t.Any], where: str) -> list[str]:
    problems: list[str] = []
    version = stream_state.get("jobs_format", STATE_FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        problems.append(
            f"{where}.jobs_format is {_kind(version)} {_shown(version)}, not an integer "
            f"(this version of tap-prism-imports writes {STATE_FORMAT_VERSION})."
        )
    elif version != STATE_FORMAT_VERSION:
        problems.append(
            f"{where}.jobs_format {version!r} was written by another version of "
            f"tap-prism-imports (this one reads {STATE_FORMAT_VERSION}); "
            "upgrade the tap or run without state."
        )
    problems += import_log_problems(stream_state.get("import_log", {}), f"{where}.import_log")
    jobs = stream_state.get("jobs", {})
    if not isinstance(jobs, dict):
        problems.append(f"{where}.jobs is {_kind(jobs)}, not an object of job entries.")
        return problems
    problems += [
        f"{_key_path(where + '.jobs', key)} is {_kind(entry)}, not an object."
        for key, entry in jobs.items()
        if not isinstance(entry, dict)
    ]
    return problems


def import_log_problems(import_log: object, where: str) -> list[str]:
    """What makes the import log's part of the state unreadable (the reader converts
    format 1; it keeps its own entries, and ignores one it cannot use)."""
    if not isinstance(import_log, dict):
        return [f"{where} is {_kind(import_log)}, not an object."]
    version = import_log.get("format", IMPORT_LOG_FORMAT_VERSION)
    if version not in IMPORT_LOG_FORMATS_READ or isinstance(version, bool):
        problem = (
            f"{where}.format {version!r} was written by another version of "
            f"tap-prism-imports (this one reads {IMPORT_LOG_FORMAT_VERSION}); "
            "upgrade the tap or run without state."
        )
        return [problem]
    problems = [
        f"{where}.{name} is {_kind(import_log[name])}, not an object."
        for name in ("files", "recent", "emitted")
        if name in import_log and not isinstance(import_log[name], dict)
    ]
    recent = import_log.get("recent")
    if isinstance(recent, dict):
        # When each import was submitted: compared with the replay window at the run's end.
        problems += [
            f"{_key_path(f'{where}.recent', key)} is {_kind(value)} {_shown(value)}, "
            "not a whole number of seconds since 1970."
            for key, value in recent.items()
            if isinstance(value, bool) or not isinstance(value, int)
        ]
    return problems


def _key_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if key.isidentifier() else f"{parent}[{json.dumps(key)}]"


def _kind(value: object) -> str:
    kinds = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        decimal.Decimal: "a number",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."  # noqa: PLR2004


class JobLedger:
    """Per-job progress, kept inside the SDK's state dict and updated in place."""

    def __init__(self, stream_state: dict[str, t.Any]) -> None:
        # Also checked here: state can reach the stream without validate_state.
        problems = _ledger_problems(stream_state, _key_path("bookmarks", STREAM))
        if problems:
            raise StateValidationError(STATE_GIVEN, problems)
        stream_state["jobs_format"] = STATE_FORMAT_VERSION
        self._jobs: dict[str, dict[str, t.Any]] = stream_state.setdefault("jobs", {})

    def __len__(self) -> int:
        return len(self._jobs)

    def status(self, ref: JobRef) -> str | None:
        """The last status seen, or ``None`` if none known (an unknown value counts as none)."""
        entry = self._jobs.get(ref.key)
        status = None if entry is None else entry.get("status")
        return status if _is_known_status(status) else None

    def requested_at(self, ref: JobRef) -> str:
        """When the job was last requested ('' if never or unreadable), for oldest-first."""
        entry = self._jobs.get(ref.key)
        return (entry is not None and normalize_datetime(entry.get("requested_at"))) or ""

    def plan(  # noqa: PLR0911 - one return per plan
        self, ref: JobRef, now: datetime.datetime, *, api_url: str, refresh_terminal: bool
    ) -> Plan:
        """What this run does about the job: request it, or why not."""
        entry = self._jobs.get(ref.key)
        if entry is None:
            return Plan.REQUEST
        status = entry.get("status")
        if status == NOT_FOUND and _has_a_date(entry):
            if entry.get("api_url") == api_url:
                return Plan.GONE
            # Asked for at another URL: asked once more, unless it has expired since,
            # whatever that 404 meant (a job that existed then is gone 7 days later).
            return Plan.EXPIRED if _past_retention(entry, now) else Plan.REQUEST
        if _past_retention(entry, now):
            return Plan.EXPIRED
        misses = _misses_at(entry, api_url)
        if misses is not None:
            count, last_at = misses
            if count >= MAX_MISSES or now < last_at + MISS_RETRY_DELAYS[count - 1]:
                return Plan.WAITING
            return Plan.REQUEST
        if not is_complete_entry(entry):
            return Plan.REQUEST
        if entry["status"] in TERMINAL_STATUSES and not refresh_terminal:
            return Plan.FINAL
        return Plan.REQUEST

    def retained_until(self, ref: JobRef, now: datetime.datetime) -> datetime.datetime | None:
        """When the API will forget the job, if that is known and still to come.

        Known from a snapshot's ``expires_at``, or from when the import log says the
        job was submitted: such a job cannot have expired yet, so a 404 for it means
        the URL or the team is wrong, never that it is gone.
        """
        entry = self._jobs.get(ref.key)
        if entry is None:
            return None
        moments = []
        if (expires_at := normalize_datetime(entry.get("expires_at"))) is not None:
            moments.append(parse_datetime(expires_at))
        logged = entry.get("log")
        submitted_at = (
            normalize_datetime(logged.get("submitted_at")) if isinstance(logged, dict) else None
        )
        if submitted_at is not None and (until := _retained_until(submitted_at)) is not None:
            moments.append(parse_datetime(until))
        future = [moment for moment in moments if moment > now]
        return max(future) if future else None

    def misses(self, ref: JobRef, api_url: str) -> int:
        """How many 404s the job answered at ``api_url`` without being marked gone."""
        entry = self._jobs.get(ref.key)
        misses = None if entry is None else _misses_at(entry, api_url)
        return 0 if misses is None else misses[0]

    def record_snapshot(self, snapshot: JobSnapshot) -> None:
        record = snapshot.record
        expires_at = record["expires_at"]
        if expires_at is None and record["created_at"] is not None:
            expires_at = _retained_until(record["created_at"])
        self._set(
            snapshot.ref,
            status=record["status"],
            requested_at=record["fetched_at"],
            expires_at=expires_at,
        )

    def record_gone(self, ref: JobRef, requested_at: datetime.datetime, api_url: str) -> None:
        """The job answered 404 and may have expired: not requested again at ``api_url``."""
        self._set(
            ref,
            status=NOT_FOUND,
            requested_at=format_datetime(requested_at),
            expires_at=None,
            api_url=api_url,
        )

    def record_miss(self, ref: JobRef, requested_at: datetime.datetime, api_url: str) -> int:
        """A 404 that does not mark the job gone; returns the misses so far at ``api_url``.

        The job keeps what was known of it and is asked again after a growing delay.
        """
        count = self.misses(ref, api_url) + 1
        entry = self._jobs.setdefault(ref.key, {"status": None, "expires_at": None})
        entry["requested_at"] = format_datetime(requested_at)
        entry["misses"] = {
            "count": count,
            "api_url": api_url,
            "last_at": format_datetime(requested_at),
        }
        return count

    def _set(self, ref: JobRef, **fields: t.Any) -> None:
        # What the import log said of the job stays: its keys are needed once it completes.
        logged = self._jobs.get(ref.key, {}).get("log")
        self._jobs[ref.key] = {**fields, **({"log": logged} if logged is not None else {})}

    def remember_logged_job(self, ref: JobRef, log: dict[str, t.Any]) -> None:
        """A job handed over by the import log: followed from now on, as a configured one.

        ``log`` holds its ``object_type``, ``submitted_at`` and ``input_keys_at`` (where its
        keys are; never the keys themselves).
        """
        entry = self._jobs.setdefault(ref.key, {"status": None, "requested_at": None})
        entry.setdefault("expires_at", None)
        # A replay's line hands the same job over again: the first line's stays.
        if not isinstance(entry.get("log"), dict):
            entry["log"] = log

    def logged_job(self, ref: JobRef) -> dict[str, t.Any] | None:
        entry = self._jobs.get(ref.key)
        logged = None if entry is None else entry.get("log")
        return logged if isinstance(logged, dict) else None

    def logged_jobs(self, now: datetime.datetime) -> list[JobRef]:
        """Jobs the import log handed over in earlier runs, while the API may still keep them."""
        refs = []
        for key, entry in self._jobs.items():
            logged = entry.get("log")
            submitted_at = (
                normalize_datetime(logged.get("submitted_at")) if isinstance(logged, dict) else None
            )
            retained_until = None if submitted_at is None else _retained_until(submitted_at)
            if retained_until is not None and parse_datetime(retained_until) > now:
                team_id, _, job_id = key.partition("/")
                refs.append(JobRef(team_id, job_id))
        return refs

    def record_request(self, ref: JobRef, requested_at: datetime.datetime) -> None:
        """A request was spent on the job without a usable answer: status stays as it was."""
        entry = self._jobs.setdefault(ref.key, {"status": None, "expires_at": None})
        entry["requested_at"] = format_datetime(requested_at)

    def prune(self, configured: Collection[str], now: datetime.datetime) -> None:
        """Drop entries of jobs no longer configured that can no longer be fetched.

        An incomplete entry of an unconfigured job goes too: were the job configured
        again, it would be requested as new, just as with the incomplete entry.
        """
        stale = [
            key
            for key, entry in self._jobs.items()
            if key not in configured
            and (not is_complete_entry(entry) or _past_retention(entry, now))
        ]
        for key in stale:
            del self._jobs[key]


def is_complete_entry(entry: dict[str, t.Any]) -> bool:
    """Whether an entry can decide anything: a known status and a readable date."""
    return _is_known_status(entry.get("status")) and (
        normalize_datetime(entry.get("expires_at")) is not None
        or normalize_datetime(entry.get("requested_at")) is not None
    )


def _is_known_status(status: object) -> t.TypeGuard[str]:
    return isinstance(status, str) and status in KNOWN_STATUSES


def _has_a_date(entry: dict[str, t.Any]) -> bool:
    return (
        normalize_datetime(entry.get("expires_at")) is not None
        or normalize_datetime(entry.get("requested_at")) is not None
    )


def _misses_at(entry: dict[str, t.Any], api_url: str) -> tuple[int, datetime.datetime] | None:
    """The count and last time of the job's 404 misses at ``api_url``; ``None`` if none.

    Misses recorded at another URL do not count: that URL may have been the mistake.
    An unreadable record of misses counts as none, so the job is requested.
    """
    misses = entry.get("misses")
    if not isinstance(misses, dict) or misses.get("api_url") != api_url:
        return None
    count = misses.get("count")
    last_at = normalize_datetime(misses.get("last_at"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or last_at is None:
        return None
    return count, parse_datetime(last_at)


def _past_retention(entry: dict[str, t.Any], now: datetime.datetime) -> bool:
    """Whether the API can only answer 404 for the job: past 7 days.

    Only what the entry proves counts: without a readable date nothing is known,
    and the job is requested rather than silently skipped.
    """
    expires_at = normalize_datetime(entry.get("expires_at"))
    requested_at = normalize_datetime(entry.get("requested_at"))
    if expires_at is not None:
        return parse_datetime(expires_at) <= now
    retained_until = None if requested_at is None else _retained_until(requested_at)
    return retained_until is not None and parse_datetime(retained_until) <= now


def _retained_until(moment: str) -> str | None:
    """Seven days after ``moment``; ``None`` past the calendar's end (year 9999)."""
    try:
        return format_datetime(parse_datetime(moment) + RETENTION)
    except OverflowError:
        return None


# STATE messages go out at most this often, however small the state.
MIN_STATE_INTERVAL_SECONDS = 1.0


class ScalarMap(dict[str, t.Any]):
    """A part of the state whose values are all scalars: its deep copy is a plain copy.

    The SDK deep-copies the whole state at each STATE message, item by item: 90 ms for
    the import log's 100,000 recent imports, against 5 ms for one copy in C.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, t.Any]) -> ScalarMap:
        return ScalarMap(self)


class StateCheckpoints:
    """Rations STATE messages to one per interval, longer as the state grows.

    Every STATE message carries the whole state, and the SDK writes one after each
    child sync; one per job (or per import of the log) would make a run quadratic.
    """

    # With the interval at this many seconds per state entry, a run writes about
    # 100 entries' worth of STATE per second, whatever the state's size: a few
    # messages, in all a fraction of the final state's size for any long log.
    SECONDS_PER_ENTRY = 0.01

    def __init__(self, interval_seconds: float | None = None) -> None:
        self._interval = (
            MIN_STATE_INTERVAL_SECONDS if interval_seconds is None else interval_seconds
        )
        self._entries: Callable[[], int] = lambda: 0
        self._last = -float("inf")
        self.unthrottled = False
        self.final_only = False

    def measure_with(self, entries: Callable[[], int]) -> None:
        """How to count the state's entries now (a cheap call: it is asked at every step)."""
        self._entries = entries

    def due(self) -> bool:
        if self.final_only and not self.unthrottled:
            return False
        now = time.monotonic()
        interval = max(self._interval, self._entries() * self.SECONDS_PER_ENTRY)
        if self.unthrottled or now - self._last >= interval:
            self._last = now
            return True
        return False
