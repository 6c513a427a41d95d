"""The run's results: the table with each scenario's notes, the targets, and the raw JSON."""

from __future__ import annotations

import dataclasses
import typing as t

if t.TYPE_CHECKING:
    from harness import Report, Variant


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
            net = report.net_us_per_row(v)
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
            "net_us_per_row": report.net_us_per_row(v),
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
