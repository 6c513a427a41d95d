"""The import log at volume: the tap reading 1M rows from the log, against one API body.

``python benchmarks/import_log.py [--runs 3] [--quick] [--snowflake-keys]``

For each shape (10,000 sync imports of 100 rows; 100,000 of 10 rows) it puts 1M rows
in one API body served by the offline sandbox and writes a log of keyed sync imports
holding those very rows, then measures, each as its own process through ``measure.py``
(peak RSS from ``wait4``), stdout to a file: the first run over the log, a rerun over
the unchanged log with the first run's state, and, in the same rounds, the tap reading
the API body, and the tap's start-up over an empty log. Medians over ``--runs``
rounds, variants round-robin. The log's ratio to the API body is the median of each
round's own ratio (the log's run against the API run just before it): a shared
machine's slow spells then slow both sides of a ratio, not one.
"tap CPU s" is the tap process's user + system time; where it equals the wall time,
the run was bound by the tap's own work (the sandbox serves the API body from another
process).

Targets: the log within 2x of the API body's rows/s; a rerun over an unchanged log
adds under 1 s to the tap's own start-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox

HERE = Path(__file__).resolve().parent
TAP = str(Path(sys.executable).with_name("tap-prism-imports"))
SHAPES = ((10_000, 100), (100_000, 10))
QUICK_SHAPES = ((1_000, 100), (10_000, 10))
# The first of the input_keys --snowflake-keys gives: 19 digits, as such ids have.
SNOWFLAKE_BASE = 1_234_567_890_123_456_789


@dataclass
class Variant:
    name: str
    config: dict[str, t.Any]
    rows: int
    state: dict[str, t.Any] | None = None
    walls: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    state_bytes: list[int] = field(default_factory=list)
    last_state: dict[str, t.Any] = field(default_factory=dict)


def write_log(
    path: Path, body_rows: list[dict[str, t.Any]], rows: int, *, snowflake_keys: bool = False
) -> None:
    """A log of keyed sync imports of ``rows`` rows each, holding the API body's very rows
    (its ids, outcomes and errors), in order: both sides read the same rows. The rows'
    input_keys are ``crm-N-I``, or with ``snowflake_keys`` ids of 19 digits as text."""
    imports = len(body_rows) // rows
    now = datetime.datetime.now(datetime.timezone.utc)
    with path.open("w", encoding="utf-8") as file:
        for n in range(imports):
            results = body_rows[n * rows : (n + 1) * rows]
            response = {"job_id": None, "status": "complete", "total": rows, "results": results}
            line = {
                "v": 1,
                "team_id": DEMO_TEAM_ID,
                "object_type": "contact",
                "submitted_at": (now - datetime.timedelta(seconds=imports - n)).isoformat(),
                "http_status": 200,
                "location": None,
                "idempotency_key": f"batch-{n}",
                "response": response,
                "input_keys": [
                    str(SNOWFLAKE_BASE + n * rows + i) if snowflake_keys else f"crm-{n}-{i}"
                    for i in range(rows)
                ],
            }
            file.write(json.dumps(line, separators=(",", ":")) + "\n")


def measure(variant: Variant, workdir: Path) -> None:
    config = workdir / f"{variant.name}.config.json"
    config.write_text(json.dumps(variant.config), encoding="utf-8")
    command = [TAP, "--config", str(config)]
    if variant.state is not None:
        state = workdir / f"{variant.name}.state.json"
        state.write_text(json.dumps(variant.state), encoding="utf-8")
        command += ["--state", str(state)]
    out, err = workdir / f"{variant.name}.out", workdir / f"{variant.name}.err"
    report = json.loads(
        subprocess.run(
            [sys.executable, str(HERE / "measure.py"), str(out), str(err), "--", *command],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    if report["returncode"] != 0:
        msg = f"{variant.name} exited {report['returncode']}: {err.read_text()[-2000:]}"
        raise RuntimeError(msg)
    states = [line for line in out.read_text().splitlines() if line.startswith('{"type":"STATE"')]
    variant.walls.append(report["wall_seconds"])
    variant.cpu_seconds.append(report["user_seconds"] + report["system_seconds"])
    variant.rss_mib.append(report["peak_rss_kib"] / 1024)
    variant.state_bytes.append(sum(map(len, states)))
    variant.last_state = json.loads(states[-1])["value"] if states else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, 1 run")
    parser.add_argument(
        "--snowflake-keys",
        action="store_true",
        help="input_keys of 19 digits as text (ids such as snowflake ids), not crm-N-I",
    )
    args = parser.parse_args()
    shapes, runs = (QUICK_SHAPES, 1) if args.quick else (SHAPES, args.runs)
    workdir = Path(tempfile.mkdtemp(prefix="prism-log-bench-"))
    with Sandbox(api_keys=[DEMO_API_KEY], team_ids=[DEMO_TEAM_ID], rate_limit=None) as sandbox:
        api = {"api_key": DEMO_API_KEY, "api_url": sandbox.base_url}
        empty_log = workdir / "empty.jsonl"
        empty_log.write_text("", encoding="utf-8")
        variants = [Variant("start-up (empty log)", {**api, "import_log": str(empty_log)}, 0)]
        for imports, rows in shapes:
            total = imports * rows
            log = workdir / f"log-{imports}x{rows}.jsonl"
            body = sandbox.add_job(rows=total)
            body_rows = json.loads(sandbox.job(body).results.render())
            write_log(log, body_rows, rows, snowflake_keys=args.snowflake_keys)
            variants += [
                Variant(
                    f"API body, {total:,} rows", {**api, "job_ids": [sandbox.ref(body)]}, total
                ),
                Variant(
                    f"log {imports:,} x {rows}, first run", {**api, "import_log": str(log)}, total
                ),
            ]
        for _ in range(runs):
            for variant in variants:
                measure(variant, workdir)
        reruns = []
        for variant in variants:
            if variant.name.endswith("first run"):
                name = variant.name.replace("first run", "rerun, unchanged")
                rerun = Variant(name, variant.config, 0, state=variant.last_state)
                reruns.append(rerun)
        for _ in range(runs):
            for rerun in reruns:
                measure(rerun, workdir)
    report(variants + reruns)


def report(variants: list[Variant]) -> None:
    print(
        "| run | wall s | tap CPU s | rows/s | peak RSS MiB | STATE bytes in all "
        "| final state bytes |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    medians: dict[str, float] = {}
    for variant in variants:
        wall = statistics.median(variant.walls)
        medians[variant.name] = wall
        rate = f"{variant.rows / wall:,.0f}" if variant.rows else ""
        final = len(json.dumps(variant.last_state, separators=(",", ":")))
        print(
            f"| {variant.name} | {wall:.2f} | {statistics.median(variant.cpu_seconds):.2f} "
            f"| {rate} | {statistics.median(variant.rss_mib):.0f} "
            f"| {statistics.median(variant.state_bytes):,.0f} | {final:,} |"
        )
    start_up = medians["start-up (empty log)"]
    for position, variant in enumerate(variants):
        if variant.name.endswith("first run"):
            api = variants[position - 1]  # the same rows from one API body, measured just before
            rounds = [log / body for log, body in zip(variant.walls, api.walls, strict=True)]
            ratio = statistics.median(rounds)
            verdict = "PASS" if ratio <= 2 else "FAIL"
            print(
                f"{verdict}: {variant.name}: {ratio:.2f}x the API body's wall time "
                f"(target 2x; rounds: {', '.join(f'{r:.2f}' for r in rounds)}; "
                f"ratio of the medians: {medians[variant.name] / statistics.median(api.walls):.2f})"
            )
        if "rerun" in variant.name:
            extra = medians[variant.name] - start_up
            verdict = "PASS" if extra < 1 else "FAIL"
            print(f"{verdict}: {variant.name}: +{extra:.2f} s over start-up (target < 1 s)")


if __name__ == "__main__":
    main()
