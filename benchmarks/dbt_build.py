"""``dbt build`` of the models in transform/ over a large load in PostgreSQL.

    make plugins                                    # Meltano, the loaders, dbt-postgres
    .venv/bin/python benchmarks/dbt_build.py        # 1,000,000 rows, 3 runs
    .venv/bin/python benchmarks/dbt_build.py --rows 100000 --runs 1

One job of ``--rows`` rows on the offline sandbox (in this process) is loaded into a
throwaway PostgreSQL server (the one the end-to-end tests start) by
``meltano run tap-prism-imports-batch target-postgres``; then, each timed as
``meltano invoke dbt-postgres:build`` (what a pipeline's ``dbt-postgres:build`` runs):

- ``first build``: every model created, every test run (once);
- ``nothing new``: the next scheduled run when no job finished;
- ``new job``: a further job of ``--new-rows`` rows was loaded first (not timed).

No model is incremental (docs/models.md says why), so the last two do the same work:
they show what a build costs run after run. They alternate ``--runs`` times; the table
shows medians and the slowest nodes of the last run (from dbt's run_results.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.pipeline_helpers import MELTANO, Meltano, Postgres, postgres_server  # noqa: E402

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox  # noqa: E402

SLOWEST_NODES = 5
TIMEOUT_SECONDS = 1800


class BenchmarkError(RuntimeError):
    """A run failed; its numbers would mean nothing."""


@dataclass
class Variant:
    label: str
    walls: list[float] = field(default_factory=list)
    slowest: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Bench:
    sandbox: Sandbox
    postgres: Postgres
    workdir: Path
    refs: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        meltano = Meltano.for_sandbox(self.sandbox, self.workdir, self.workdir / "refs.txt")
        env = {key: value for key, value in meltano.env.items() if not key.startswith("DBT_")}
        pg = self.postgres
        env.update(pg.target_env)
        env.update(
            {
                "TAP_PRISM_IMPORTS_BATCH_BATCH_CONFIG": json.dumps(
                    {
                        "encoding": {"format": "jsonl", "compression": "gzip"},
                        "storage": {
                            "root": (self.workdir / "batches").as_uri(),
                            "prefix": "prism-",
                        },
                    }
                ),
                "TARGET_POSTGRES_VALIDATE_RECORDS": "false",
                "TARGET_POSTGRES_USE_COPY": "true",
                "DBT_POSTGRES_HOST": "127.0.0.1",
                "DBT_POSTGRES_PORT": str(pg.port),
                "DBT_POSTGRES_USER": pg.user,
                "DBT_ENV_SECRET_POSTGRES_PASSWORD": pg.password,
                "DBT_POSTGRES_DBNAME": pg.database,
                # dbt's own files for this run, not the project's transform/target.
                "DBT_TARGET_PATH": str(self.workdir / "dbt-target"),
                "DBT_LOG_PATH": str(self.workdir / "dbt-logs"),
            }
        )
        return env

    def meltano(self, *args: str) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            [str(MELTANO), *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            msg = f"meltano {' '.join(args)} exited {result.returncode}:\n{tail}"
            raise BenchmarkError(msg)
        return wall

    def load_job(self, rows: int) -> float:
        """Add a job of ``rows`` rows and load it; returns the load's wall time."""
        job_id = self.sandbox.add_job(rows=rows)
        self.refs.append(self.sandbox.ref(job_id))
        (self.workdir / "refs.txt").write_text("\n".join(self.refs) + "\n", encoding="utf-8")
        (self.workdir / "batches").mkdir(exist_ok=True)
        wall = self.meltano("run", "--no-install", "tap-prism-imports-batch", "target-postgres")
        for path in (self.workdir / "batches").iterdir():
            path.unlink()
        return wall

    def build(self, variant: Variant) -> None:
        wall = self.meltano("invoke", "dbt-postgres:build")
        variant.walls.append(wall)
        results = json.loads(
            (self.workdir / "dbt-target" / "run_results.json").read_text(encoding="utf-8")
        )
        # unique_id: "model.prism_imports.NAME" or "test.prism_imports.NAME.HASH".
        nodes = [
            (str(node["unique_id"]).split(".")[2], float(node["execution_time"]))
            for node in results["results"]
        ]
        variant.slowest = sorted(nodes, key=lambda node: -node[1])[:SLOWEST_NODES]
        failed = [node["unique_id"] for node in results["results"] if node["status"] == "fail"]
        if failed:
            msg = f"dbt build failed on a good load: {failed}"
            raise BenchmarkError(msg)


def report(rows: int, load_wall: float, variants: list[Variant]) -> str:
    lines = [
        f"### dbt build over {rows:,} rows in PostgreSQL (load: {load_wall:.1f} s)",
        "",
        "| build | runs | wall s (median) | slowest nodes of the last run, s |",
        "|---|---:|---:|---|",
    ]
    for v in variants:
        slowest = ", ".join(f"{name} {seconds:.1f}" for name, seconds in v.slowest)
        median = statistics.median(v.walls)
        lines.append(f"| {v.label} | {len(v.walls)} | {median:.1f} | {slowest} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--new-rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not MELTANO.exists():
        parser.error(f"Meltano is not installed at {MELTANO}: run `make plugins`")
    first = Variant("first build")
    nothing_new = Variant("nothing new")
    new_job = Variant(f"new job ({args.new_rows:,} rows)")
    with (
        tempfile.TemporaryDirectory(prefix="prism-dbt-bench-") as tmp,
        Sandbox(api_keys=[DEMO_API_KEY], team_ids=[DEMO_TEAM_ID], rate_limit=None) as sandbox,
        postgres_server(timezone="America/New_York") as postgres,
    ):
        bench = Bench(sandbox, postgres, Path(tmp))
        print(f"loading {args.rows:,} rows ...", flush=True)
        load_wall = bench.load_job(args.rows)
        print(f"  {load_wall:.1f} s; first dbt build ...", flush=True)
        bench.build(first)
        print(f"  {first.walls[-1]:.1f} s", flush=True)
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", flush=True)
            bench.build(nothing_new)
            bench.load_job(args.new_rows)
            bench.build(new_job)
            print(
                f"  nothing new {nothing_new.walls[-1]:.1f} s, new job {new_job.walls[-1]:.1f} s",
                flush=True,
            )
    print(report(args.rows, load_wall, [first, nothing_new, new_job]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
