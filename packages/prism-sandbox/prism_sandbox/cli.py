"""The ``prism-sandbox`` command: run the offline Prism Imports API until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prism_sandbox import faults as fault_kinds
from prism_sandbox.defaults import (
    BURST,
    COMMAND_PORT,
    DEMO_API_KEY,
    DEMO_TEAM_ID,
    HOST,
    RATE_LIMIT,
    ROWS_PER_SECOND,
    SYNC_THRESHOLD,
)
from prism_sandbox.faults import Fault
from prism_sandbox.seed import seed_demo, write_refs_file
from prism_sandbox.server import Sandbox

if TYPE_CHECKING:
    from types import FrameType


def _retry_after(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (flags are documented in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="prism-sandbox",
        description="Run a local, offline implementation of the Prism Imports API.",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default=HOST, help="interface to bind (default %(default)s)")
    server.add_argument(
        "--port",
        type=int,
        default=COMMAND_PORT,
        help="port; 0 picks a free one (default %(default)s)",
    )
    server.add_argument("--port-file", type=Path, help="write the bound port to this file")
    server.add_argument("--request-log", type=Path, help="append a JSON line per API request here")

    auth = parser.add_argument_group("auth")
    auth.add_argument(
        "--api-key", action="append", default=[], help="accepted API key (repeatable)"
    )
    auth.add_argument(
        "--team-id", action="append", default=[], help="team UUID served (repeatable)"
    )
    auth.add_argument(
        "--config",
        type=Path,
        help='JSON file: {"api_keys": {"KEY": ["TEAM", ...] or null} or ["KEY", ...], '
        '"team_ids": ["TEAM", ...]}',
    )

    jobs = parser.add_argument_group("jobs")
    jobs.add_argument(
        "--sync-threshold",
        type=int,
        default=SYNC_THRESHOLD,
        help="max rows imported synchronously (default %(default)s)",
    )
    jobs.add_argument(
        "--rows-per-second",
        type=float,
        default=ROWS_PER_SECOND,
        help="async job progress rate (default %(default)s)",
    )
    jobs.add_argument("--seed", choices=["demo"], help="create the demo jobs at start")
    jobs.add_argument("--refs-file", type=Path, help="write the seeded job refs here (with --seed)")

    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--rate-limit",
        type=float,
        default=RATE_LIMIT,
        help="requests/s per key (default %(default)s)",
    )
    limits.add_argument(
        "--burst", type=int, default=BURST, help="burst per key (default %(default)s)"
    )
    limits.add_argument("--no-rate-limit", action="store_true", help="disable the rate limit")
    limits.add_argument(
        "--monthly-quota", type=int, help="requests per key per month (default: none)"
    )

    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every API request"
    )
    faults.add_argument(
        "--error-rate", type=float, default=0.0, help="probability of a 5xx per API request"
    )
    faults.add_argument(
        "--error-status",
        type=int,
        default=500,
        help="status for --error-rate/--fail-next (default 500)",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=0, help="seed of the fault RNG (default 0)"
    )
    faults.add_argument(
        "--fail-next", type=int, metavar="N", help="the next N API requests get a 5xx"
    )
    faults.add_argument(
        "--throttle-next", type=int, metavar="N", help="the next N API requests get 429"
    )
    faults.add_argument(
        "--retry-after",
        type=_retry_after,
        default=1,
        help="Retry-After for --throttle-next: seconds or an HTTP-date",
    )
    faults.add_argument(
        "--drop-next",
        type=int,
        metavar="N",
        help="drop the connection mid-body on the next N responses",
    )
    faults.add_argument(
        "--truncate-next", type=int, metavar="N", help="truncate the body of the next N responses"
    )
    faults.add_argument(
        "--malformed-next", type=int, metavar="N", help="invalid JSON in the next N snapshots"
    )
    faults.add_argument(
        "--fault-job", metavar="JOB_ID", help="limit the --*-next faults to this job"
    )
    faults.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='any fault as JSON, e.g. \'{"kind": "missing_fields", "count": 1}\' (repeatable)',
    )
    return parser  # fmt: skip


def _auth(args: argparse.Namespace) -> tuple[dict[str, list[str] | None], list[str], bool]:
    keys: dict[str, list[str] | None] = dict.fromkeys(args.api_key)
    teams: list[str] = list(args.team_id)
    if args.config is not None:
        config = json.loads(args.config.read_text(encoding="utf-8"))
        if not isinstance(config, Mapping):
            msg = "--config must hold a JSON object"
            raise SystemExit(msg)
        configured = config.get("api_keys", {})
        if isinstance(configured, Mapping):
            keys.update({k: (None if v is None else list(v)) for k, v in configured.items()})
        else:
            keys.update(dict.fromkeys(configured))
        teams.extend(config.get("team_ids", []))
    defaulted = not keys or not teams
    return keys, teams, defaulted


def _faults(args: argparse.Namespace) -> list[Fault]:
    found: list[Fault] = []
    job = args.fault_job
    if args.fail_next:
        found.append(
            Fault(
                fault_kinds.SERVER_ERROR, count=args.fail_next, status=args.error_status, job_id=job
            )
        )
    if args.throttle_next:
        found.append(
            Fault(
                fault_kinds.RATE_LIMIT,
                count=args.throttle_next,
                retry_after=args.retry_after,
                job_id=job,
            )
        )
    if args.drop_next:
        found.append(Fault(fault_kinds.DROP_CONNECTION, count=args.drop_next, job_id=job))
    if args.truncate_next:
        found.append(Fault(fault_kinds.TRUNCATE_BODY, count=args.truncate_next, job_id=job))
    if args.malformed_next:
        found.append(Fault(fault_kinds.MALFORMED_JSON, count=args.malformed_next, job_id=job))
    if args.error_rate:
        found.append(
            Fault(fault_kinds.SERVER_ERROR, probability=args.error_rate, status=args.error_status)
        )
    found.extend(Fault.from_dict(json.loads(spec)) for spec in args.fault)
    return found  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGTERM or SIGINT; return the exit code (0)."""
    args = build_parser().parse_args(argv)
    keys, teams, defaulted = _auth(args)
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        sandbox = Sandbox(
            host=args.host,
            port=args.port,
            api_keys=keys or None,
            team_ids=teams or None,
            sync_threshold=args.sync_threshold,
            rows_per_second=args.rows_per_second,
            rate_limit=None if args.no_rate_limit else args.rate_limit,
            burst=args.burst,
            monthly_quota=args.monthly_quota,
            latency=args.latency,
            fault_seed=args.fault_seed,
            faults=_faults(args),
            request_log=args.request_log,
        )
        with sandbox:
            refs: list[str] = []
            if args.seed == "demo":
                refs = seed_demo(sandbox)
                if args.refs_file is not None:
                    write_refs_file(args.refs_file, refs)
            if args.port_file is not None:
                temporary = args.port_file.with_name(args.port_file.name + ".tmp")
                temporary.write_text(f"{sandbox.port}\n", encoding="utf-8")
                temporary.replace(args.port_file)
            _announce(sandbox, refs, args, defaulted=defaulted)
            while not stop.wait(0.5):
                pass
        print("prism-sandbox: stopped", flush=True)  # noqa: T201
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _announce(
    sandbox: Sandbox, refs: list[str], args: argparse.Namespace, *, defaulted: bool
) -> None:
    lines = [f"prism-sandbox listening on {sandbox.base_url}"]
    if defaulted:
        if DEMO_API_KEY in sandbox.api_keys:
            lines.append(f"  demo API key: {DEMO_API_KEY}")
        if DEMO_TEAM_ID in sandbox.team_ids:
            lines.append(f"  demo team id: {DEMO_TEAM_ID}")
    if refs:
        where = f" (written to {args.refs_file})" if args.refs_file is not None else ""
        lines.append(f"  seeded {len(refs)} demo jobs{where}:")
        lines.extend(f"    {ref}" for ref in refs)
    print("\n".join(lines), flush=True)  # noqa: T201


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
