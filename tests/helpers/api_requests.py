"""One way for tests to call an API (the sandbox's, or its control endpoints) by hand."""

from __future__ import annotations

import datetime
import typing as t

import requests

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID

if t.TYPE_CHECKING:
    from prism_import_log import ImportLog
    from prism_sandbox import Sandbox

# One sync import of contacts, deduplicated by email, with the caller's key per row:
# what each row gets from the sandbox is in the comments.
SYNC_KEYS = ["crm-1", "crm-2", "crm-3", "crm-4", "crm-5", "crm-6"]
SYNC_ROWS = [
    {"default": {"name": "Ada", "email": "ada@example.com"}},
    {"default": {"name": "Grace", "email": "grace@example.com"}},
    {"default": {"name": "Bad", "email": "bad.example.com"}},  # validation_error
    {"default": {"name": "ADA", "email": "ADA@example.com"}},  # matches crm-1 by email
    {"default": {"phone": "+15550100"}},  # missing_required_property
    {"default": {"name": "Linus", "email": "linus@example.com"}},
]


def api_request(
    base_url: str,
    method: str,
    path: str,
    *,
    key: str | None = DEMO_API_KEY,
    body: t.Any = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """One request on a connection of its own, read whole; ``key=None`` sends no key."""
    sent = dict(headers or {})
    if key is not None:
        sent["x-api-key"] = key
    with requests.Session() as session:
        response = session.request(method, base_url + path, json=body, headers=sent, timeout=30)
        response.close()
    return response


def job_path(job_id: str, team: str = DEMO_TEAM_ID) -> str:
    return f"/v2/prism/{team}/imports/{job_id}"


def ref_path(ref: str) -> str:
    """The API path of a ``TEAM_ID/JOB_ID`` ref."""
    team, job_id = ref.split("/")
    return job_path(job_id, team)


def post_and_log(
    sandbox: Sandbox,
    log: ImportLog,
    rows: list[t.Any],
    keys: list[str],
    *,
    idempotency_key: str,
    object_type: str = "contact",
) -> dict[str, t.Any]:
    """POST an import as a caller does and log the answer; returns the logged entry."""
    submitted_at = datetime.datetime.now(datetime.timezone.utc)
    response = requests.post(
        f"{sandbox.base_url}/v2/prism/{sandbox.team_id}/{object_type}/import",
        json={"objects": rows, "options": {"dedupe_by": "email", "caseInsensitive": True}},
        headers={"x-api-key": sandbox.api_key, "Idempotency-Key": idempotency_key},
        timeout=30,
    )
    return log.record(
        response,
        team_id=sandbox.team_id,
        object_type=object_type,
        input_keys=keys,
        idempotency_key=idempotency_key,
        submitted_at=submitted_at,
    )
