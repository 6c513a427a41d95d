"""What every scenario is made of: programs, variants, samples, targets, and the runner.

A variant is one command on one sandbox job set; ``run_round_robin`` runs a scenario's
variants in turns, each through ``measure.py`` (see its docstring for why), and keeps
one ``Sample`` per run. Medians over the samples are what the table and targets use.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox

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


@dataclass(frozen=True, kw_only=True)
class Sizes:
    runs: int
    small_rows: int
    big_rows: int
    lever_rows: int
    few_jobs: int
    many_jobs: int
    paced_jobs: int
    fast_paced_jobs: int


FULL = Sizes(
    runs=3,
    small_rows=100_000,
    big_rows=1_000_000,
    lever_rows=100_000,
    few_jobs=1_000,
    many_jobs=5_000,
    paced_jobs=100,
    fast_paced_jobs=1_000,
)
QUICK = Sizes(
    runs=1,
    small_rows=20_000,
    big_rows=200_000,
    lever_rows=20_000,
    few_jobs=200,
    many_jobs=1_000,
    paced_jobs=30,
    fast_paced_jobs=200,
)


class BenchmarkError(RuntimeError):
    """A program under test failed; the run's numbers would mean nothing."""


@dataclass(kw_only=True)
class OutputStats:
    """What a run wrote to stdout, for the checks that need it."""

    records: dict[str, int]
    state_messages: int
    state_bytes_max: int
    state_bytes_total: int
    jobs_in_ref_order: bool
    results_in_ref_order: bool
    final_state: dict[str, t.Any] | None


@dataclass(kw_only=True)
class Sample:
    wall: float
    rss_mib: float
    cpu: float
    requests: int
    throttled: int
    output: OutputStats | None = None


@dataclass(kw_only=True)
class Variant:
    key: str
    label: str
    command: list[str]
    jobs: int
    rows: int
    env: dict[str, str] = field(default_factory=dict)
    # Write stdout to a file and analyse it (STATE sizes, record order).
    capture: bool = False
    refs: list[str] = field(default_factory=list)
    # Fewer runs than the scenario's, for baselines too slow to repeat.
    runs: int | None = None
    # The variant whose wall time is this program's process start ("net us/row").
    startup_key: str | None = None
    # The variant of the same scenario shown as 1.00x in the "vs tap" column.
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

    @property
    def last_output(self) -> OutputStats | None:
        return self.samples[-1].output


@dataclass(kw_only=True)
class Target:
    name: str
    passed: bool
    detail: str


@dataclass(kw_only=True)
class Scenario:
    key: str
    title: str
    variants: list[Variant] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)


@dataclass(kw_only=True)
class Report:
    sizes: Sizes
    scenarios: list[Scenario] = field(default_factory=list)
    # Median wall time of each program's 1-row job, by variant key.
    startup: dict[str, float] = field(default_factory=dict)

    @property
    def targets(self) -> list[Target]:
        return [target for scenario in self.scenarios for target in scenario.targets]

    def net_us_per_row(self, variant: Variant) -> float | None:
        if variant.startup_key is None or variant.rows < 1000:
            return None
        startup = self.startup.get(variant.startup_key, 0.0)
        return max(0.0, variant.wall - startup) / variant.rows * 1e6


# ---------------------------------------------------------------------- sandbox


def start_sandbox(*, rate_limit: float | None, burst: int = 10, latency: float = 0.0) -> Sandbox:
    return Sandbox(
        api_keys=[DEMO_API_KEY],
        team_ids=[DEMO_TEAM_ID],
        rate_limit=rate_limit,
        burst=burst,
        latency=latency,
    ).start()


def add_jobs(sandbox: Sandbox, *, count: int, rows: int) -> list[str]:
    return [f"{DEMO_TEAM_ID}/{sandbox.add_job(rows=rows)}" for _ in range(count)]


def write_json(path: Path, data: t.Any) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def write_config(path: Path, sandbox: Sandbox, *, refs: list[str], **settings: t.Any) -> str:
    """The tap's config for ``refs`` on ``sandbox``, written to ``path``; returns the path."""
    tap_config = {
        "api_url": sandbox.base_url,
        "api_key": DEMO_API_KEY,
        "team_id": DEMO_TEAM_ID,
        "job_ids": refs,
        **settings,
    }
    return str(write_json(path, tap_config))


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


def run_round_robin(sandbox: Sandbox, variants: list[Variant], *, runs: int, workdir: Path) -> None:
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


def state_note(variant: Variant, output: OutputStats) -> str:
    return (
        f"{variant.key}: {output.state_messages} STATE messages, largest "
        f"{output.state_bytes_max / 1024:.0f} KiB, total "
        f"{output.state_bytes_total / 1024:.0f} KiB"
    )
