"""The sandbox's Prism Imports API over real HTTP: imports, snapshots, auth, limits, log."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest
import requests
from helpers.api_requests import api_request, job_path

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
OTHER_TEAM = "0a1b2c3d-0000-4000-8000-00000000abcd"


def import_path(object_type: str = "contact", team: str = DEMO_TEAM_ID) -> str:
    return f"/v2/prism/{team}/{object_type}/import"


def contacts(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"default": {"email": f"user{start + i}@example.com"}} for i in range(count)]


# ---------------------------------------------------------------- imports


def test_small_import_is_synchronous_with_outcomes_from_rows(sandbox: Sandbox) -> None:
    rows = [
        {"default": {"email": "ada@example.com", "name": "Ada"}},
        {"default": {"email": "ADA@example.com"}},  # same email, other case: existing
        {"default": {"email": "not-an-email"}},
        {"default": {"phone": "+15550000"}},  # neither email nor name
        {"default": {"name": "Grace"}},
    ]
    options = {"dedupe_by": "email", "caseInsensitive": True}
    response = api_request(
        sandbox.base_url, "POST", import_path(), body={"objects": rows, "options": options}
    )
    assert response.status_code == 200
    assert "Location" not in response.headers
    body = response.json()
    assert list(body) == [
        "job_id", "status", "total", "processed", "results", "succeeded", "failed",
        "created_at", "updated_at",
    ]  # fmt: skip
    assert body["job_id"] is None
    assert body["status"] == "complete"
    assert (body["total"], body["processed"], body["succeeded"], body["failed"]) == (5, 5, 3, 2)
    first, duplicate, bad_email, missing, grace = body["results"]
    assert first["created"] is True
    assert first["existing"] is False
    assert first["error"] is None
    assert uuid.UUID(first["id"])
    assert duplicate == {"id": first["id"], "created": False, "existing": True, "error": None}
    assert bad_email == {
        "id": None,
        "created": False,
        "existing": False,
        "error": {"code": "validation_error", "message": "email is invalid"},
    }
    assert missing["error"]["code"] == "missing_required_property"
    assert missing["id"] is None
    assert grace["created"] is True
    assert grace["id"] != first["id"]
    assert TIME.fullmatch(body["created_at"])


@pytest.mark.parametrize(
    ("object_type", "good", "bad"),
    [
        ("contact", {"name": "A"}, {"phone": "1"}),
        ("organization", {"domain": "a.example"}, {"industry": "x"}),
        ("deal", {"name": "D"}, {"amount": 5}),
        ("document", {"title": "T"}, {"name": "no title"}),
        ("engagement", {"type": "call"}, {"title": "x"}),
        ("action", {"title": "Call back"}, {"name": "x"}),
        ("identity", {"value": "abc"}, {"type": "email"}),
    ],
)
def test_required_properties_per_object_type(
    sandbox: Sandbox, object_type: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    body = {"objects": [{"default": good}, {"default": bad}, {"default": {**good, "email": "x@"}}]}
    result = api_request(sandbox.base_url, "POST", import_path(object_type), body=body).json()[
        "results"
    ]
    assert result[0]["created"] is True
    assert result[1]["error"]["code"] == "missing_required_property"
    assert result[2]["error"] == {"code": "validation_error", "message": "email is invalid"}


def test_dedupe_across_imports_and_case_sensitivity(sandbox: Sandbox) -> None:
    first = sandbox.submit_import(
        DEMO_TEAM_ID, "contact", [{"default": {"email": "x@example.com"}}]
    )
    record_id = first.json()["results"][0]["id"]
    rows = [{"default": {"email": "X@example.com"}}, {"default": {"email": "x@example.com"}}]
    exact = sandbox.submit_import(DEMO_TEAM_ID, "contact", rows, {"dedupe_by": "email"}).json()
    assert exact["results"][0]["created"] is True  # case differs, dedupe is case-sensitive
    assert exact["results"][1] == {
        "id": record_id,
        "created": False,
        "existing": True,
        "error": None,
    }
    other_type = sandbox.submit_import(
        DEMO_TEAM_ID, "identity", [{"default": {"value": "v", "email": "x@example.com"}}],
        {"dedupe_by": "email"},
    ).json()  # fmt: skip
    assert other_type["results"][0]["created"] is True  # records are per object type
    no_dedupe = sandbox.submit_import(DEMO_TEAM_ID, "contact", rows[1:]).json()
    assert no_dedupe["results"][0]["created"] is True


def test_record_ids_are_deterministic() -> None:
    def run() -> list[Any]:
        with Sandbox(rate_limit=None) as sb:
            rows = [*contacts(3), {"default": {"email": "USER0@example.com"}}]
            options = {"dedupe_by": "email", "caseInsensitive": True}
            response = sb.submit_import(DEMO_TEAM_ID, "contact", rows, options)
            return [row["id"] for row in response.json()["results"]]

    first, second = run(), run()
    assert first == second
    assert first[3] == first[0]


def test_large_import_is_async_and_progresses_with_the_clock(sandbox: Sandbox) -> None:
    rows = contacts(250)
    rows[10] = {"default": {"email": "broken"}}
    rows[200] = {"default": {"email": "user5@example.com"}}
    body = {"objects": rows, "options": {"dedupe_by": "email"}}
    response = api_request(sandbox.base_url, "POST", import_path(), body=body)
    assert response.status_code == 202
    started = response.json()
    assert started["status"] == "processing"
    assert started["processed"] == 0
    assert "results" not in started
    job_id = started["job_id"]
    assert re.fullmatch(r"job_[0-9a-f]{24}", job_id)
    assert response.headers["Location"] == job_path(job_id)

    sandbox.advance_clock(1.0)
    middle = api_request(sandbox.base_url, "GET", job_path(job_id)).json()
    assert middle["status"] == "processing"
    assert 100 <= middle["processed"] < 250
    assert middle["succeeded"] + middle["failed"] == middle["processed"]
    assert middle["failed"] == 1
    assert "results" not in middle

    sandbox.advance_clock(2.0)
    done = api_request(sandbox.base_url, "GET", job_path(job_id))
    snapshot = done.json()
    assert list(snapshot) == [
        "job_id", "status", "total", "processed", "results", "succeeded", "failed",
        "created_at", "updated_at", "expires_at",
    ]  # fmt: skip
    assert snapshot["status"] == "complete"
    assert (snapshot["processed"], snapshot["succeeded"], snapshot["failed"]) == (250, 249, 1)
    results = snapshot["results"]
    assert len(results) == 250
    assert results[10]["error"]["code"] == "validation_error"
    assert results[200] == {**results[5], "created": False, "existing": True}
    for value in (snapshot["created_at"], snapshot["updated_at"], snapshot["expires_at"]):
        assert TIME.fullmatch(value)
    created = datetime.fromisoformat(snapshot["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(snapshot["expires_at"].replace("Z", "+00:00"))
    assert (expires - created).days == 7


def test_sync_threshold_and_rate_are_configurable(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate_limit=None, sync_threshold=5, rows_per_second=1000)
    assert sb.submit_import(DEMO_TEAM_ID, "contact", contacts(5)).status == 200
    started = sb.submit_import(DEMO_TEAM_ID, "contact", contacts(6, 10))
    assert started.status == 202
    sb.advance_clock(0.01)
    assert sb.snapshot(started.json()["job_id"])["status"] == "complete"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (import_path("event"), {"objects": contacts(1)}, "unknown object type"),
        (import_path(), {"objects": []}, "objects must be a non-empty array"),
        (import_path(), {"rows": []}, "objects must be a non-empty array"),
        (import_path(), ["not", "an", "object"], "request body must be a JSON object"),
        (import_path(), {"objects": ["x"]}, "objects[0] must be an object"),
        (import_path(), {"objects": [{"default": [1]}]}, "objects[0].default"),
        (import_path(), {"objects": contacts(1), "options": []}, "options must be an object"),
        (import_path(), {"objects": contacts(1), "options": {"list_id": "x"}}, "list_id"),
        (import_path(), {"objects": contacts(1), "options": {"caseInsensitive": "y"}}, "case"),
    ],
)
def test_malformed_imports_are_400(sandbox: Sandbox, path: str, body: Any, message: str) -> None:
    response = api_request(sandbox.base_url, "POST", path, body=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_invalid_json_body_is_400(sandbox: Sandbox) -> None:
    with requests.Session() as session:
        response = session.post(
            sandbox.base_url + import_path(),
            data=b"{nope",
            headers={"x-api-key": DEMO_API_KEY},
            timeout=10,
        )
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


def test_options_list_id_and_extra_row_keys_are_accepted(sandbox: Sandbox) -> None:
    body = {
        "objects": [{"default": {"name": "A"}, "list": {"x": 1}}],
        "options": {"list_id": str(uuid.uuid4()), "dedupe_by": "email", "caseInsensitive": False},
    }
    assert api_request(sandbox.base_url, "POST", import_path(), body=body).status_code == 200


# ---------------------------------------------------------------- idempotency


def test_idempotency_key_replays_and_detects_mismatch(sandbox: Sandbox) -> None:
    body = {"objects": contacts(150)}
    key = {"Idempotency-Key": "batch-1"}
    first = api_request(sandbox.base_url, "POST", import_path(), body=body, headers=key)
    assert first.status_code == 202
    assert "idempotent-replay" not in first.headers
    sandbox.advance_clock(3600)
    replay = api_request(sandbox.base_url, "POST", import_path(), body=body, headers=key)
    assert replay.status_code == 202
    assert replay.headers["idempotent-replay"] == "true"
    assert replay.content == first.content
    assert replay.headers["Location"] == first.headers["Location"]
    assert len(sandbox.job_ids()) == 1

    mismatch = api_request(
        sandbox.base_url, "POST", import_path(), body={"objects": contacts(2)}, headers=key
    )
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "idempotency_key_mismatch"
    assert "message" in mismatch.json()

    sandbox.advance_clock(24 * 3600)
    fresh = api_request(sandbox.base_url, "POST", import_path(), body=body, headers=key)
    assert "idempotent-replay" not in fresh.headers
    assert fresh.json()["job_id"] != first.json()["job_id"]


def test_idempotency_key_length_is_validated(sandbox: Sandbox) -> None:
    body = {"objects": contacts(1)}
    too_long = api_request(
        sandbox.base_url, "POST", import_path(), body=body, headers={"Idempotency-Key": "k" * 256}
    )
    assert too_long.status_code == 400
    just_right = sandbox.submit_import(
        DEMO_TEAM_ID, "contact", contacts(1), idempotency_key="k" * 255
    )
    assert just_right.status == 200
    replay = sandbox.submit_import(DEMO_TEAM_ID, "contact", contacts(1), idempotency_key="k" * 255)
    assert replay.headers["idempotent-replay"] == "true"


# ---------------------------------------------------------------- snapshots


def test_unknown_job_is_404_and_jobs_are_per_team(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate_limit=None, team_ids=[DEMO_TEAM_ID, OTHER_TEAM])
    job_id = sb.add_job(DEMO_TEAM_ID, rows=3)
    missing = api_request(sb.base_url, "GET", job_path("job_unknown"))
    assert missing.status_code == 404
    assert set(missing.json()) == {"message"}
    assert api_request(sb.base_url, "GET", job_path(job_id, OTHER_TEAM)).status_code == 404
    assert (
        api_request(sb.base_url, "GET", job_path(job_id, DEMO_TEAM_ID.upper())).status_code == 200
    )


def test_jobs_expire_after_seven_days(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=10)
    sandbox.advance_clock(7 * 24 * 3600 - 60)
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).status_code == 200
    sandbox.advance_clock(60)
    assert api_request(sandbox.base_url, "GET", job_path(job_id)).status_code == 404


def test_add_job_mix_and_statuses(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=200_000, failed_every=10, existing_every=4)
    with requests.Session() as session:
        response = session.get(
            sandbox.base_url + job_path(job_id), headers={"x-api-key": DEMO_API_KEY}, timeout=30
        )
        snapshot = response.json()
    results = snapshot["results"]
    assert len(results) == snapshot["total"] == 200_000
    assert snapshot["failed"] == sum(1 for r in results if r["error"]) == 20_000
    assert snapshot["succeeded"] == 180_000
    assert sum(1 for r in results if r["existing"]) == 200_000 // 4 - 200_000 // 20
    assert results[9]["error"] is not None
    assert results[3]["existing"] is True
    assert uuid.UUID(results[3]["id"])
    assert len({r["id"] for r in results if r["created"]}) == sum(
        1 for r in results if r["created"]
    )

    processing = sandbox.add_job(DEMO_TEAM_ID, rows=1000, status="processing")
    assert sandbox.snapshot(processing)["status"] == "processing"
    sandbox.complete_job(processing)
    assert sandbox.snapshot(processing)["status"] == "complete"
    sandbox.fail_job(processing, "boom", "it broke")
    failed = sandbox.snapshot(processing)
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "boom", "message": "it broke"}
    assert "results" not in failed

    failed_job = sandbox.add_job(DEMO_TEAM_ID, rows=5, status="failed", job_id="job_custom")
    assert failed_job == "job_custom"
    assert sandbox.snapshot("job_custom")["error"]["code"] == "internal_error"


def test_add_job_backdated_creation() -> None:
    created = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with Sandbox(rate_limit=None, start_time=datetime(2020, 1, 2, tzinfo=timezone.utc)) as sb:
        job_id = sb.add_job(DEMO_TEAM_ID, rows=2, created_at=created)
        assert sb.snapshot(job_id)["created_at"] == "2020-01-01T00:00:00.000Z"
        assert sb.snapshot(job_id)["expires_at"] == "2020-01-08T00:00:00.000Z"


def test_complete_snapshot_bytes_are_cached(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1000)
    job = sandbox.job(job_id)
    now = sandbox.clock.now()
    first = job.snapshot(now)[1]
    assert job.snapshot(now + 10)[1] is first
    sandbox.fail_job(job_id)
    assert job.snapshot(sandbox.clock.now())[1] is not first


def test_keep_alive_reuses_one_connection(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=50_000)
    with requests.Session() as session:
        for _ in range(5):
            response = session.get(
                sandbox.base_url + job_path(job_id),
                headers={"x-api-key": DEMO_API_KEY},
                timeout=30,
            )
            assert response.status_code == 200
            assert len(response.json()["results"]) == 50_000
    assert sandbox.connections_accepted == 1


# ---------------------------------------------------------------- auth


def test_missing_key_is_401_and_unknown_key_403(sandbox: Sandbox) -> None:
    job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1)
    missing = api_request(sandbox.base_url, "GET", job_path(job_id), key=None)
    assert missing.status_code == 401
    assert set(missing.json()) == {"message"}
    wrong = api_request(sandbox.base_url, "GET", job_path(job_id), key="nope")
    assert wrong.status_code == 403
    assert set(wrong.json()) == {"message"}
    assert api_request(sandbox.base_url, "GET", job_path(job_id, OTHER_TEAM)).status_code == 403
    assert (
        api_request(
            sandbox.base_url, "POST", import_path(team=OTHER_TEAM), body={"objects": []}
        ).status_code
        == 403
    )


def test_keys_may_be_restricted_to_teams(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(
        rate_limit=None,
        api_keys={"all-teams": None, "one-team": [OTHER_TEAM]},
        team_ids=[DEMO_TEAM_ID],
    )
    assert sb.team_ids == [DEMO_TEAM_ID, OTHER_TEAM]
    mine = sb.add_job(DEMO_TEAM_ID, rows=1)
    theirs = sb.add_job(OTHER_TEAM, rows=1)
    assert api_request(sb.base_url, "GET", job_path(mine), key="all-teams").status_code == 200
    assert (
        api_request(sb.base_url, "GET", job_path(theirs, OTHER_TEAM), key="all-teams").status_code
        == 200
    )
    assert (
        api_request(sb.base_url, "GET", job_path(theirs, OTHER_TEAM), key="one-team").status_code
        == 200
    )
    assert api_request(sb.base_url, "GET", job_path(mine), key="one-team").status_code == 403
    assert api_request(sb.base_url, "GET", job_path(mine), key=DEMO_API_KEY).status_code == 403


def test_defaults_are_the_demo_key_and_team() -> None:
    sb = Sandbox()
    assert sb.api_keys == [DEMO_API_KEY]
    assert sb.team_ids == [DEMO_TEAM_ID]
    assert uuid.UUID(DEMO_TEAM_ID)


def test_unknown_routes(sandbox: Sandbox) -> None:
    assert api_request(sandbox.base_url, "GET", "/v2/prism/x").status_code == 404
    assert api_request(sandbox.base_url, "DELETE", job_path("job_x")).status_code == 405
    assert api_request(sandbox.base_url, "GET", import_path()).status_code == 405


# ---------------------------------------------------------------- rate limits


def test_rate_limit_per_key_with_retry_after(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(start_time=1_800_000_000.0, api_keys=["a", "b"])
    job_id = sb.add_job(DEMO_TEAM_ID, rows=1)
    statuses = [
        api_request(sb.base_url, "GET", job_path(job_id), key="a").status_code for _ in range(10)
    ]
    assert statuses == [200] * 10
    limited = api_request(sb.base_url, "GET", job_path(job_id), key="a")
    assert limited.status_code == 429
    retry_after = limited.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert set(limited.json()) == {"message"}
    assert api_request(sb.base_url, "GET", job_path(job_id), key="b").status_code == 200  # per key
    sb.advance_clock(1.0)
    assert api_request(sb.base_url, "GET", job_path(job_id), key="a").status_code == 200


def test_rate_limit_configurable_and_disabled(make_sandbox: Callable[..., Sandbox]) -> None:
    sb = make_sandbox(rate_limit=1, burst=2)
    job_id = sb.add_job(DEMO_TEAM_ID, rows=1)
    codes = [api_request(sb.base_url, "GET", job_path(job_id)).status_code for _ in range(3)]
    assert codes[:2] == [200, 200]
    assert codes[2] == 429
    off = make_sandbox(rate_limit=None)
    other = off.add_job(DEMO_TEAM_ID, rows=1)
    assert {api_request(off.base_url, "GET", job_path(other)).status_code for _ in range(30)} == {
        200
    }


def test_monthly_quota_resets_when_the_month_rolls_over(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    start = datetime(2026, 1, 31, 23, 0, tzinfo=timezone.utc)
    sb = make_sandbox(rate_limit=None, monthly_quota=3, start_time=start)
    job_id = sb.add_job(DEMO_TEAM_ID, rows=1)
    assert [api_request(sb.base_url, "GET", job_path(job_id)).status_code for _ in range(3)] == [
        200
    ] * 3
    over = api_request(sb.base_url, "GET", job_path(job_id))
    assert over.status_code == 429
    assert 3000 <= int(over.headers["Retry-After"]) <= 3600
    sb.advance_clock(3600)
    assert api_request(sb.base_url, "GET", job_path(job_id)).status_code == 200


# ---------------------------------------------------------------- request log


def test_request_log_in_memory_and_file(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    sb = make_sandbox(rate_limit=None, request_log=log)
    job_id = sb.add_job(DEMO_TEAM_ID, rows=4)
    api_request(sb.base_url, "GET", job_path(job_id))
    api_request(sb.base_url, "GET", job_path("job_missing"))
    api_request(sb.base_url, "POST", import_path(), body={"objects": contacts(2)})
    api_request(sb.base_url, "GET", "/_sandbox/requests")  # control requests are not logged
    entries = sb.requests
    assert [(e["method"], e["status"]) for e in entries] == [
        ("GET", 200),
        ("GET", 404),
        ("POST", 200),
    ]
    first = entries[0]
    assert first["job_id"] == job_id
    assert first["team_id"] == DEMO_TEAM_ID
    assert first["path"] == job_path(job_id)
    assert first["bytes"] > 100
    assert first["fault"] is None
    assert first["user_agent"].startswith("python-requests/")
    assert TIME.fullmatch(first["time"])
    sb.stop()
    text = log.read_text()
    assert DEMO_API_KEY not in text
    assert [json.loads(line) for line in text.splitlines()] == entries
    sb.clear_requests()
    assert sb.requests == []
