"""Shared pytest fixtures: an in-process Prism Imports sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from helpers.pipeline_helpers import Postgres, postgres_server, require_plugin
from helpers.tap_runner import new_sandbox

from prism_sandbox import Sandbox

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started in-process sandbox, stopped after the test.

    Defaults: API key ``DEMO_API_KEY`` with access to team ``DEMO_TEAM_ID`` (also
    ``sandbox.api_key`` / ``sandbox.team_id``), rate limiting OFF, no monthly quota, no
    faults, no seeded jobs, sync threshold 100 rows, async jobs progress 100 rows/s on the
    sandbox clock (move it with ``sandbox.advance_clock(seconds)``). Base URL:
    ``sandbox.base_url``. Tests that need other settings use ``make_sandbox``.
    """
    with new_sandbox() as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory: ``make_sandbox(**Sandbox kwargs)`` returns a started sandbox.

    Every sandbox it made is stopped after the test. Unlike ``sandbox``, the keyword
    arguments are ``Sandbox``'s own defaults (rate limit 10 req/s, burst 10) unless given.
    """
    started: list[Sandbox] = []

    def factory(**kwargs: Any) -> Sandbox:
        sb = Sandbox(**kwargs).start()
        started.append(sb)
        return sb

    yield factory
    for sb in started:
        sb.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL server for the pipeline tests of one module.

    Its TimeZone is America/New_York, so a timestamp stored in local time instead of UTC
    would show. Skips (or fails, with ``PIPELINE_TESTS=required``) when the server
    binaries or the Meltano plugins are missing.
    """
    require_plugin("loaders", "target-postgres")
    require_plugin("extractors", "tap-prism-imports")
    with postgres_server(timezone="America/New_York") as server:
        yield server
