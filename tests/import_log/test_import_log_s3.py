"""The import log read from S3: an S3-compatible server on loopback, reached over HTTP."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from helpers.log_reading import read_log

from tap_prism_imports.import_log.keys import read_input_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

boto3 = pytest.importorskip("boto3")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

TEAM = "5eed0d3e-0000-4000-8000-000000000001"
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
BUCKET = "pipeline-logs"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Only the standard AWS variables: what a user sets for any S3-compatible store.
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield endpoint
    server.stop()


def put(client: Any, key: str, *entries: dict[str, Any]) -> None:
    body = b"".join(orjson.dumps(item) + b"\n" for item in entries)
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


def line(status: int, response: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "team_id": TEAM,
        "object_type": "contact",
        "submitted_at": "2026-11-21T10:00:00Z",
        "http_status": status,
        "location": None,
        "idempotency_key": None,
        "response": response,
        **fields,
    }


def test_reads_a_glob_of_s3_objects_once_across_runs(s3_endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    sync = {
        "job_id": None,
        "status": "complete",
        "total": 1,
        "results": [{"id": None, "created": False, "existing": False, "error": "bad email"}],
    }
    started = {"job_id": "job_1", "status": "processing", "total": 500}
    put(client, "prism/2026-11-20.jsonl", line(200, sync, input_keys=["row-1"]))
    put(
        client,
        "prism/2026-11-21.jsonl",
        line(202, started, location=f"/v2/prism/{TEAM}/imports/job_1", input_keys=["a", "b"]),
    )
    put(client, "other/ignored.jsonl", line(400, {"message": "no"}))

    spec = f"s3://{BUCKET}/prism/*.jsonl"
    state: dict[str, Any] = {}
    with read_log(spec, state, NOW) as batch:
        assert batch.errors == []
        assert batch.warnings == []
        (sync_import,) = batch.imports
        assert sync_import.where == f"s3://{BUCKET}/prism/2026-11-20.jsonl:1"
        assert sync_import.record["status"] == "complete"
        assert sync_import.results is not None
        (row,) = (orjson.loads(data) for data in sync_import.results.lines())
        assert (row["source_key"], row["error_message"]) == ("row-1", "bad email")
        (ref,) = batch.refs
        assert ref.ref.key == f"{TEAM}/job_1"
        assert ref.input_keys_at is not None
        assert read_input_keys(ref.input_keys_at.to_state(), ref.ref).keys == ["a", "b"]
        batch.confirm(sync_import)
        batch.confirm(ref)

    assert set(state["files"]) == {
        f"s3://{BUCKET}/prism/2026-11-20.jsonl",
        f"s3://{BUCKET}/prism/2026-11-21.jsonl",
    }
    # S3 objects are replaced whole, never appended: a new version that keeps the old
    # one's lines is read on from where the old one stopped.
    put(
        client,
        "prism/2026-11-21.jsonl",
        line(202, started, location=f"/v2/prism/{TEAM}/imports/job_1", input_keys=["a", "b"]),
        line(409, {"message": "Idempotency-Key was already used"}, idempotency_key="k"),
    )
    with read_log(spec, state, NOW) as batch:
        assert [item.record["error_code"] for item in batch.imports] == ["http_409"]
        assert batch.refs == []


def test_an_s3_path_that_does_not_exist_is_a_configuration_error(s3_endpoint: str) -> None:
    from singer_sdk.exceptions import ConfigValidationError  # noqa: PLC0415

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=BUCKET)
    with pytest.raises(ConfigValidationError, match="`import_log`"):
        read_log(f"s3://{BUCKET}/missing.jsonl", {}, NOW)
