"""The errors that cross modules: what went wrong with a job, a request, a run.

They live apart from the code that raises them so that a module can name one
without importing the machinery (the fetcher, the client) that raises it.
"""

from __future__ import annotations


class InvalidSnapshotError(ValueError):
    """The API answered 200 with a body that is not a usable job snapshot."""


class JobFetchError(Exception):
    """A job could not be read this run; the other jobs go on."""


class JobNotFoundError(Exception):
    """A job answered 404: unknown, expired, or asked for at a wrong URL."""

    def __init__(self, reason: str, *, url: str) -> None:
        super().__init__(reason)
        #: What was asked for, for messages (never carries the key: it goes in a header).
        self.url = url


class ApiUnreachableError(JobFetchError):
    """No connection to ``api_url`` could be made, try after try: no job can be read."""


class RequestBudgetExhaustedError(Exception):
    """``max_requests_per_run`` is spent; the job was not requested."""


class RunStoppedError(Exception):
    """No further request is sent this run; ``reason`` says why, for the run's summary."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Why a run stopped sending requests, as its summary names the jobs left for the next run.
STOPPED_BY_API_LIMIT = "API limit"
STOPPED_UNREACHABLE = "API unreachable"
STOPPED_BY_RUN_END = "run ended"


class JobsFailedError(Exception):
    """Some jobs could not be read; the others were extracted."""


class BatchStorageError(Exception):
    """A batch file could not be written: the message names the setting and the path."""
