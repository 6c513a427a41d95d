"""CPU to read one large job body: the fast reader against the event walker alone.

    .venv/bin/python benchmarks/body_reader.py              # 1,000,000 rows, 3 runs
    .venv/bin/python benchmarks/body_reader.py --rows 100000 --runs 1

Builds a body shaped as the API's example (80% created, 15% existing, 5% failed rows;
top-level fields on both sides of ``results``) and reads it with ``parse_snapshot``
from memory, so only parsing and spooling are measured. The same body with its
``results`` key written with an escape (``"res\\u0075lts"``, the same key to any JSON
reader) is one the fast reader does not vouch for, so it measures the event walker
alone. Runs alternate; the table shows the median CPU (user + system) of each.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import random
import resource
import statistics
import sys
import uuid

from tap_prism_imports.job_refs import JobRef
from tap_prism_imports.snapshots import parse_snapshot

REF = JobRef("0f6b8f52-6a0e-4c53-9a55-2d0c1b6f7e10", "job_bench")
FETCHED = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
ESCAPED_KEY = b'"res\\u0075lts":'


def make_body(rows: int) -> bytes:
    chance = random.Random(1)
    parts = []
    for _ in range(rows):
        draw = chance.random()
        if draw < 0.95:  # 95% succeed: 80% created, 15% existing
            row = {
                "id": str(uuid.UUID(int=chance.getrandbits(128), version=4)),
                "created": draw < 0.8,
                "existing": draw >= 0.8,
                "error": None,
            }
        else:
            error = {"code": "validation_error", "message": "email is invalid"}
            row = {"id": None, "created": False, "existing": False, "error": error}
        parts.append(json.dumps(row, separators=(",", ":")))
    head = {"job_id": REF.job_id, "status": "complete", "total": rows, "processed": rows}
    return (
        json.dumps(head, separators=(",", ":"))[:-1]
        + ',"results":['
        + ",".join(parts)
        + '],"updated_at":"2026-11-20T10:02:13.512Z"}'
    ).encode()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_cpu(body: bytes) -> tuple[float, int]:
    started = cpu_seconds()
    snapshot = parse_snapshot(io.BytesIO(body), REF, FETCHED)
    spent = cpu_seconds() - started
    count = snapshot.results.count if snapshot.results is not None else 0
    snapshot.close()
    return spent, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    fast_body = make_body(args.rows)
    walker_body = fast_body.replace(b'"results":', ESCAPED_KEY, 1)
    samples: dict[str, list[float]] = {"fast reader": [], "event walker alone": []}
    for _ in range(args.runs):
        for name, body in (("fast reader", fast_body), ("event walker alone", walker_body)):
            spent, count = read_cpu(body)
            if count != args.rows:
                print(f"{name} read {count} rows, not {args.rows}", file=sys.stderr)
                return 1
            samples[name].append(spent)
    print(f"### {args.rows:,} rows, {len(fast_body) / 1e6:.0f} MB body (medians of {args.runs})\n")
    print("| reader | CPU s | µs per row |\n|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / args.rows * 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
