"""The API's answers: routing, auth, rate limit, the job snapshot (GET) and imports (POST).

Status faults (``server_error``, ``rate_limit``) replace an answer once the key is known to
be valid; body faults distort a snapshot; transport faults are picked here and applied by
the transport when it sends the answer.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING

from prism_sandbox import faults as fault_kinds
from prism_sandbox.jobs import render_object
from prism_sandbox.response import ApiResponse

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from prism_sandbox.faults import Fault, FaultInjector
    from prism_sandbox.imports import Importer
    from prism_sandbox.jobs import Clock, JobStore
    from prism_sandbox.limits import RateLimiter


class Api:
    """Answers API requests (``/v2/prism/...``) from the sandbox's keys, jobs and faults.

    ``keys`` maps each accepted API key to the teams it may access (``None``: every team
    in ``team_ids``).
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, frozenset[str] | None],
        team_ids: Sequence[str],
        clock: Clock,
        limiter: RateLimiter,
        faults: FaultInjector,
        jobs: JobStore,
        importer: Importer,
    ) -> None:
        self._keys = keys
        self._team_ids = team_ids
        self.clock = clock
        self.limiter = limiter
        self.faults = faults
        self._jobs = jobs
        self._importer = importer

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[ApiResponse, float, Fault | None, str | None]:
        """Answer one API request: ``(response, latency, transport fault, fault kind)``."""
        route, team_id, rest = route_request(method, path)
        job_id = rest if route == "job" else None
        latency = self.faults.latency(method, job_id)
        response, fault = self._answer(method, route, team_id, rest, headers, body)
        response.team_id = response.team_id or team_id
        response.job_id = response.job_id or job_id
        fault_kind = fault.kind if fault is not None else None
        transport = None
        if response.status < 400:  # noqa: PLR2004
            transport = self.faults.take(
                fault_kinds.TRANSPORT_KINDS, method, response.job_id or job_id
            )
            if transport is not None:
                fault_kind = transport.kind
        return response, latency, transport, fault_kind

    def _answer(  # noqa: PLR0911, PLR0912, PLR0917
        self,
        method: str,
        route: str,
        team_id: str | None,
        rest: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[ApiResponse, Fault | None]:
        api_key = headers.get("x-api-key")
        if not api_key:
            return ApiResponse.error(401, "missing x-api-key header"), None
        if api_key not in self._keys:
            return ApiResponse.error(403, "invalid or revoked API key"), None
        retry_after = self.limiter.check(api_key, self.clock.now())
        if retry_after is not None:
            return ApiResponse.error(
                429, "rate limit exceeded", headers={"Retry-After": str(retry_after)}
            ), None
        if route == "not_found":
            return ApiResponse.error(404, "not found"), None
        if route == "method_not_allowed":
            return ApiResponse.error(405, "method not allowed"), None
        if route == "bad_request" or team_id is None or rest is None:
            return ApiResponse.error(400, "malformed request path"), None
        allowed = self._keys[api_key]
        if team_id not in self._team_ids or (allowed is not None and team_id not in allowed):
            return ApiResponse.error(403, "this API key has no access to that team"), None
        job_id = rest if route == "job" else None
        fault = self.faults.take(fault_kinds.STATUS_KINDS, method, job_id)
        if fault is not None:
            if fault.kind == fault_kinds.RATE_LIMIT:
                return ApiResponse.error(
                    429, "rate limit exceeded", headers={"Retry-After": str(fault.retry_after)}
                ), fault
            return ApiResponse.error(fault.status, "internal server error"), fault
        if route == "job":
            response = self._get_job(team_id, rest)
        else:
            key = headers.get("idempotency-key")
            try:
                payload = json.loads(body) if body else None
            except (ValueError, UnicodeDecodeError):
                response = ApiResponse.error(400, "request body is not valid JSON")
            else:
                response = self._importer.submit(team_id, rest, payload, key)
        if response.fields is not None and response.status < 400:  # noqa: PLR2004
            fault = self.faults.take(fault_kinds.BODY_KINDS, method, job_id or response.job_id)
            if fault is not None:
                response = apply_body_fault(response, fault)
                return response, fault
        return response, None

    def _get_job(self, team_id: str, job_id: str) -> ApiResponse:
        now = self.clock.now()
        job = self._jobs.find(job_id)
        if job is None or job.team_id != team_id or job.is_expired(now):
            return ApiResponse.error(404, "import job not found or expired")
        fields, chunks = job.snapshot(now)
        return ApiResponse(200, chunks, fields=fields, team_id=team_id, job_id=job_id)


def apply_body_fault(response: ApiResponse, fault: Fault) -> ApiResponse:
    """The snapshot ``response`` as a body fault (``malformed_json``, ...) distorts it."""
    fields = list(response.fields or [])
    if fault.kind == fault_kinds.MALFORMED_JSON:
        body = response.body
        return ApiResponse(200, (body[:-1], b',]"'), dict(response.headers), None)
    if fault.kind == fault_kinds.UNEXPECTED_STATUS:
        fields = [(k, fault.value if k == "status" else v) for k, v in fields]
    elif fault.kind == fault_kinds.MISSING_FIELDS:
        fields = [(k, v) for k, v in fields if k not in fault.fields]
    elif fault.kind == fault_kinds.RESULTS_WRONG_TYPE:
        if any(k == "results" for k, _ in fields):
            fields = [(k, fault.value if k == "results" else v) for k, v in fields]
        else:
            position = next((i + 1 for i, (k, _) in enumerate(fields) if k == "processed"), 0)
            fields.insert(position, ("results", fault.value))
    return ApiResponse(
        response.status,
        render_object(fields),
        dict(response.headers),
        fields,
        response.team_id,
        response.job_id,
    )


def route_request(method: str, path: str) -> tuple[str, str | None, str | None]:
    """``(route, team_id, job_id or object type)`` for an API path."""
    parts = path.split("/")
    if len(parts) == 6 and parts[:3] == ["", "v2", "prism"]:  # noqa: PLR2004
        team_id = urllib.parse.unquote(parts[3]).lower()
        if parts[4] == "imports":
            if method != "GET":
                return "method_not_allowed", team_id, None
            job_id = urllib.parse.unquote(parts[5])
            return ("job", team_id, job_id) if job_id and team_id else ("bad_request", None, None)
        if parts[5] == "import":
            if method != "POST":
                return "method_not_allowed", team_id, None
            object_type = urllib.parse.unquote(parts[4])
            return "import", team_id, object_type
    return "not_found", None, None
