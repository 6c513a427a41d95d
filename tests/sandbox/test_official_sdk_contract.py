"""Contract: the official SDK, generated from the real OpenAPI spec, talks to the sandbox.

If the sandbox's request handling or response shapes drifted from the real API, the
official client's typed models (with strict response validation) or its error classes
would reject them here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox, seed_demo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

micro_so = pytest.importorskip("micro_so")


def make_client(sb: Sandbox, *, api_key: str = DEMO_API_KEY, team_id: str = DEMO_TEAM_ID) -> Any:
    return micro_so.Micro(
        api_key=api_key,
        team_id=team_id,
        base_url=sb.base_url,
        max_retries=0,
        timeout=30,
        _strict_response_validation=True,
    )


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[Any]:
    with make_client(sandbox) as sdk:
        yield sdk


def test_sync_import_parses_into_the_sdk_model(client: Any, sandbox: Sandbox) -> None:
    response = client.prism.objects.contacts.bulk_create(
        objects=[
            {"default": {"email": "ada@example.com", "name": "Ada"}},
            {"default": {"email": "ADA@EXAMPLE.COM"}},
            {"default": {"email": "nope"}},
        ],
        options={"dedupe_by": "email", "case_insensitive": True},
    )
    assert response.job_id is None
    assert response.status == "complete"
    assert response.total == 3
    assert response.succeeded == 2
    assert response.failed == 1
    assert response.created_at is not None
    created, existing, failed = response.results
    assert created.created is True
    assert existing.existing is True
    assert existing.id == created.id
    assert failed.error is not None
    assert failed.error.code == "validation_error"
    assert failed.id is None
    # The SDK sent the alias: the case-insensitive dedupe worked.
    assert sandbox.requests[-1]["status"] == 200


@pytest.mark.parametrize(
    ("resource", "properties"),
    [
        ("contacts", {"name": "N"}),
        ("organizations", {"name": "N"}),
        ("identities", {"value": "v"}),
        ("deals", {"name": "N"}),
        ("actions", {"title": "T"}),
        ("documents", {"title": "T"}),
        ("engagements", {"type": "call"}),
    ],
)
def test_every_import_endpoint(client: Any, resource: str, properties: dict[str, Any]) -> None:
    endpoint = getattr(client.prism.objects, resource)
    response = endpoint.bulk_create(objects=[{"default": properties}])
    assert response.status == "complete"
    assert response.results[0].created is True


def test_async_import_then_poll(client: Any, sandbox: Sandbox) -> None:
    raw = client.prism.objects.contacts.with_raw_response.bulk_create(
        objects=[{"default": {"email": f"u{i}@example.com"}} for i in range(150)],
        options={"dedupe_by": "email", "list_id": "6f1c2a3b-0000-4000-8000-000000000001"},
        idempotency_key="contract-1",
    )
    assert raw.status_code == 202
    started = raw.parse()
    assert started.status == "processing"
    assert started.results is None
    assert raw.headers["location"] == f"/v2/prism/{DEMO_TEAM_ID}/imports/{started.job_id}"

    polled = client.prism.imports.get(started.job_id)
    assert polled.status == "processing"
    assert polled.total == 150

    sandbox.advance_clock(10)
    done = client.prism.imports.get(started.job_id)
    assert done.status == "complete"
    assert done.job_id == started.job_id
    assert len(done.results) == 150
    assert all(result.created for result in done.results)
    assert done.expires_at is not None
    assert done.updated_at is not None


def test_seeded_and_synthetic_jobs_parse(client: Any, sandbox: Sandbox) -> None:
    refs = seed_demo(sandbox)
    statuses = [client.prism.imports.get(ref.split("/")[1]).status for ref in refs[:5]]
    assert statuses == ["complete", "complete", "complete", "processing", "failed"]
    failed = client.prism.imports.get(refs[4].split("/")[1])
    assert failed.error is not None
    assert failed.error.code == "import_aborted"
    big = client.prism.imports.get(sandbox.add_job(DEMO_TEAM_ID, rows=10_000))
    assert len(big.results) == 10_000


def test_errors_map_to_the_sdk_exceptions(
    sandbox: Sandbox, make_sandbox: Callable[..., Sandbox]
) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1)
    with make_client(sandbox) as sdk:
        with pytest.raises(micro_so.AuthenticationError):
            sdk.prism.imports.get(job_id, extra_headers={"x-api-key": micro_so.Omit()})
        with pytest.raises(micro_so.NotFoundError):
            sdk.prism.imports.get("job_does_not_exist")
        with pytest.raises(micro_so.BadRequestError):
            sdk.prism.objects.contacts.bulk_create(objects=[])
        sdk.prism.objects.contacts.bulk_create(
            objects=[{"default": {"name": "a"}}], idempotency_key="k"
        )
        with pytest.raises(micro_so.ConflictError):
            sdk.prism.objects.contacts.bulk_create(
                objects=[{"default": {"name": "b"}}], idempotency_key="k"
            )
        sandbox.inject("rate_limit", count=1, retry_after=2)
        with pytest.raises(micro_so.RateLimitError) as throttled:
            sdk.prism.imports.get(job_id)
        assert throttled.value.response.headers["retry-after"] == "2"
        sandbox.inject("server_error", count=1)
        with pytest.raises(micro_so.InternalServerError):
            sdk.prism.imports.get(job_id)
    with (
        make_client(sandbox, api_key="revoked") as sdk,
        pytest.raises(micro_so.PermissionDeniedError),
    ):
        sdk.prism.imports.get(job_id)
    other_team = "0a1b2c3d-0000-4000-8000-00000000abcd"
    with (
        make_client(sandbox, team_id=other_team) as sdk,
        pytest.raises(micro_so.PermissionDeniedError),
    ):
        sdk.prism.imports.get(job_id)

    limited = make_sandbox(rate_limit=1, burst=1)
    with make_client(limited) as sdk:
        with pytest.raises(micro_so.NotFoundError):
            sdk.prism.imports.get("job_x")
        with pytest.raises(micro_so.RateLimitError):
            sdk.prism.imports.get("job_x")


def test_sdk_retries_recover_from_injected_faults(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=10)
    sandbox.inject("server_error", count=1)
    sandbox.inject("rate_limit", count=1, retry_after=0)
    with micro_so.Micro(
        api_key=DEMO_API_KEY,
        team_id=DEMO_TEAM_ID,
        base_url=sandbox.base_url,
        max_retries=3,
        _strict_response_validation=True,
    ) as sdk:
        assert sdk.prism.imports.get(job_id).status == "complete"
    assert [entry["status"] for entry in sandbox.requests] == [500, 429, 200]
