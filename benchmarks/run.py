"""Benchmark the tap against its baselines, on the offline sandbox, in one command.

    python benchmarks/run.py            # full run (~8 minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke check (~1 minute, 1 run, small sizes)

Every program runs as its own process (stdout to /dev/null, or to a file when its
output is checked), started by a small wrapper (``measure.py``) that reads its peak
RSS with ``os.wait4``. Variants of a scenario run round-robin, ``--runs`` times,
and the table shows medians, so noise on a shared machine hits all of them alike.
Requests are counted from the sandbox's request log. Raw numbers are saved as JSON
(``--json``, default ``.bench/results.json``).

Scenarios:

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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tap_prism_imports.sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
MEASURE = str(HERE / "measure.py")
_console_script = Path(sys.executable).with_name("tap-prism-imports")
TAP = (
    [str(_console_script)]
    if _console_script.exists()
    else [PYTHON, "-c", "from tap_prism_imports.tap import TapPrismImports; TapPrismImports.cli()"]
)
PLAIN = [PYTHON, str(HERE / "plain_tap.py")]
LOWER = [PYTHON, str(HERE / "lower_bound.py")]
LEVER = [PYTHON, str(HERE / "lever_tap.py")]
ROWS_PER_SMALL_JOB = 10
MIB = 1024.0


@dataclass(frozen=True)
class Sizes:
    runs: int
    small_rows: int
    big_rows: int
    lever_rows: int
    few_jobs: int
    many_jobs: int
    paced_jobs: int
    fast_paced_jobs: int


FULL = Sizes(3, 100_000, 1_000_000, 100_000, 1_000, 5_000, 100, 1_000)
QUICK = Sizes(1, 20_000, 200_000, 20_000, 200, 1_000, 30, 200)


class BenchmarkError(RuntimeError):
    """A program under test failed; the run's numbers would mean nothing."""


@dataclass
class OutputStats:
    """What a run wrote to stdout, for the checks that need it."""

    records: dict[str, int]
    state_messages: int
    state_bytes_max: int
    state_bytes_total: int
    jobs_in_ref_order: bool
    results_in_ref_order: bool
    final_state: dict[str, t.Any] | None


@dataclass
class Sample:
    wall: float
    rss_mib: float
    cpu: float
    requests: int
    throttled: int
    output: OutputStats | None = None


@dataclass
class Variant:
    key: str
    label: str
    command: list[str]
    jobs: int
    rows: int
    env: dict[str, str] = field(default_factory=dict)
    capture: bool = False
    refs: list[str] = field(default_factory=list)
    runs: int | None = None
    startup_key: str | None = None
    compare_to: str | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def rss(self) -> float:
        return statistics.median(s.rss_mib for s in self.samples)

    @property
    def requests(self) -> int:
        return int(statistics.median(s.requests for s in self.samples))

    @property
    def throttled(self) -> int:
        return max(s.throttled for s in self.samples)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


@dataclass
class Scenario:
    key: str
    title: str
    variants: list[Variant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)


@dataclass
class Target:
    name: str
    passed: bool
    detail: str


@dataclass
class Report:
    sizes: Sizes
    scenarios: list[Scenario] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    startup: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------- sandbox


def start_sandbox(**settings: t.Any) -> Sandbox:
    return Sandbox(api_keys=[DEMO_API_KEY], team_ids=[DEMO_TEAM_ID], **settings).start()


def add_jobs(sandbox: Sandbox, count: int, rows: int) -> list[str]:
    return [f"{DEMO_TEAM_ID}/{sandbox.add_job(rows=rows)}" for _ in range(count)]


def write_json(path: Path, data: t.Any) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def config(sandbox: Sandbox, refs: list[str], **settings: t.Any) -> dict[str, t.Any]:
    return {
        "api_url": sandbox.base_url,
        "api_key": DEMO_API_KEY,
        "team_id": DEMO_TEAM_ID,
        "job_ids": refs,
        **settings,
    }


# ---------------------------------------------------------------------- measuring


def settled_requests(sandbox: Sandbox) -> list[dict[str, t.Any]]:
    """The request log once the server has logged the last response it sent."""
    previous = -1
    deadline = time.monotonic() + 1.0
    while True:
        requests = sandbox.requests
        if len(requests) == previous or time.monotonic() > deadline:
            return requests
        previous = len(requests)
        time.sleep(0.05)


def analyse_output(path: Path, refs: list[str]) -> OutputStats:
    records: dict[str, int] = {}
    states: list[int] = []
    final_state: dict[str, t.Any] | None = None
    job_order: list[str] = []
    result_jobs: list[str] = []
    rows_ascending = True
    last_row: dict[str, int] = {}
    with path.open("rb") as lines:
        for line in lines:
            message = orjson.loads(line)
            kind = message.get("type")
            if kind == "STATE":
                states.append(len(line))
                final_state = message["value"]
            elif kind == "RECORD":
                stream, record = message["stream"], message["record"]
                records[stream] = records.get(stream, 0) + 1
                key = f"{record['team_id']}/{record['job_id']}"
                if stream == "import_jobs":
                    job_order.append(key)
                elif stream == "import_results":
                    if not result_jobs or result_jobs[-1] != key:
                        result_jobs.append(key)
                    rows_ascending &= record["row_index"] == last_row.get(key, -1) + 1
                    last_row[key] = record["row_index"]
    wanted = [ref for ref in refs if ref in set(job_order)]
    return OutputStats(
        records=records,
        state_messages=len(states),
        state_bytes_max=max(states, default=0),
        state_bytes_total=sum(states),
        jobs_in_ref_order=job_order == wanted,
        results_in_ref_order=rows_ascending
        and result_jobs == [ref for ref in job_order if ref in set(result_jobs)],
        final_state=final_state,
    )


def measure(sandbox: Sandbox, variant: Variant, workdir: Path) -> Sample:
    sandbox.clear_requests()
    stdout = workdir / f"{variant.key}.out" if variant.capture else Path(os.devnull)
    stderr = workdir / f"{variant.key}.err"
    completed = subprocess.run(
        [PYTHON, MEASURE, str(stdout), str(stderr), "--", *variant.command],
        env={**os.environ, **variant.env},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(completed.stdout)
    if report["returncode"] != 0:
        tail = stderr.read_text(encoding="utf-8", errors="replace")[-3000:]
        msg = f"{variant.label} ({variant.key}) exited {report['returncode']}:\n{tail}"
        raise BenchmarkError(msg)
    requests = settled_requests(sandbox)
    return Sample(
        wall=report["wall_seconds"],
        rss_mib=report["peak_rss_kib"] / MIB,
        cpu=report["user_seconds"] + report["system_seconds"],
        requests=len(requests),
        throttled=sum(1 for r in requests if r["status"] == 429),
        output=analyse_output(stdout, variant.refs) if variant.capture else None,
    )


def run_round_robin(sandbox: Sandbox, variants: list[Variant], runs: int, workdir: Path) -> None:
    rounds = max((v.runs or runs) for v in variants)
    for round_index in range(rounds):
        for variant in variants:
            if round_index < (variant.runs or runs):
                sample = measure(sandbox, variant, workdir)
                variant.samples.append(sample)
                print(
                    f"  {variant.key:<28} run {round_index + 1}: {sample.wall:7.2f} s "
                    f"{sample.rss_mib:6.0f} MiB {sample.requests:5d} requests",
                    flush=True,
                )


# ---------------------------------------------------------------------- scenarios


def scenario_big_job(
    report: Report, workdir: Path, *, big_job: bool, levers_too: bool
) -> list[Scenario]:
    sizes = report.sizes
    baseline_runs = max(1, sizes.runs - 1)
    one = Scenario("1", f"One job: {sizes.small_rows:,} and {sizes.big_rows:,} rows")
    levers = Scenario("L", f"SDK per-record path and its levers, {sizes.lever_rows:,} rows")
    with start_sandbox(rate_limit=None) as sandbox:
        tiny = add_jobs(sandbox, 1, 1)
        small = add_jobs(sandbox, 1, sizes.small_rows)
        big = add_jobs(sandbox, 1, sizes.big_rows)
        lever_job = small if sizes.lever_rows == sizes.small_rows else None
        lever_job = lever_job or add_jobs(sandbox, 1, sizes.lever_rows)

        def cfg(name: str, refs: list[str], **extra: t.Any) -> str:
            return str(write_json(workdir / f"{name}.json", config(sandbox, refs, **extra)))

        c_tiny, c_small, c_big = cfg("tiny", tiny), cfg("small", small), cfg("big", big)
        c_lever = cfg("lever", lever_job)
        c_map = cfg("lever-map", lever_job, stream_maps={"import_results": {}})
        one.variants = [
            Variant("tap-start", "tap, process start (1 row)", [*TAP, "--config", c_tiny], 1, 1),
            Variant(
                "plain-start",
                "plain SDK, process start",
                [*PLAIN, "--config", c_tiny],
                1,
                1,
                compare_to="tap-start",
            ),
            Variant(
                "lower-start",
                "lower bound, process start",
                [*LOWER, c_tiny],
                1,
                1,
                compare_to="tap-start",
            ),
            Variant(
                "tap-small",
                "tap",
                [*TAP, "--config", c_small],
                1,
                sizes.small_rows,
                startup_key="tap-start",
            ),
            Variant(
                "tap-big",
                "tap",
                [*TAP, "--config", c_big],
                1,
                sizes.big_rows,
                startup_key="tap-start",
            ),
            Variant(
                "plain-big",
                "plain SDK",
                [*PLAIN, "--config", c_big],
                1,
                sizes.big_rows,
                runs=baseline_runs,
                startup_key="plain-start",
                compare_to="tap-big",
            ),
            Variant(
                "lower-big",
                "lower bound (ijson+orjson)",
                [*LOWER, c_big],
                1,
                sizes.big_rows,
                startup_key="lower-start",
                compare_to="tap-big",
            ),
            Variant(
                "lower-small",
                "lower bound (ijson+orjson)",
                [*LOWER, c_small],
                1,
                sizes.small_rows,
                startup_key="lower-start",
                compare_to="tap-small",
            ),
            Variant(
                "transfer-big",
                "transfer only (read body)",
                [*LOWER, c_big, "transfer"],
                1,
                sizes.big_rows,
                startup_key="lower-start",
                compare_to="tap-big",
            ),
        ]
        rows = sizes.lever_rows

        def lever(key: str, label: str, levers_on: str) -> Variant:
            return Variant(
                key,
                label,
                [*LEVER, "--config", c_lever],
                1,
                rows,
                env={"BENCH_LEVERS": levers_on},
                startup_key="tap-start",
                compare_to="tap-fast",
            )

        levers.variants = [
            lever(
                "sdk-defaults", "SDK path: default writer, RECURSIVE conform", "sdk_path,conform"
            ),
            lever("sdk-conform-none", "+ TYPE_CONFORMANCE_LEVEL NONE", "sdk_path"),
            lever("sdk-msgspec", "+ MsgSpecWriter", "sdk_path,msgspec"),
            lever("sdk-noflush", "+ no flush per message", "sdk_path,msgspec,noflush"),
            Variant(
                "tap-stream-map",
                "tap + no-op stream map (SDK path)",
                [*TAP, "--config", c_map],
                1,
                rows,
                startup_key="tap-start",
                compare_to="tap-fast",
            ),
            Variant(
                "tap-fast",
                "tap fast path",
                [*TAP, "--config", c_lever],
                1,
                rows,
                startup_key="tap-start",
            ),
        ]
        if not big_job:
            one.variants = [v for v in one.variants if v.key.endswith("-start")]
        print(f"Scenario {one.title}", flush=True)
        run_round_robin(sandbox, one.variants, sizes.runs, workdir)
        for key in ("tap-start", "plain-start", "lower-start"):
            report.startup[key] = one.get(key).wall
        if levers_too:
            print(f"Scenario {levers.title}", flush=True)
            run_round_robin(sandbox, levers.variants, sizes.runs, workdir)
    return [scenario for scenario, wanted in ((one, big_job), (levers, levers_too)) if wanted]


def scenario_many_jobs(report: Report, workdir: Path) -> Scenario:
    sizes = report.sizes
    scenario = Scenario(
        "2",
        f"Many jobs ({ROWS_PER_SMALL_JOB} rows each): {sizes.few_jobs:,} and {sizes.many_jobs:,}",
    )
    with start_sandbox(rate_limit=None) as sandbox:
        refs = add_jobs(sandbox, sizes.many_jobs, ROWS_PER_SMALL_JOB)
        few = refs[: sizes.few_jobs]
        settings = {"requests_per_second": 1000}
        c_few = write_json(workdir / "few.json", config(sandbox, few, **settings))
        c_many = write_json(workdir / "many.json", config(sandbox, refs, **settings))
        rows_few, rows_many = len(few) * ROWS_PER_SMALL_JOB, len(refs) * ROWS_PER_SMALL_JOB
        baseline_runs = max(1, sizes.runs - 2)
        scenario.variants = [
            Variant(
                "tap-few",
                "tap, first run",
                [*TAP, "--config", str(c_few)],
                len(few),
                rows_few,
                capture=True,
                refs=few,
            ),
            Variant(
                "tap-many",
                "tap, first run",
                [*TAP, "--config", str(c_many)],
                len(refs),
                rows_many,
                capture=True,
                refs=refs,
            ),
            Variant(
                "lower-few",
                "lower bound, sequential",
                [*LOWER, str(c_few)],
                len(few),
                rows_few,
                compare_to="tap-few",
            ),
            Variant(
                "lower-many",
                "lower bound, sequential",
                [*LOWER, str(c_many)],
                len(refs),
                rows_many,
                compare_to="tap-many",
            ),
            Variant(
                "plain-few",
                "plain SDK",
                [*PLAIN, "--config", str(c_few)],
                len(few),
                rows_few,
                capture=True,
                refs=few,
                runs=baseline_runs,
                compare_to="tap-few",
            ),
        ]
        print(f"Scenario {scenario.title}", flush=True)
        run_round_robin(sandbox, scenario.variants, sizes.runs, workdir)
        output = scenario.get("tap-many").samples[-1].output
        state = output.final_state if output is not None else None
        if not state:
            msg = "the first run over many jobs wrote no STATE"
            raise BenchmarkError(msg)
        c_state = write_json(workdir / "terminal-state.json", state)
        terminal = Variant(
            "tap-terminal",
            "tap, all jobs terminal in state",
            [*TAP, "--config", str(c_many), "--state", str(c_state)],
            len(refs),
            0,
            capture=True,
            refs=refs,
        )
        scenario.variants.append(terminal)
        run_round_robin(sandbox, [terminal], sizes.runs, workdir)
    return scenario


def scenario_overlap(report: Report, workdir: Path) -> Scenario:
    sizes = report.sizes
    scenario = Scenario("3", "Overlap: paced requests under API latency")
    print(f"Scenario {scenario.title}", flush=True)
    with start_sandbox(rate_limit=10, burst=10, latency=0.2) as sandbox:
        refs = add_jobs(sandbox, sizes.paced_jobs, ROWS_PER_SMALL_JOB)
        c_paced = write_json(workdir / "paced.json", config(sandbox, refs, requests_per_second=10))
        rows = len(refs) * ROWS_PER_SMALL_JOB
        variants = [
            Variant(
                "tap-10rps",
                "tap, 200 ms latency, 10 req/s",
                [*TAP, "--config", str(c_paced)],
                len(refs),
                rows,
                capture=True,
                refs=refs,
            ),
            Variant(
                "plain-10rps",
                "plain SDK (sequential), 200 ms",
                [*PLAIN, "--config", str(c_paced)],
                len(refs),
                rows,
                capture=True,
                refs=refs,
                runs=1,
                compare_to="tap-10rps",
            ),
        ]
        run_round_robin(sandbox, variants, sizes.runs, workdir)
        scenario.variants += variants
    with start_sandbox(rate_limit=100, burst=10, latency=0.05) as sandbox:
        refs = add_jobs(sandbox, sizes.fast_paced_jobs, ROWS_PER_SMALL_JOB)
        c_fast = write_json(
            workdir / "fast-paced.json", config(sandbox, refs, requests_per_second=100)
        )
        variant = Variant(
            "tap-100rps",
            "tap, 50 ms latency, 100 req/s",
            [*TAP, "--config", str(c_fast)],
            len(refs),
            len(refs) * ROWS_PER_SMALL_JOB,
            capture=True,
            refs=refs,
        )
        run_round_robin(sandbox, [variant], sizes.runs, workdir)
        scenario.variants.append(variant)
    return scenario


# ---------------------------------------------------------------------- targets


def net_us_per_row(report: Report, variant: Variant) -> float | None:
    if variant.startup_key is None or variant.rows < 1000:
        return None
    startup = report.startup.get(variant.startup_key, 0.0)
    return max(0.0, variant.wall - startup) / variant.rows * 1e6


def evaluate(report: Report) -> None:
    by_key = {s.key: s for s in report.scenarios}
    targets = report.targets
    sizes = report.sizes
    if "1" in by_key:
        one = by_key["1"]
        small, big, plain = one.get("tap-small"), one.get("tap-big"), one.get("plain-big")
        lower, transfer = one.get("lower-big"), one.get("transfer-big")
        targets.append(
            Target(
                f"1M-row job: tap peak RSS <= 150 MB ({sizes.big_rows:,} rows)",
                big.rss <= 150,
                f"{big.rss:.0f} MB",
            )
        )
        growth = big.rss - small.rss
        targets.append(
            Target(
                f"flat memory: {sizes.big_rows:,}-row peak within 30 MB of {sizes.small_rows:,}",
                growth <= 30,
                f"{big.rss:.0f} - {small.rss:.0f} = {growth:+.0f} MB",
            )
        )
        speedup = plain.wall / big.wall
        targets.append(
            Target(
                "throughput >= 5x plain singer-sdk (same job, same run)",
                speedup >= 5,
                f"{big.rows_per_second:,.0f} vs {plain.rows_per_second:,.0f} rows/s = "
                f"{speedup:.1f}x",
            )
        )
        one.notes.append(
            f"lower bound: tap takes {big.wall / lower.wall:.1f}x its wall time "
            f"({big.wall:.2f} vs {lower.wall:.2f} s); net of process start "
            f"{net_us_per_row(report, big) or 0:.2f} vs {net_us_per_row(report, lower) or 0:.2f}"
            f" us/row; transfer alone {transfer.wall:.2f} s"
        )
    if "L" in by_key:
        levers = by_key["L"]
        fast_us = net_us_per_row(report, levers.get("tap-fast")) or 0.0
        sdk_path = [v for v in levers.variants if v.key.startswith("sdk-")]
        best = min(sdk_path, key=lambda v: v.wall)
        best_us = net_us_per_row(report, best) or 0.0
        levers.notes.append(
            f"fastest SDK-path variant ({best.label.lstrip('+ ')}) {best_us:.1f} us/row vs fast "
            f"path {fast_us:.1f} us/row: {best_us / fast_us if fast_us else float('inf'):.1f}x"
        )
    if "2" in by_key:
        two = by_key["2"]
        few, many, terminal = two.get("tap-few"), two.get("tap-many"), two.get("tap-terminal")
        targets.append(
            Target(
                f"{sizes.many_jobs:,} terminal jobs in state: 0 requests, < 5 s",
                terminal.requests == 0 and terminal.wall < 5,
                f"{terminal.requests} requests, {terminal.wall:.2f} s",
            )
        )
        ratio = many.wall / few.wall
        linear = sizes.many_jobs / sizes.few_jobs
        start = report.startup.get("tap-start", 0.0)
        net_ratio = (many.wall - start) / max(1e-9, few.wall - start)
        targets.append(
            Target(
                f"first run scales linearly: {sizes.many_jobs:,} vs {sizes.few_jobs:,} jobs "
                f"time ratio <= {1.2 * linear:.1f} (linear {linear:.0f})",
                ratio <= 1.2 * linear,
                f"{many.wall:.2f} / {few.wall:.2f} s = {ratio:.2f} "
                f"(net of process start {net_ratio:.2f})",
            )
        )
        for variant in (few, many, terminal):
            out = variant.samples[-1].output
            if out is not None:
                two.notes.append(
                    f"{variant.key}: {out.state_messages} STATE messages, largest "
                    f"{out.state_bytes_max / 1024:.0f} KiB, total "
                    f"{out.state_bytes_total / 1024:.0f} KiB; "
                    f"{variant.wall / max(1, variant.jobs) * 1000:.2f} ms per job"
                )
        plain_out = two.get("plain-few").samples[-1].output
        if plain_out is not None:
            two.notes.append(
                f"plain-few: {plain_out.state_messages} STATE messages, largest "
                f"{plain_out.state_bytes_max / 1024:.0f} KiB, total "
                f"{plain_out.state_bytes_total / 1024:.0f} KiB"
            )
    if "3" in by_key:
        three = by_key["3"]
        paced, quick = three.get("tap-10rps"), three.get("tap-100rps")
        bound = 1.15 * paced.jobs / 10 + 2.5
        targets.append(
            Target(
                f"{paced.jobs} jobs, 200 ms latency, 10 req/s: <= {bound:.1f} s",
                paced.wall <= bound,
                f"{paced.wall:.2f} s (plain SDK {three.get('plain-10rps').wall:.2f} s), "
                f"{paced.throttled} x 429",
            )
        )
        quick_bound = max(1.15 * quick.jobs / 100 + 2.5, 15 * quick.jobs / 1000)
        targets.append(
            Target(
                f"{quick.jobs} jobs, 50 ms latency, 100 req/s: <= {quick_bound:.1f} s",
                quick.wall <= quick_bound,
                f"{quick.wall:.2f} s, {quick.throttled} x 429",
            )
        )
        for variant in (paced, quick):
            out = variant.samples[-1].output
            if out is not None:
                three.notes.append(
                    f"{variant.key}: {out.state_messages} STATE messages, largest "
                    f"{out.state_bytes_max / 1024:.0f} KiB, total "
                    f"{out.state_bytes_total / 1024:.0f} KiB"
                )
        three.notes.append(
            f"sequential latency alone: {quick.jobs} x 50 ms = {quick.jobs * 0.05:.0f} s "
            f"(tap {quick.wall:.1f} s); {paced.jobs} x 200 ms = {paced.jobs * 0.2:.0f} s "
            f"(tap {paced.wall:.1f} s)"
        )
        ordered = all(
            s.output is not None and s.output.jobs_in_ref_order and s.output.results_in_ref_order
            for v in (paced, quick)
            for s in v.samples
        )
        targets.append(
            Target(
                "records follow the refs' order (every paced run)",
                ordered,
                "jobs and their results in ref order" if ordered else "OUT OF ORDER",
            )
        )


# ---------------------------------------------------------------------- output


def print_report(report: Report) -> None:
    header = (
        f"{'scenario / variant':<48} {'jobs':>6} {'rows':>10} {'runs':>4} "
        f"{'wall s':>8} {'(min-max)':>13} {'rows/s':>10} {'net us/row':>10} "
        f"{'RSS MB':>7} {'reqs':>6} {'429':>4} {'vs tap':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    for scenario in report.scenarios:
        print(f"[{scenario.key}] {scenario.title}")
        for v in scenario.variants:
            walls = [s.wall for s in v.samples]
            net = net_us_per_row(report, v)
            ratio = f"{v.wall / scenario.get(v.compare_to).wall:.2f}x" if v.compare_to else ""
            print(
                f"  {v.label[:46]:<46} {v.jobs:>6,} {v.rows:>10,} {len(v.samples):>4} "
                f"{v.wall:>8.2f} {f'({min(walls):.2f}-{max(walls):.2f})':>13} "
                f"{v.rows_per_second if v.rows else 0:>10,.0f} "
                f"{'' if net is None else f'{net:.2f}':>10} "
                f"{v.rss:>7.0f} {v.requests:>6} {v.throttled:>4} {ratio:>7}"
            )
        for note in scenario.notes:
            print(f"    note: {note}")
    print()
    print("Targets:")
    for target in report.targets:
        print(f"  [{'PASS' if target.passed else 'FAIL'}] {target.name}: {target.detail}")


def to_json(report: Report) -> dict[str, t.Any]:
    def variant(v: Variant) -> dict[str, t.Any]:
        samples = []
        for s in v.samples:
            sample = dataclasses.asdict(s)
            if sample["output"] is not None:
                sample["output"].pop("final_state", None)
            samples.append(sample)
        return {
            "key": v.key,
            "label": v.label,
            "jobs": v.jobs,
            "rows": v.rows,
            "env": v.env,
            "median_wall_seconds": v.wall,
            "median_peak_rss_mib": v.rss,
            "rows_per_second": v.rows_per_second,
            "net_us_per_row": net_us_per_row(report, v),
            "samples": samples,
        }

    return {
        "sizes": dataclasses.asdict(report.sizes),
        "startup_seconds": report.startup,
        "scenarios": [
            {
                "key": s.key,
                "title": s.title,
                "notes": s.notes,
                "variants": [variant(v) for v in s.variants],
            }
            for s in report.scenarios
        ],
        "targets": [dataclasses.asdict(target) for target in report.targets],
    }


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
    report = Report(sizes)
    chosen = set(args.only.split(","))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prism-bench-") as tmp:
        workdir = Path(tmp)
        if {"1", "L"} & chosen:
            report.scenarios += scenario_big_job(
                report, workdir, big_job="1" in chosen, levers_too="L" in chosen
            )
        elif {"2", "3"} & chosen:
            with start_sandbox(rate_limit=None) as sandbox:
                c_tiny = write_json(workdir / "tiny.json", config(sandbox, add_jobs(sandbox, 1, 1)))
                start = Variant(
                    "tap-start", "tap, process start", [*TAP, "--config", str(c_tiny)], 1, 1
                )
                run_round_robin(sandbox, [start], sizes.runs, workdir)
                report.startup["tap-start"] = start.wall
        if "2" in chosen:
            report.scenarios.append(scenario_many_jobs(report, workdir))
        if "3" in chosen:
            report.scenarios.append(scenario_overlap(report, workdir))
    evaluate(report)
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
