"""The SDK's standard tap tests: discovery, sync, schema and record conformance."""

from __future__ import annotations

import typing as t

import pytest
from helpers.tap_runner import new_sandbox
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID
from tap_prism_imports.tap import TapPrismImports

if t.TYPE_CHECKING:
    from collections.abc import Iterator

# get_tap_test_class fixes its config when the class is defined, so the server
# must already serve at import time; the module fixture below stops it.
_SANDBOX = new_sandbox().start()
_JOBS = [
    _SANDBOX.add_job(rows=250, failed_every=7, existing_every=3),
    _SANDBOX.add_job(rows=40, status="processing"),
    _SANDBOX.add_job(rows=10, status="failed"),
]

SAMPLE_CONFIG = {
    "api_key": DEMO_API_KEY,
    "api_url": _SANDBOX.base_url,
    "team_id": DEMO_TEAM_ID,
    "job_ids": _JOBS,
}


@pytest.fixture(scope="module", autouse=True)
def _serve_sandbox() -> Iterator[None]:
    yield
    _SANDBOX.stop()


TestTapPrismImports = get_tap_test_class(
    tap_class=TapPrismImports,
    config=SAMPLE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)
