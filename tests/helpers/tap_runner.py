"""Run the tap as a scheduler would (in-process, or as a command), and read what it wrote."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox
from tap_prism_imports.tap import TapPrismImports

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def new_sandbox(**settings: t.Any) -> Sandbox:
    """The tests' sandbox, not started: the demo key and team, no rate limit.

    ``settings`` are ``Sandbox``'s own keyword arguments, to change any of that.
    """
    defaults: dict[str, t.Any] = {
        "api_keys": [DEMO_API_KEY],
        "team_ids": [DEMO_TEAM_ID],
        "rate_limit": None,
    }
    return Sandbox(**{**defaults, **settings})


@dataclass
class TapRun:
    """The Singer messages of one run, and what it logged."""

    messages: list[dict[str, t.Any]]
    logs: str
    error: BaseException | None = None
    requests: list[dict[str, t.Any]] = field(default_factory=list)
    #: stdout as written, one string per line.
    lines: list[str] = field(default_factory=list)

    def records(self, stream: str) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def jobs(self) -> list[dict[str, t.Any]]:
        return self.records("import_jobs")

    @property
    def results(self) -> list[dict[str, t.Any]]:
        return self.records("import_results")

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def state(self) -> dict[str, t.Any]:
        """The last STATE: what the next run starts from."""
        return self.states[-1] if self.states else {}

    def ledger(self) -> dict[str, dict[str, t.Any]]:
        jobs: dict[str, dict[str, t.Any]] = self.state["bookmarks"]["import_jobs"]["jobs"]
        return jobs


def tap_config(sandbox: Sandbox, job_ids: list[str], **settings: t.Any) -> dict[str, t.Any]:
    return {"api_key": sandbox.api_key, "api_url": sandbox.base_url, "job_ids": job_ids, **settings}


def run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    *,
    sandbox: Sandbox | None = None,
    catalog: dict[str, t.Any] | None = None,
    customize: Callable[[TapPrismImports], None] | None = None,
) -> TapRun:
    """Sync all streams; an exception is kept in ``error`` with what was written before it.

    ``customize`` is called with the tap after it is built, before it syncs.
    """
    if sandbox is not None:
        sandbox.clear_requests()
    stdout, logs = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logs)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    error: BaseException | None = None
    try:
        with contextlib.redirect_stdout(stdout):
            try:
                tap = TapPrismImports(config=config, state=state, catalog=catalog)
                if customize is not None:
                    customize(tap)
                tap.sync_all()
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                error = exc
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stdout.getvalue().splitlines()
    messages = [json.loads(line) for line in lines]
    requests = sandbox.requests if sandbox is not None else []
    return TapRun(messages, logs.getvalue(), error, requests, lines)


def job_requests(run: TapRun) -> list[str]:
    """The job ids requested in a run, in request order."""
    return [r["job_id"] for r in run.requests if r.get("job_id")]


def cli_command(
    tmp_path: Path, config: dict[str, t.Any], state: dict[str, t.Any] | None
) -> list[str]:
    """The tap's command line for ``config`` (and ``state``), written to files in tmp_path."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    command = [sys.executable, "-m", "tap_prism_imports.tap", "--config", str(config_path)]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state), encoding="utf-8")
        command += ["--state", str(state_path)]
    return command


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without the official SDK's variables (they would set a key or URL)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    return {**environment, **(extra or {})}


def run_cli(
    tmp_path: Path,
    config: dict[str, t.Any],
    *args: str,
    state: dict[str, t.Any] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_command(tmp_path, config, state), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=cli_env(env),
    )


def singer_messages(stdout: str) -> list[dict[str, t.Any]]:
    return [json.loads(line) for line in stdout.splitlines()]
