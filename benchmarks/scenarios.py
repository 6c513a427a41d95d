"""The scenarios of ``run.py``: each builds its jobs and variants, runs them, and judges
its own targets from their medians as soon as they ran.

Process start (``Report.startup``) is measured first, by scenario 1 or on its own,
since the "net of process start" figures of the later scenarios need it.
"""

from __future__ import annotations

import typing as t

from harness import (
    LEVER,
    LOWER,
    PLAIN,
    ROWS_PER_SMALL_JOB,
    TAP,
    BenchmarkError,
    Report,
    Scenario,
    Target,
    Variant,
    add_jobs,
    run_round_robin,
    start_sandbox,
    state_note,
    write_config,
    write_json,
)

if t.TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

START_KEYS = ("tap-start", "plain-start", "lower-start")


def measure_tap_start(report: Report, workdir: Path) -> None:
    """Process start of the tap alone, for scenarios run without scenario 1 or L."""
    with start_sandbox(rate_limit=None) as sandbox:
        c_tiny = write_config(
            workdir / "tiny.json", sandbox, refs=add_jobs(sandbox, count=1, rows=1)
        )
        start = Variant(
            key="tap-start",
            label="tap, process start",
            command=[*TAP, "--config", c_tiny],
            jobs=1,
            rows=1,
        )
        run_round_robin(sandbox, [start], runs=report.sizes.runs, workdir=workdir)
        report.startup["tap-start"] = start.wall


def big_job_and_levers(
    report: Report, workdir: Path, *, big_job: bool, levers_too: bool
) -> list[Scenario]:
    """Scenarios 1 and L, on one sandbox: both need process start, L needs the small job."""
    sizes = report.sizes
    with start_sandbox(rate_limit=None) as sandbox:
        tiny = add_jobs(sandbox, count=1, rows=1)
        small = add_jobs(sandbox, count=1, rows=sizes.small_rows)
        big = add_jobs(sandbox, count=1, rows=sizes.big_rows)
        lever_job = small if sizes.lever_rows == sizes.small_rows else None
        lever_job = lever_job or add_jobs(sandbox, count=1, rows=sizes.lever_rows)
        one = _one_job(
            report,
            workdir,
            sandbox,
            tiny=tiny,
            small=small,
            big=big,
            process_start_only=not big_job,
        )
        scenarios = [one] if big_job else []
        if levers_too:
            scenarios.append(_levers(report, workdir, sandbox, lever_job=lever_job))
    return scenarios


def _one_job(
    report: Report,
    workdir: Path,
    sandbox: Sandbox,
    *,
    tiny: list[str],
    small: list[str],
    big: list[str],
    process_start_only: bool,
) -> Scenario:
    sizes = report.sizes
    baseline_runs = max(1, sizes.runs - 1)
    c_tiny = write_config(workdir / "tiny.json", sandbox, refs=tiny)
    c_small = write_config(workdir / "small.json", sandbox, refs=small)
    c_big = write_config(workdir / "big.json", sandbox, refs=big)
    one = Scenario(key="1", title=f"One job: {sizes.small_rows:,} and {sizes.big_rows:,} rows")
    one.variants = [
        Variant(
            key="tap-start",
            label="tap, process start (1 row)",
            command=[*TAP, "--config", c_tiny],
            jobs=1,
            rows=1,
        ),
        Variant(
            key="plain-start",
            label="plain SDK, process start",
            command=[*PLAIN, "--config", c_tiny],
            jobs=1,
            rows=1,
            compare_to="tap-start",
        ),
        Variant(
            key="lower-start",
            label="lower bound, process start",
            command=[*LOWER, c_tiny],
            jobs=1,
            rows=1,
            compare_to="tap-start",
        ),
        Variant(
            key="tap-small",
            label="tap",
            command=[*TAP, "--config", c_small],
            jobs=1,
            rows=sizes.small_rows,
            startup_key="tap-start",
        ),
        Variant(
            key="tap-big",
            label="tap",
            command=[*TAP, "--config", c_big],
            jobs=1,
            rows=sizes.big_rows,
            startup_key="tap-start",
        ),
        Variant(
            key="plain-big",
            label="plain SDK",
            command=[*PLAIN, "--config", c_big],
            jobs=1,
            rows=sizes.big_rows,
            runs=baseline_runs,
            startup_key="plain-start",
            compare_to="tap-big",
        ),
        Variant(
            key="lower-big",
            label="lower bound (no SDK)",
            command=[*LOWER, c_big],
            jobs=1,
            rows=sizes.big_rows,
            startup_key="lower-start",
            compare_to="tap-big",
        ),
        Variant(
            key="lower-small",
            label="lower bound (no SDK)",
            command=[*LOWER, c_small],
            jobs=1,
            rows=sizes.small_rows,
            startup_key="lower-start",
            compare_to="tap-small",
        ),
        Variant(
            key="transfer-big",
            label="transfer only (read body)",
            command=[*LOWER, c_big, "transfer"],
            jobs=1,
            rows=sizes.big_rows,
            startup_key="lower-start",
            compare_to="tap-big",
        ),
    ]
    if process_start_only:
        one.variants = [v for v in one.variants if v.key in START_KEYS]
    print(f"Scenario {one.title}", flush=True)
    run_round_robin(sandbox, one.variants, runs=sizes.runs, workdir=workdir)
    for key in START_KEYS:
        report.startup[key] = one.get(key).wall
    if process_start_only:
        return one

    tap_small, tap_big = one.get("tap-small"), one.get("tap-big")
    plain = one.get("plain-big")
    lower, transfer = one.get("lower-big"), one.get("transfer-big")
    growth = tap_big.rss - tap_small.rss
    speedup = plain.wall / tap_big.wall
    one.targets = [
        Target(
            name=f"1M-row job: tap peak RSS <= 150 MB ({sizes.big_rows:,} rows)",
            passed=tap_big.rss <= 150,
            detail=f"{tap_big.rss:.0f} MB",
        ),
        Target(
            name=f"flat memory: {sizes.big_rows:,}-row peak within 30 MB of {sizes.small_rows:,}",
            passed=growth <= 30,
            detail=f"{tap_big.rss:.0f} - {tap_small.rss:.0f} = {growth:+.0f} MB",
        ),
        Target(
            name="throughput >= 5x plain singer-sdk (same job, same run)",
            passed=speedup >= 5,
            detail=f"{tap_big.rows_per_second:,.0f} vs {plain.rows_per_second:,.0f} rows/s = "
            f"{speedup:.1f}x",
        ),
    ]
    one.notes.append(
        f"lower bound: tap takes {tap_big.wall / lower.wall:.1f}x its wall time "
        f"({tap_big.wall:.2f} vs {lower.wall:.2f} s); net of process start "
        f"{report.net_us_per_row(tap_big) or 0:.2f} vs {report.net_us_per_row(lower) or 0:.2f}"
        f" us/row; transfer alone {transfer.wall:.2f} s"
    )
    return one


def _levers(report: Report, workdir: Path, sandbox: Sandbox, *, lever_job: list[str]) -> Scenario:
    sizes = report.sizes
    rows = sizes.lever_rows
    c_lever = write_config(workdir / "lever.json", sandbox, refs=lever_job)
    c_map = write_config(
        workdir / "lever-map.json", sandbox, refs=lever_job, stream_maps={"import_results": {}}
    )

    def lever(key: str, label: str, levers_on: str) -> Variant:
        return Variant(
            key=key,
            label=label,
            command=[*LEVER, "--config", c_lever],
            jobs=1,
            rows=rows,
            env={"BENCH_LEVERS": levers_on},
            startup_key="tap-start",
            compare_to="tap-fast",
        )

    levers = Scenario(key="L", title=f"SDK per-record path and its levers, {rows:,} rows")
    levers.variants = [
        lever("sdk-defaults", "SDK path: default writer, RECURSIVE conform", "sdk_path,conform"),
        lever("sdk-conform-none", "+ TYPE_CONFORMANCE_LEVEL NONE", "sdk_path"),
        lever("sdk-msgspec", "+ MsgSpecWriter", "sdk_path,msgspec"),
        lever("sdk-noflush", "+ no flush per message", "sdk_path,msgspec,noflush"),
        Variant(
            key="tap-stream-map",
            label="tap + no-op stream map (SDK path)",
            command=[*TAP, "--config", c_map],
            jobs=1,
            rows=rows,
            startup_key="tap-start",
            compare_to="tap-fast",
        ),
        Variant(
            key="tap-fast",
            label="tap fast path",
            command=[*TAP, "--config", c_lever],
            jobs=1,
            rows=rows,
            startup_key="tap-start",
        ),
    ]
    print(f"Scenario {levers.title}", flush=True)
    run_round_robin(sandbox, levers.variants, runs=sizes.runs, workdir=workdir)

    # No target: these numbers explain why the tap writes records itself.
    fast_us = report.net_us_per_row(levers.get("tap-fast")) or 0.0
    sdk_path = [v for v in levers.variants if v.key.startswith("sdk-")]
    best = min(sdk_path, key=lambda v: v.wall)
    best_us = report.net_us_per_row(best) or 0.0
    levers.notes.append(
        f"fastest SDK-path variant ({best.label.lstrip('+ ')}) {best_us:.1f} us/row vs fast "
        f"path {fast_us:.1f} us/row: {best_us / fast_us if fast_us else float('inf'):.1f}x"
    )
    return levers


def many_jobs(report: Report, workdir: Path) -> Scenario:
    """Scenario 2."""
    sizes = report.sizes
    scenario = Scenario(
        key="2",
        title=f"Many jobs ({ROWS_PER_SMALL_JOB} rows each): "
        f"{sizes.few_jobs:,} and {sizes.many_jobs:,}",
    )
    with start_sandbox(rate_limit=None) as sandbox:
        refs = add_jobs(sandbox, count=sizes.many_jobs, rows=ROWS_PER_SMALL_JOB)
        few = refs[: sizes.few_jobs]
        c_few = write_config(workdir / "few.json", sandbox, refs=few, requests_per_second=1000)
        c_many = write_config(workdir / "many.json", sandbox, refs=refs, requests_per_second=1000)
        rows_few, rows_many = len(few) * ROWS_PER_SMALL_JOB, len(refs) * ROWS_PER_SMALL_JOB
        baseline_runs = max(1, sizes.runs - 2)
        scenario.variants = [
            Variant(
                key="tap-few",
                label="tap, first run",
                command=[*TAP, "--config", c_few],
                jobs=len(few),
                rows=rows_few,
                capture=True,
                refs=few,
            ),
            Variant(
                key="tap-many",
                label="tap, first run",
                command=[*TAP, "--config", c_many],
                jobs=len(refs),
                rows=rows_many,
                capture=True,
                refs=refs,
            ),
            Variant(
                key="lower-few",
                label="lower bound, sequential",
                command=[*LOWER, c_few],
                jobs=len(few),
                rows=rows_few,
                compare_to="tap-few",
            ),
            Variant(
                key="lower-many",
                label="lower bound, sequential",
                command=[*LOWER, c_many],
                jobs=len(refs),
                rows=rows_many,
                compare_to="tap-many",
            ),
            Variant(
                key="plain-few",
                label="plain SDK",
                command=[*PLAIN, "--config", c_few],
                jobs=len(few),
                rows=rows_few,
                capture=True,
                refs=few,
                runs=baseline_runs,
                compare_to="tap-few",
            ),
        ]
        print(f"Scenario {scenario.title}", flush=True)
        run_round_robin(sandbox, scenario.variants, runs=sizes.runs, workdir=workdir)
        output = scenario.get("tap-many").last_output
        state = output.final_state if output is not None else None
        if not state:
            msg = "the first run over many jobs wrote no STATE"
            raise BenchmarkError(msg)
        c_state = write_json(workdir / "terminal-state.json", state)
        terminal = Variant(
            key="tap-terminal",
            label="tap, all jobs terminal in state",
            command=[*TAP, "--config", c_many, "--state", str(c_state)],
            jobs=len(refs),
            rows=0,
            capture=True,
            refs=refs,
        )
        scenario.variants.append(terminal)
        run_round_robin(sandbox, [terminal], runs=sizes.runs, workdir=workdir)

    few_run, many_run = scenario.get("tap-few"), scenario.get("tap-many")
    ratio = many_run.wall / few_run.wall
    linear = sizes.many_jobs / sizes.few_jobs
    start = report.startup.get("tap-start", 0.0)
    net_ratio = (many_run.wall - start) / max(1e-9, few_run.wall - start)
    scenario.targets = [
        Target(
            name=f"{sizes.many_jobs:,} terminal jobs in state: 0 requests, < 5 s",
            passed=terminal.requests == 0 and terminal.wall < 5,
            detail=f"{terminal.requests} requests, {terminal.wall:.2f} s",
        ),
        Target(
            name=f"first run scales linearly: {sizes.many_jobs:,} vs {sizes.few_jobs:,} jobs "
            f"time ratio <= {1.2 * linear:.1f} (linear {linear:.0f})",
            passed=ratio <= 1.2 * linear,
            detail=f"{many_run.wall:.2f} / {few_run.wall:.2f} s = {ratio:.2f} "
            f"(net of process start {net_ratio:.2f})",
        ),
    ]
    for variant in (few_run, many_run, terminal):
        if (out := variant.last_output) is not None:
            scenario.notes.append(
                f"{state_note(variant, out)}; "
                f"{variant.wall / max(1, variant.jobs) * 1000:.2f} ms per job"
            )
    plain = scenario.get("plain-few")
    if (plain_out := plain.last_output) is not None:
        scenario.notes.append(state_note(plain, plain_out))
    return scenario


def overlap(report: Report, workdir: Path) -> Scenario:
    """Scenario 3."""
    sizes = report.sizes
    scenario = Scenario(key="3", title="Overlap: paced requests under API latency")
    print(f"Scenario {scenario.title}", flush=True)
    with start_sandbox(rate_limit=10, burst=10, latency=0.2) as sandbox:
        refs = add_jobs(sandbox, count=sizes.paced_jobs, rows=ROWS_PER_SMALL_JOB)
        c_paced = write_config(workdir / "paced.json", sandbox, refs=refs, requests_per_second=10)
        rows = len(refs) * ROWS_PER_SMALL_JOB
        paced = Variant(
            key="tap-10rps",
            label="tap, 200 ms latency, 10 req/s",
            command=[*TAP, "--config", c_paced],
            jobs=len(refs),
            rows=rows,
            capture=True,
            refs=refs,
        )
        plain = Variant(
            key="plain-10rps",
            label="plain SDK (sequential), 200 ms",
            command=[*PLAIN, "--config", c_paced],
            jobs=len(refs),
            rows=rows,
            capture=True,
            refs=refs,
            runs=1,
            compare_to="tap-10rps",
        )
        run_round_robin(sandbox, [paced, plain], runs=sizes.runs, workdir=workdir)
        scenario.variants += [paced, plain]
    with start_sandbox(rate_limit=100, burst=10, latency=0.05) as sandbox:
        refs = add_jobs(sandbox, count=sizes.fast_paced_jobs, rows=ROWS_PER_SMALL_JOB)
        c_fast = write_config(
            workdir / "fast-paced.json", sandbox, refs=refs, requests_per_second=100
        )
        fast_paced = Variant(
            key="tap-100rps",
            label="tap, 50 ms latency, 100 req/s",
            command=[*TAP, "--config", c_fast],
            jobs=len(refs),
            rows=len(refs) * ROWS_PER_SMALL_JOB,
            capture=True,
            refs=refs,
        )
        run_round_robin(sandbox, [fast_paced], runs=sizes.runs, workdir=workdir)
        scenario.variants.append(fast_paced)

    paced_bound = 1.15 * paced.jobs / 10 + 2.5
    fast_bound = max(1.15 * fast_paced.jobs / 100 + 2.5, 15 * fast_paced.jobs / 1000)
    ordered = all(
        s.output is not None and s.output.jobs_in_ref_order and s.output.results_in_ref_order
        for v in (paced, fast_paced)
        for s in v.samples
    )
    scenario.targets = [
        Target(
            name=f"{paced.jobs} jobs, 200 ms latency, 10 req/s: <= {paced_bound:.1f} s",
            passed=paced.wall <= paced_bound,
            detail=f"{paced.wall:.2f} s (plain SDK {plain.wall:.2f} s), {paced.throttled} x 429",
        ),
        Target(
            name=f"{fast_paced.jobs} jobs, 50 ms latency, 100 req/s: <= {fast_bound:.1f} s",
            passed=fast_paced.wall <= fast_bound,
            detail=f"{fast_paced.wall:.2f} s, {fast_paced.throttled} x 429",
        ),
        Target(
            name="records follow the refs' order (every paced run)",
            passed=ordered,
            detail="jobs and their results in ref order" if ordered else "OUT OF ORDER",
        ),
    ]
    for variant in (paced, fast_paced):
        if (out := variant.last_output) is not None:
            scenario.notes.append(state_note(variant, out))
    scenario.notes.append(
        f"sequential latency alone: {fast_paced.jobs} x 50 ms = {fast_paced.jobs * 0.05:.0f} s "
        f"(tap {fast_paced.wall:.1f} s); {paced.jobs} x 200 ms = {paced.jobs * 0.2:.0f} s "
        f"(tap {paced.wall:.1f} s)"
    )
    return scenario
