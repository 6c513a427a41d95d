"""Benchmark the tap against its baselines, on the offline sandbox, in one command.

    python benchmarks/run.py            # full run (~8 minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke check (~1 minute, 1 run, small sizes)

Every program runs as its own process (stdout to /dev/null, or to a file when its
output is checked), started by a small wrapper (``measure.py``) that reads its peak
RSS with ``os.wait4``. Variants of a scenario run round-robin, ``--runs`` times,
and the table shows medians, so noise on a shared machine hits all of them alike.
Requests are counted from the sandbox's request log. Raw numbers are saved as JSON
(``--json``, default ``.bench/results.json``).

Scenarios (``scenarios.py``, each with its targets):

1. one big job: the tap on 100k and 1M rows; the plain singer-sdk baseline
   (``plain_tap.py``), the streaming lower bound and the transfer floor
   (``lower_bound.py``) on 1M rows; process start of each on a 1-row job.
L. the SDK's per-record path with its public levers added one at a time
   (``lever_tap.py``), a no-op stream map (what users get), and the fast path.
2. many jobs: first runs over 1,000 and 5,000 jobs (no rate limit, 1,000 req/s),
   then a run over 5,000 jobs whose state marks them all terminal.
3. overlap: 100 jobs at 200 ms latency and 10 req/s (tap and sandbox); 1,000 jobs
   at 50 ms and 100 req/s. Records must follow the order of the refs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson
from harness import FULL, QUICK, Report
from report import print_report, to_json
from scenarios import big_job_and_levers, many_jobs, measure_tap_start, overlap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run: a smoke check")
    parser.add_argument("--runs", type=int, help="runs per variant (default 3; --quick: 1)")
    parser.add_argument(
        "--only",
        default="1,L,2,3",
        help="comma-separated scenarios to run: 1, L, 2, 3 (default all)",
    )
    parser.add_argument(
        "--json", type=Path, default=Path(".bench/results.json"), help="write raw numbers here"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = dataclasses.replace(sizes, runs=args.runs)
    report = Report(sizes=sizes)
    chosen = set(args.only.split(","))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prism-bench-") as tmp:
        workdir = Path(tmp)
        if {"1", "L"} & chosen:
            report.scenarios += big_job_and_levers(
                report, workdir, big_job="1" in chosen, levers_too="L" in chosen
            )
        elif {"2", "3"} & chosen:
            measure_tap_start(report, workdir)
        if "2" in chosen:
            report.scenarios.append(many_jobs(report, workdir))
        if "3" in chosen:
            report.scenarios.append(overlap(report, workdir))
    print_report(report)
    print(
        f"\n{'quick' if args.quick else 'full'} run, {sizes.runs} run(s) per variant "
        f"(heavy baselines fewer, see 'runs'), {time.monotonic() - started:.0f} s in all; "
        f"{os.cpu_count()} CPUs; medians."
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(to_json(report), option=orjson.OPT_INDENT_2))
    print(f"raw numbers: {args.json}")
    return 0 if all(target.passed for target in report.targets) else 1


if __name__ == "__main__":
    sys.exit(main())
