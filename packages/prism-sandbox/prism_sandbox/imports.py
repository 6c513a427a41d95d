"""Import requests (``POST /v2/prism/{teamId}/{objectType}/import``): validation,
idempotency and job creation.

Rows are processed when the request arrives (see ``records``): a batch of at most
``sync_threshold`` rows is answered with its final snapshot (200), a larger one becomes a
job (202) that reveals those outcomes as it progresses.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prism_sandbox.jobs import (
    JOB_PATH,
    Job,
    RawJSON,
    RowResults,
    format_time,
    render_object,
)
from prism_sandbox.records import OBJECT_TYPES, RecordIndex
from prism_sandbox.response import ApiResponse

if TYPE_CHECKING:
    from prism_sandbox.jobs import Clock, Fields, JobStore, JSONDict

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class BadRequestError(ValueError):
    """A malformed import request (answered with 400)."""


def validate_import_body(payload: Any) -> tuple[list[JSONDict], JSONDict]:
    """The rows and options of an import request body (``BadRequestError`` if malformed)."""
    if not isinstance(payload, dict):
        msg = "request body must be a JSON object"
        raise BadRequestError(msg)
    objects = payload.get("objects")
    if not isinstance(objects, list) or not objects:
        msg = "objects must be a non-empty array"
        raise BadRequestError(msg)
    for index, row in enumerate(objects):
        if not isinstance(row, dict):
            msg = f"objects[{index}] must be an object"
            raise BadRequestError(msg)
        if "default" in row and not isinstance(row["default"], dict):
            msg = f"objects[{index}].default must be an object keyed by property slug"
            raise BadRequestError(msg)
    options = payload.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        msg = "options must be an object"
        raise BadRequestError(msg)
    if "dedupe_by" in options and not isinstance(options["dedupe_by"], str):
        msg = "options.dedupe_by must be a property slug"
        raise BadRequestError(msg)
    if "caseInsensitive" in options and not isinstance(options["caseInsensitive"], bool):
        msg = "options.caseInsensitive must be a boolean"
        raise BadRequestError(msg)
    if "list_id" in options:
        try:
            uuid.UUID(str(options["list_id"]))
        except ValueError:
            msg = "options.list_id must be a UUID"
            raise BadRequestError(msg) from None
    return objects, options


def _validate_request(
    object_type: str, payload: Any, idempotency_key: str | None
) -> tuple[list[JSONDict], JSONDict]:
    if object_type not in OBJECT_TYPES:
        msg = (
            f"unknown object type {object_type!r}; "
            f"expected one of {', '.join(sorted(OBJECT_TYPES))}"
        )
        raise BadRequestError(msg)
    if idempotency_key is not None and not (
        1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH
    ):
        msg = "Idempotency-Key must be 1 to 255 characters"
        raise BadRequestError(msg)
    return validate_import_body(payload)


@dataclass
class _Idempotent:
    fingerprint: str
    response: ApiResponse
    created_at: float


class Importer:
    """Runs import requests against a job store, on the sandbox clock.

    One import at a time: rows of a batch see the records created by earlier batches, and
    record ids follow the order imports arrive in.
    """

    def __init__(
        self, jobs: JobStore, clock: Clock, *, sync_threshold: int, rows_per_second: float
    ) -> None:
        self.jobs = jobs
        self.clock = clock
        self.sync_threshold = sync_threshold
        self.rows_per_second = rows_per_second
        self._records = RecordIndex()
        self._idempotency: dict[tuple[str, str], _Idempotent] = {}
        self._lock = threading.Lock()

    def submit(
        self, team_id: str, object_type: str, payload: Any, idempotency_key: str | None
    ) -> ApiResponse:
        """Answer an import request as the API does: 200 (sync), 202 (job), 400 or 409."""
        try:
            objects, options = _validate_request(object_type, payload, idempotency_key)
        except BadRequestError as error:
            return ApiResponse.error(400, str(error))
        fingerprint = hashlib.sha256(
            f"{object_type}\n{json.dumps(payload, sort_keys=True, default=str)}".encode()
        ).hexdigest()
        with self._lock:
            now = self.clock.now()
            if idempotency_key is not None:
                previous = self._idempotency.get((team_id, idempotency_key))
                if previous is not None and now - previous.created_at < IDEMPOTENCY_TTL_SECONDS:
                    return _replay(previous, fingerprint)
            results = RowResults(self._records.process(team_id, object_type, objects, options))
            if len(objects) <= self.sync_threshold:
                response = _sync_response(results, now)
            else:
                response = self._start_job(team_id, object_type, results, now)
            response.team_id = team_id
            if idempotency_key is not None:
                self._idempotency[(team_id, idempotency_key)] = _Idempotent(
                    fingerprint, response, now
                )
            return response

    def create_job(
        self,
        team_id: str,
        object_type: str,
        payload: Any,
        *,
        created_at: float,
        job_id: str | None = None,
        rows_per_second: float | None = None,
    ) -> ApiResponse:
        """Import rows as a job created at ``created_at``, whatever their number: 202 or 400."""
        try:
            objects, options = _validate_request(object_type, payload, None)
        except BadRequestError as error:
            return ApiResponse.error(400, str(error))
        with self._lock:
            results = RowResults(self._records.process(team_id, object_type, objects, options))
            return self._start_job(
                team_id, object_type, results, created_at, job_id, rows_per_second
            )

    def _start_job(  # noqa: PLR0917
        self,
        team_id: str,
        object_type: str,
        results: RowResults,
        now: float,
        job_id: str | None = None,
        rows_per_second: float | None = None,
    ) -> ApiResponse:
        rate = rows_per_second or self.rows_per_second
        new_id = job_id or self.jobs.new_id(team_id)
        job = Job(new_id, team_id, object_type, results, now, rate, now + results.total / rate)
        self.jobs.add(job)
        fields, chunks = job.snapshot(now)
        return ApiResponse(
            202,
            chunks,
            {"Location": JOB_PATH.format(team_id=team_id, job_id=new_id)},
            fields,
            team_id,
            new_id,
        )


def _replay(previous: _Idempotent, fingerprint: str) -> ApiResponse:
    if previous.fingerprint != fingerprint:
        return ApiResponse.error(
            409,
            "Idempotency-Key was already used with a different request body",
            code="idempotency_key_mismatch",
        )
    replay = previous.response
    return ApiResponse(
        replay.status,
        replay.chunks,
        {**replay.headers, "idempotent-replay": "true"},
        replay.fields,
        replay.team_id,
        replay.job_id,
    )


def _sync_response(results: RowResults, now: float) -> ApiResponse:
    failed = results.failed_before(results.total)
    fields: Fields = [
        ("job_id", None),
        ("status", "complete"),
        ("total", results.total),
        ("processed", results.total),
        ("results", RawJSON(results.render())),
        ("succeeded", results.total - failed),
        ("failed", failed),
        ("created_at", format_time(now)),
        ("updated_at", format_time(now)),
    ]
    return ApiResponse(200, render_object(fields), fields=fields)
