"""The tap: its settings and streams."""

from __future__ import annotations

import logging
import os
import sys
import typing as t

from singer_sdk import typing as th
from singer_sdk.exceptions import (
    AbortedSyncFailedException,
    AbortedSyncPausedException,
    ConfigValidationError,
    FatalAPIError,
    MaxRecordsLimitException,
)
from typing_extensions import override

from tap_prism_imports import __version__, streams
from tap_prism_imports.errors import BatchStorageError, JobsFailedError
from tap_prism_imports.messages import PrismMessageWriter
from tap_prism_imports.sdk_hooks import SignalAwareTap
from tap_prism_imports.settings import (
    API_KEY_ENV,
    API_URL_ENV,
    DEFAULT_API_URL,
    warn_unknown_settings,
)
from tap_prism_imports.signals import Interruption
from tap_prism_imports.state import StateCheckpoints, read_state_file, validate_state

# Errors whose message says what went wrong and how to fix it: no traceback unless DEBUG.
EXPLAINED_ERRORS = (ConfigValidationError, FatalAPIError, JobsFailedError, BatchStorageError)


# What the SDK logs as "an unhandled error" that is none: ``--test`` ends its sample
# with the SDK's own record-limit abort; the rest are told in one line by ``invoke``.
QUIET_ERRORS = (
    MaxRecordsLimitException,
    AbortedSyncPausedException,
    AbortedSyncFailedException,
    BrokenPipeError,
    *EXPLAINED_ERRORS,
)


class _QuietAborts(logging.Filter):
    """Drops the SDK's "unhandled error" line for the errors in ``QUIET_ERRORS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        handled = sys.exc_info()[1]
        return not (
            record.levelno == logging.ERROR
            and record.getMessage().startswith("An unhandled error occurred while syncing")
            and isinstance(handled, QUIET_ERRORS)
        )


class _NoUnsortedStreamWarning(logging.Filter):
    """Drops the SDK's "Stream is assumed to be unsorted" warning, logged every run.

    It says progress cannot resume after an interruption, which is untrue here: the
    tap's progress is its ledger, which every STATE carries. Under Meltano (with
    structured logging) it showed as two warnings on every healthy run.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno == logging.WARNING
            and record.getMessage().startswith("Stream is assumed to be unsorted")
        )


class TapPrismImports(SignalAwareTap):
    """Extracts Prism bulk-import job snapshots and their per-row results."""

    name = "tap-prism-imports"
    plugin_version = __version__
    message_writer_class = PrismMessageWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType,
            secret=True,
            description=f"Prism API key, sent as x-api-key. Defaults to env {API_KEY_ENV}.",
        ),
        th.Property(
            "team_id",
            th.StringType,
            description="Team (UUID) for job refs that name no team.",
        ),
        th.Property(
            "api_url",
            th.StringType,
            description=f"The API's root URL (no /v2 path). Defaults to env {API_URL_ENV}, "
            f"else {DEFAULT_API_URL}.",
        ),
        th.Property(
            "job_ids",
            th.ArrayType(th.StringType),
            default=[],
            description="Job refs: JOB_ID, TEAM_ID/JOB_ID, or the import's Location "
            "path or URL (/v2/prism/TEAM_ID/imports/JOB_ID).",
        ),
        th.Property(
            "job_ids_file",
            th.StringType,
            description="File of job refs, one per line; blank lines and # comments ignored.",
        ),
        th.Property(
            "import_log",
            th.StringType,
            description="The import log written by the code that makes the imports: a path, "
            "a glob, or an fsspec URL (s3://bucket/prism/*.jsonl; needs the s3 extra). Sync "
            "and rejected imports are emitted from it, async ones followed.",
        ),
        th.Property(
            "wait_for_completion",
            th.BooleanType,
            default=False,
            description="Poll processing jobs until they finish or max_wait_seconds passes.",
        ),
        th.Property(
            "poll_interval_seconds",
            th.NumberType(minimum=1),
            default=30,
            description="First wait between polls of one job; each further wait grows "
            "x1.5, at most 300 s. Polls spend quota.",
        ),
        th.Property(
            "max_wait_seconds",
            th.NumberType(minimum=0),
            default=900,
            description="One deadline for all of a run's waiting; then the last snapshot "
            "is emitted.",
        ),
        th.Property(
            "refresh_terminal_jobs",
            th.BooleanType,
            default=False,
            description="Request jobs already captured as complete or failed again and "
            "re-emit them with their results. Expired jobs are never requested.",
        ),
        th.Property(
            "refresh_not_found_jobs",
            th.BooleanType,
            default=False,
            description="Request again, once, jobs that answered 404 at this api_url "
            "(marked gone, or waiting to be asked again) and may still exist (under 7 days).",
        ),
        th.Property(
            "requests_per_second",
            th.NumberType(exclusive_minimum=0),
            default=10,
            description="Client-side pace shared by all requests (the API allows 10/s).",
        ),
        th.Property(
            "request_timeout_seconds",
            th.NumberType(exclusive_minimum=0),
            default=300,
            description="Bound on one request, connect to last byte, in seconds. A body "
            "that stops arriving for 30 s fails sooner. 1M rows are ~85 MB: allow for it.",
        ),
        th.Property(
            "max_requests_per_run",
            th.IntegerType(minimum=1),
            description="Stop requesting after this many requests (polls and retries "
            "count); the jobs left go first next run. Unset: no limit.",
        ),
    ).to_dict()

    def __init__(self, **kwargs: t.Any) -> None:
        # Before the SDK installs the signal handlers that use it.
        self.interruption = Interruption()
        super().__init__(**kwargs)
        if self.config.get("batch_config") and (
            self.config.get("stream_maps") or self.config.get("flattening_enabled")
        ):
            setting = "stream_maps" if self.config.get("stream_maps") else "flattening_enabled"
            msg = (
                f"`batch_config` cannot be combined with `{setting}`: the SDK applies stream "
                "maps and flattening to RECORD messages only, never to batch files. Remove "
                f"`{setting}`, or `batch_config` (then records go out as RECORD messages)."
            )
            raise ConfigValidationError(msg, errors=[msg])
        for stream_name in self.streams:
            logging.getLogger(f"{self.name}.{stream_name}").addFilter(_QuietAborts())
        sdk_logger = logging.getLogger("singer_sdk")
        if not any(isinstance(f, _NoUnsortedStreamWarning) for f in sdk_logger.filters):
            sdk_logger.addFilter(_NoUnsortedStreamWarning())
        # The SDK validates the config for a sync or a test, not for discovery: the
        # settings a sync needs are checked then too, all at once, before any message.
        if kwargs.get("validate_config", True):
            self._check_sync_settings()

    def _check_sync_settings(self) -> None:
        warn_unknown_settings(self.config, self.config_jsonschema["properties"], self.logger)
        jobs = self.streams["import_jobs"]
        if isinstance(jobs, streams.ImportJobsStream):
            jobs.sync_settings  # noqa: B018 - checked and cached now, not at first use

    @classmethod
    @override
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        try:
            if kwargs.get("state") is not None:
                # Before the SDK parses it: a broken file must be named, with the fix.
                kwargs["state"] = read_state_file(kwargs["state"])
            super().invoke(*args, **kwargs)
        except BrokenPipeError:
            # Later writes (and the flush at exit) would raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            cls.logger.error(  # noqa: TRY400 - one line; a traceback says nothing more here
                "The target stopped reading (broken pipe): the run ends. The last STATE it "
                "received claims only records sent before it."
            )
            sys.exit(1)
        except EXPLAINED_ERRORS as error:
            # A configuration error's message is a summary; its details are in `errors`.
            details = [str(e) for e in getattr(error, "errors", None) or [] if str(e) != str(error)]
            cls.logger.error("%s", "\n  ".join([str(error), *details]))  # noqa: TRY400 - traceback at DEBUG
            cls.logger.debug("Where it was raised:", exc_info=True)
            sys.exit(1)

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        # Before any request: a damaged state must fail naming its key, not deep inside.
        validate_state(state)
        super().load_state(state)

    @override
    def on_termination(self, signum: int) -> None:
        if self.interruption.is_set():
            os._exit(128 + signum)  # a second signal: no more waiting
        self.logger.warning(
            "Received signal %d: stopping at the next message boundary; jobs not fully "
            "written are left for the next run. Signal again to exit at once.",
            signum,
        )
        self.interruption.request(signum)

    @override
    def discover_streams(self) -> list[streams.ImportJobsStream | streams.ImportResultsStream]:
        link = streams.StreamLink(
            checkpoints=StateCheckpoints(),
            writer=self.message_writer,
            interruption=self.interruption,
        )
        return [streams.ImportJobsStream(self, link), streams.ImportResultsStream(self, link)]


if __name__ == "__main__":
    TapPrismImports.cli()
