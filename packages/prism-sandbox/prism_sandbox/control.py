"""The control API under ``/_sandbox/``: what a test or demo uses to steer a sandbox.

Endpoints: ``health``; ``clock`` (GET, POST ``{"advance_seconds": N}``); ``faults`` (GET,
POST a fault or a list, DELETE); ``requests`` (GET, DELETE); ``jobs`` (POST creates a
synthetic job, ``jobs/ID/complete`` and ``jobs/ID/fail`` change one); ``seed`` (POST
``{"name": "demo"}``). No API key, no rate limit, not in the request log.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from prism_sandbox.faults import Fault
from prism_sandbox.jobs import format_time
from prism_sandbox.response import ApiResponse
from prism_sandbox.seed import Seedable, seed_demo

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from prism_sandbox.faults import FaultInjector


class Controllable(Seedable, Protocol):
    """What the control API steers (``Sandbox`` has it): faults, requests and jobs."""

    faults: FaultInjector

    @property
    def base_url(self) -> str: ...

    @property
    def requests(self) -> list[dict[str, Any]]: ...

    def clear_faults(self) -> None: ...

    def clear_requests(self) -> None: ...

    def add_job(
        self,
        team_id: str | None = ...,
        *,
        rows: int,
        status: str = ...,
        failed_every: int | None = ...,
        existing_every: int | None = ...,
        created_at: datetime | float | None = ...,
        job_id: str | None = ...,
        error: Mapping[str, str] | None = ...,
        object_type: str = ...,
        rows_per_second: float | None = ...,
    ) -> str: ...

    def complete_job(self, job_id: str) -> None: ...

    def ref(self, job_id: str) -> str: ...

    def location(self, job_id: str) -> str: ...


def answer_control(  # noqa: PLR0911, PLR0912
    sandbox: Controllable, method: str, path: str, body: bytes
) -> ApiResponse:
    """Answer a ``/_sandbox/...`` control request (no key, not rate limited, not logged)."""
    try:
        payload: Any = json.loads(body) if body else {}
    except ValueError:
        return ApiResponse.error(400, "request body is not valid JSON")
    parts = [urllib.parse.unquote(p) for p in path.split("/")[2:] if p]
    try:
        if parts == ["health"] and method == "GET":
            return ApiResponse.of(200, {"ok": True, "base_url": sandbox.base_url})
        if parts == ["clock"] and method == "GET":
            return ApiResponse.of(200, {"now": format_time(sandbox.clock.now())})
        if parts == ["clock"] and method == "POST":
            moment = sandbox.clock.advance(float(payload.get("advance_seconds", 0)))
            return ApiResponse.of(200, {"now": format_time(moment)})
        if parts == ["faults"] and method == "GET":
            return ApiResponse.of(200, {"faults": [f.to_dict() for f in sandbox.faults.list()]})
        if parts == ["faults"] and method == "POST":
            specs = payload if isinstance(payload, list) else [payload]
            added = [sandbox.faults.add(Fault.from_dict(spec)) for spec in specs]
            return ApiResponse.of(200, {"faults": [f.to_dict() for f in added]})
        if parts == ["faults"] and method == "DELETE":
            sandbox.clear_faults()
            return ApiResponse.of(200, {"faults": []})
        if parts == ["requests"] and method == "GET":
            return ApiResponse.of(200, {"requests": sandbox.requests})
        if parts == ["requests"] and method == "DELETE":
            sandbox.clear_requests()
            return ApiResponse.of(200, {"requests": []})
        if parts == ["jobs"] and method == "POST":
            job_id = sandbox.add_job(**_job_kwargs(payload))
            return ApiResponse.of(
                201,
                {
                    "job_id": job_id,
                    "ref": sandbox.ref(job_id),
                    "location": sandbox.location(job_id),
                },
            )
        if len(parts) == 3 and parts[0] == "jobs" and method == "POST":  # noqa: PLR2004
            if parts[2] == "complete":
                sandbox.complete_job(parts[1])
            elif parts[2] == "fail":
                sandbox.fail_job(parts[1], **_body_arguments(payload, {"code", "message"}))
            else:
                return ApiResponse.error(404, "not found")
            return ApiResponse.of(200, {"job_id": parts[1]})
        if parts == ["seed"] and method == "POST":
            if payload.get("name", "demo") != "demo":
                return ApiResponse.error(400, "the only seed is 'demo'")
            return ApiResponse.of(200, {"refs": seed_demo(sandbox, payload.get("team_id"))})
    except KeyError as error:
        return ApiResponse.error(404, f"not found: {error}")
    except (TypeError, ValueError, AttributeError) as error:
        return ApiResponse.error(400, str(error))
    return ApiResponse.error(404, "not found")


def _body_arguments(payload: Any, allowed: Collection[str]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        msg = "body must be an object"
        raise TypeError(msg)
    unknown = set(payload) - set(allowed)
    if unknown:
        msg = f"unknown keys: {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    return dict(payload)


def _job_kwargs(payload: Any) -> dict[str, Any]:
    allowed = {
        "team_id",
        "rows",
        "status",
        "failed_every",
        "existing_every",
        "created_at",
        "job_id",
        "error",
        "object_type",
        "rows_per_second",
    }
    kwargs = _body_arguments(payload, allowed)
    if isinstance(kwargs.get("created_at"), str):
        kwargs["created_at"] = datetime.fromisoformat(kwargs["created_at"].replace("Z", "+00:00"))
    return kwargs
