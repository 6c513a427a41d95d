"""Baseline: the same two streams written the way a typical singer-sdk tap would be.

A ``RESTStream`` parent with one partition per job reads each snapshot with the
SDK's default request and ``response.json()`` whole-body parse; the child stream
is fed from the parent record and written through the SDK's default per-record
path (default writer, default type conformance). The schemas are the tap's own.

It avoids the two traps the SDK notes call out for this API (results in the
child context; one state partition per child context), so it is a fair
"straightforward" implementation, not a strawman. It does not pace requests.

Run it like any tap: ``python benchmarks/plain_tap.py --config CONFIG.json``.
Config: ``api_url``, ``api_key``, ``team_id``, ``job_ids`` (``TEAM_ID/JOB_ID``).
"""

from __future__ import annotations

import datetime
import typing as t

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import APIKeyAuthenticator
from singer_sdk.streams import RESTStream
from typing_extensions import override

from tap_prism_imports.streams import ImportJobsStream, ImportResultsStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context, Record


class PlainJobsStream(RESTStream[t.Any]):
    name = "import_jobs"
    path = "/v2/prism/{team_id}/imports/{job_id}"
    primary_keys = ("team_id", "job_id")
    replication_key = "fetched_at"
    records_jsonpath = "$"
    schema = ImportJobsStream.schema

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_results: list[dict[str, t.Any]] = []

    @property
    @override
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @property
    @override
    def authenticator(self) -> APIKeyAuthenticator:
        return APIKeyAuthenticator(key="x-api-key", value=str(self.config["api_key"]))

    @property
    @override
    def partitions(self) -> list[dict[str, t.Any]] | None:
        contexts = []
        for ref in self.config.get("job_ids", []):
            team_id, _, job_id = str(ref).rpartition("/")
            contexts.append({"team_id": team_id or self.config["team_id"], "job_id": job_id})
        return contexts

    @override
    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        assert context is not None
        results = row.pop("results", None)
        self.current_results = results if isinstance(results, list) else []
        error = row.get("error") or {}
        return {
            "team_id": context["team_id"],
            "job_id": context["job_id"],
            "status": row["status"],
            "total": row["total"],
            "processed": row.get("processed"),
            "succeeded": row.get("succeeded"),
            "failed": row.get("failed"),
            "error_code": error.get("code"),
            "error_message": error.get("message"),
            "created_at": row.get("created_at"),
            "updated_at": row.get("updated_at"),
            "expires_at": row.get("expires_at"),
            "results_count": len(results) if isinstance(results, list) else None,
            "fetched_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }

    @override
    def generate_child_contexts(
        self, record: Record, context: Context | None
    ) -> Iterable[Context | None]:
        yield {
            "team_id": record["team_id"],
            "job_id": record["job_id"],
            "fetched_at": record["fetched_at"],
        }


class PlainResultsStream(Stream):
    name = "import_results"
    parent_stream_type = PlainJobsStream
    primary_keys = ("team_id", "job_id", "row_index")
    replication_key = "fetched_at"
    state_partitioning_keys = ()
    schema = ImportResultsStream.schema

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        assert context is not None
        parent = t.cast("PlainJobsStream", self._tap.streams["import_jobs"])
        for index, result in enumerate(parent.current_results):
            error = result.get("error")
            created, existing = result.get("created"), result.get("existing")
            if error:
                outcome = "failed"
            elif created:
                outcome = "created"
            elif existing:
                outcome = "existing"
            else:
                outcome = None
            yield {
                "team_id": context["team_id"],
                "job_id": context["job_id"],
                "row_index": index,
                "record_id": result.get("id"),
                "outcome": outcome,
                "created": created,
                "existing": existing,
                "error_code": error.get("code") if isinstance(error, dict) else None,
                "error_message": error.get("message") if isinstance(error, dict) else None,
                "fetched_at": context["fetched_at"],
            }
        parent.current_results = []


class PlainTap(Tap):
    name = "tap-prism-imports-plain"
    config_jsonschema = th.PropertiesList(
        th.Property("api_url", th.StringType, required=True),
        th.Property("api_key", th.StringType, required=True, secret=True),
        th.Property("team_id", th.StringType),
        th.Property("job_ids", th.ArrayType(th.StringType), default=[]),
    ).to_dict()

    @override
    def discover_streams(self) -> list[Stream]:
        return [PlainJobsStream(self), PlainResultsStream(self)]


if __name__ == "__main__":
    PlainTap.cli()
