"""What a 404 costs in requests under an hourly and a daily schedule.

``python benchmarks/not_found_cost.py [--days 10]``

Each case runs the tap in-process against the offline sandbox, once per scheduled
run over ``--days`` days, on a simulated clock (the sandbox's and the tap's), keeping
state between runs as Meltano does. It counts the requests each case spends on the
job(s) that answer 404; the API's quota is 1,000 requests a month.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import tempfile
import typing as t
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox
from tap_prism_imports.tap import TapPrismImports

if t.TYPE_CHECKING:
    from collections.abc import Callable

SCHEDULES = {"hourly": datetime.timedelta(hours=1), "daily": datetime.timedelta(days=1)}


@dataclass(frozen=True)
class Case:
    name: str
    #: Builds the case in a fresh sandbox: the tap's config and the job ids that 404.
    setup: Callable[[Sandbox], tuple[dict[str, t.Any], set[str]]]


def _config(sandbox: Sandbox, refs: list[str], **settings: t.Any) -> dict[str, t.Any]:
    return {"api_key": DEMO_API_KEY, "api_url": sandbox.base_url, "job_ids": refs, **settings}


def mistyped_id_among_jobs(sandbox: Sandbox) -> tuple[dict[str, t.Any], set[str]]:
    good = sandbox.add_job(rows=5, status="processing", rows_per_second=0.0001)
    refs = [sandbox.ref(good), f"{DEMO_TEAM_ID}/job_mistyped"]
    return _config(sandbox, refs), {"job_mistyped"}


def mistyped_id_alone(sandbox: Sandbox) -> tuple[dict[str, t.Any], set[str]]:
    return _config(sandbox, [f"{DEMO_TEAM_ID}/job_mistyped"]), {"job_mistyped"}


def mistyped_api_url(sandbox: Sandbox) -> tuple[dict[str, t.Any], set[str]]:
    jobs = [sandbox.add_job(rows=5) for _ in range(2)]
    config = _config(sandbox, [sandbox.ref(job) for job in jobs])
    config["api_url"] = f"{sandbox.base_url}/prism-proxy"
    return config, set(jobs)


def expired_job(sandbox: Sandbox) -> tuple[dict[str, t.Any], set[str]]:
    now = sandbox.now()
    old = sandbox.add_job(rows=5, created_at=now - datetime.timedelta(days=8))
    good = sandbox.add_job(rows=5)
    return _config(sandbox, [sandbox.ref(old), sandbox.ref(good)]), {old}


def logged_job_answering_404(sandbox: Sandbox) -> tuple[dict[str, t.Any], set[str]]:
    """A job the import log says was just submitted: its 404 cannot mean "expired"."""
    line = {
        "v": 1,
        "team_id": DEMO_TEAM_ID,
        "object_type": "contact",
        "submitted_at": sandbox.now().isoformat(),
        "http_status": 202,
        "location": f"/v2/prism/{DEMO_TEAM_ID}/imports/job_lost",
        "idempotency_key": None,
        "response": {"job_id": "job_lost", "status": "processing", "total": 5},
    }
    log = Path(tempfile.mkdtemp()) / "imports.jsonl"
    log.write_text(json.dumps(line) + "\n", encoding="utf-8")
    good = sandbox.add_job(rows=5)
    return _config(sandbox, [sandbox.ref(good)], import_log=str(log)), {"job_lost"}


CASES = (
    Case("a mistyped job id, beside a job that answers", mistyped_id_among_jobs),
    Case("a mistyped job id, the only job", mistyped_id_alone),
    Case("a mistyped api_url (2 jobs, all answer 404)", mistyped_api_url),
    Case("a job expired before it was first asked", expired_job),
    Case("a job the import log submitted minutes ago (404: a wrong URL)", logged_job_answering_404),
)


def run_schedule(case: Case, every: datetime.timedelta, days: int) -> int:
    """Requests spent on the case's 404 jobs over ``days`` days of scheduled runs."""
    with Sandbox(api_keys=[DEMO_API_KEY], team_ids=[DEMO_TEAM_ID], rate_limit=None) as sandbox:
        config, missing = case.setup(sandbox)
        state: dict[str, t.Any] | None = None
        spent = 0
        runs = int(datetime.timedelta(days=days) / every)
        with (
            mock.patch("tap_prism_imports.run.utc_now", sandbox.now),
            mock.patch("tap_prism_imports.streams.utc_now", sandbox.now),
        ):
            for _ in range(runs):
                sandbox.clear_requests()
                state = _run_once(config, state)
                # By path: a request to a mistyped URL names no job the sandbox knows.
                spent += sum(1 for r in sandbox.requests if r["path"].rsplit("/", 1)[-1] in missing)
                sandbox.advance_clock(every.total_seconds())
        return spent


def _run_once(config: dict[str, t.Any], state: dict[str, t.Any] | None) -> dict[str, t.Any]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.suppress(Exception):
        TapPrismImports(config=config, state=state).sync_all()
    states = [
        message["value"]
        for message in map(json.loads, stdout.getvalue().splitlines())
        if message["type"] == "STATE"
    ]
    return states[-1] if states else (state or {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    print(f"| requests spent on the 404 job(s), {args.days} days | hourly | daily |")
    print("|---|---:|---:|")
    for case in CASES:
        counts = [run_schedule(case, every, args.days) for every in SCHEDULES.values()]
        print(f"| {case.name} | {counts[0]} | {counts[1]} |")


if __name__ == "__main__":
    main()
