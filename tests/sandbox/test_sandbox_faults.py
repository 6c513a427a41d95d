"""Fault injection in the sandbox: status faults, broken bodies, broken connections."""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from helpers.api_requests import api_request, job_path

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Fault, Sandbox

if TYPE_CHECKING:
    from collections.abc import Callable

HEADERS = {"x-api-key": DEMO_API_KEY}


def raw_get(sb: Sandbox, job_id: str) -> tuple[bytes, bytes]:
    """Headers and whatever body bytes arrive before the server closes the connection."""
    request = (
        f"GET /v2/prism/{DEMO_TEAM_ID}/imports/{job_id} HTTP/1.1\r\n"
        f"Host: x\r\nx-api-key: {DEMO_API_KEY}\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as connection:
        connection.sendall(request)
        while True:
            try:
                data = connection.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def test_server_errors_for_the_next_n_requests_then_success(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=3)
    fault = sandbox.inject("server_error", count=2, status=503)
    assert [
        api_request(sandbox.base_url, "GET", job_path(job_id)).status_code for _ in range(3)
    ] == [503, 503, 200]
    assert fault.fired == 2
    assert [e["fault"] for e in sandbox.requests] == ["server_error", "server_error", None]


def test_faults_can_target_one_job(sandbox: Sandbox) -> None:
    target = sandbox.add_job(DEMO_TEAM_ID, rows=3)
    other = sandbox.add_job(DEMO_TEAM_ID, rows=3)
    sandbox.inject("server_error", count=1, job_id=target)
    assert api_request(sandbox.base_url, "GET", job_path(other)).status_code == 200
    assert api_request(sandbox.base_url, "GET", job_path(target)).status_code == 500
    assert api_request(sandbox.base_url, "GET", job_path(target)).status_code == 200


def test_error_rate_is_reproducible_with_a_seed(make_sandbox: Callable[..., Sandbox]) -> None:
    def statuses(seed: int) -> list[int]:
        sb = make_sandbox(rate_limit=None, error_rate=0.5, fault_seed=seed)
        job_id = sb.add_job(DEMO_TEAM_ID, rows=1)
        return [api_request(sb.base_url, "GET", job_path(job_id)).status_code for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {200, 500}


@pytest.mark.parametrize("retry_after", [3, "Wed, 21 Oct 2026 07:28:00 GMT", 86_400])
def test_throttle_bursts_with_retry_after(sandbox: Sandbox, retry_after: int | str) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1)
    sandbox.inject("rate_limit", count=2, retry_after=retry_after)
    first, second, third = (
        api_request(sandbox.base_url, "GET", job_path(job_id)) for _ in range(3)
    )
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == str(retry_after)
    assert third.status_code == 200


def test_latency_is_added(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1)
    fault = sandbox.inject("latency", seconds=0.2, count=1)
    started = time.monotonic()
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert fault.fired == 1
    assert fault.exhausted


def test_dropped_connection_then_retry_succeeds(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=20_000)
    sandbox.inject("drop_connection", count=1)
    with pytest.raises(requests.exceptions.RequestException):
        api_request(sandbox.base_url, "GET", job_path(job_id))
    assert len(api_request(sandbox.base_url, "GET", job_path(job_id)).json()["results"]) == 20_000
    assert sandbox.requests[0]["fault"] == "drop_connection"


def test_truncated_body_announces_the_full_length(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1000)
    full = len(api_request(sandbox.base_url, "GET", job_path(job_id)).content)
    sandbox.inject("truncate_body", count=2)
    head, body = raw_get(sandbox, job_id)
    assert f"Content-Length: {full}".encode() in head
    assert 0 < len(body) < full
    with pytest.raises(requests.exceptions.RequestException):
        api_request(sandbox.base_url, "GET", job_path(job_id))
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).status_code == 200


def test_malformed_json(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=5)
    sandbox.inject("malformed_json", count=1)
    response = api_request(sandbox.base_url, "GET", job_path(job_id))
    assert response.status_code == 200
    with pytest.raises(ValueError, match=r".+"):
        json.loads(response.content)
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).json()["total"] == 5


@pytest.mark.parametrize(
    ("kind", "options", "check"),
    [
        ("unexpected_status", {}, lambda body: body["status"] == "queued"),
        ("unexpected_status", {"value": "paused"}, lambda body: body["status"] == "paused"),
        ("missing_fields", {}, lambda body: "status" not in body and "total" not in body),
        ("missing_fields", {"fields": ["results"]}, lambda body: "results" not in body),
        ("results_wrong_type", {}, lambda body: body["results"] == "unavailable"),
        ("results_wrong_type", {"value": {"a": 1}}, lambda body: body["results"] == {"a": 1}),
    ],
)
def test_body_faults(
    sandbox: Sandbox, kind: str, options: dict[str, Any], check: Callable[[Any], bool]
) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=5)
    sandbox.inject(kind, count=1, **options)
    body = api_request(sandbox.base_url, "GET", job_path(job_id)).json()
    assert check(body)
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).json()["status"] == "complete"


def test_results_wrong_type_on_a_processing_job(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=5000, status="processing")
    sandbox.inject("results_wrong_type", value=42)
    body = api_request(sandbox.base_url, "GET", job_path(job_id)).json()
    assert list(body)[:5] == ["job_id", "status", "total", "processed", "results"]
    assert body["results"] == 42


def test_constructor_faults_and_clear(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate_limit=None, faults=[Fault("server_error", count=1, status=502)])
    job_id = sb.add_job(DEMO_TEAM_ID, rows=1)
    sb.inject("server_error")
    assert api_request(sb.base_url, "GET", job_path(job_id)).status_code == 502
    assert api_request(sb.base_url, "GET", job_path(job_id)).status_code == 500
    sb.clear_faults()
    assert api_request(sb.base_url, "GET", job_path(job_id)).status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="unknown fault keys"):
        Fault.from_dict({"kind": "latency", "sleep": 1})
    assert Fault.from_dict({"kind": "rate_limit", "count": 1}).to_dict()["count"] == 1
