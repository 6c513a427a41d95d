"""End to end into PostgreSQL: Meltano with the tap (RECORD and BATCH), dlt, and COPY.

    .venv/bin/pip install --group bench     # dlt (and pyarrow, ADBC), for its baselines
    make plugins                            # Meltano and its plugins
    .venv/bin/python benchmarks/pipeline.py                  # 200k and 1M rows, 3 runs
    .venv/bin/python benchmarks/pipeline.py --rows 20000 --runs 1
    .venv/bin/python benchmarks/pipeline.py --loader-settings   # target-postgres, one by one

One job of ``--rows`` rows on the offline sandbox (in this process), loaded into a
throwaway PostgreSQL server (the one the end-to-end tests start) by:

- ``meltano run tap-prism-imports target-postgres``: the tap sends RECORD messages;
- ``meltano run tap-prism-imports-batch target-postgres``: the tap writes gzipped JSON
  Lines files and sends BATCH messages (the SDK's batch path);
- a dlt pipeline that GETs the same job over HTTP and merges it on the same primary key
  (team_id, job_id, row_index), with dlt's default ``insert_values`` files and with
  parquet files (loaded through ADBC);
- PostgreSQL's floor: COPY of the rows (as CSV, written beforehand) into a temp table, then
  ``INSERT ... ON CONFLICT DO UPDATE``.

Every run loads into an empty schema and is checked: exactly ``--rows`` distinct keys.
Variants run round-robin ``--runs`` times; the tables show medians. CPU per process is
read from /proc while the run goes (utime + stime, children that were waited for
included); PostgreSQL's is the postmaster and all its children. Peak RSS is each
process's VmHWM. The tap's share is tap / (tap + Meltano + loader + PostgreSQL).
Batch files left behind after each run are counted, then removed.
"""

from __future__ import annotations

import argparse
import csv
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.pipeline_helpers import MELTANO, Meltano, Postgres, postgres_server  # noqa: E402

from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 0.05
SCHEMA = "prism"
KEY = ("team_id", "job_id", "row_index")
RESULT_COLUMNS = (
    "team_id",
    "job_id",
    "row_index",
    "record_id",
    "outcome",
    "created",
    "existing",
    "error_code",
    "error_message",
    "fetched_at",
)
# What the loader gets unless a variant says otherwise: the settings README.md recommends.
TUNED = {"TARGET_POSTGRES_VALIDATE_RECORDS": "false", "TARGET_POSTGRES_USE_COPY": "true"}
ROLES = ("tap", "meltano", "loader", "dlt", "psql", "postgres")


class BenchmarkError(RuntimeError):
    """A run failed or loaded the wrong rows; its numbers would mean nothing."""


# ---------------------------------------------------------------------- /proc


@dataclass
class ProcessUsage:
    cpu_seconds: float = 0.0
    peak_rss_mib: float = 0.0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int, *, waited_children: bool = False) -> float | None:
    """utime + stime of ``pid`` (and of its children it has waited for)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the ")": state is field 3 of proc(5), so utime (14) is index 11.
    ticks = int(fields[11]) + int(fields[12])
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        kids = children(pending.pop())
        found.extend(kids)
        pending.extend(kids)
    return found


def role_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    names = {Path(arg.decode(errors="replace")).name for arg in argv[:3]}
    if names & {"tap-prism-imports", "tap-prism-imports-batch"}:
        return "tap"
    if "target-postgres" in names:
        return "loader"
    if "meltano" in names:
        return "meltano"
    return None


class Monitor:
    """Samples a process tree and the PostgreSQL server while one run goes."""

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.usage: dict[str, dict[int, ProcessUsage]] = {role: {} for role in ROLES}
        self._postgres_start = self._postgres_cpu()
        self._postgres_peak = 0.0

    def _postgres_cpu(self) -> float:
        total = cpu_seconds(self.postmaster, waited_children=True) or 0.0
        return total + sum(cpu_seconds(pid) or 0.0 for pid in children(self.postmaster))

    def sample(self, root: int, root_role: str) -> None:
        for pid in (root, *descendants(root)):
            role = root_role if pid == root else role_of(pid)
            cpu, rss = cpu_seconds(pid), peak_rss_mib(pid)
            if role is None or cpu is None or rss is None:
                continue
            seen = self.usage[role].setdefault(pid, ProcessUsage())
            seen.cpu_seconds = max(seen.cpu_seconds, cpu)
            seen.peak_rss_mib = max(seen.peak_rss_mib, rss)
        for pid in children(self.postmaster):
            self._postgres_peak = max(self._postgres_peak, peak_rss_mib(pid) or 0.0)

    def finish(self, root_role: str, root_total_cpu: float) -> dict[str, ProcessUsage]:
        """Per role: CPU seconds and the largest process's peak RSS.

        The root's own CPU is its waited-for total minus the descendants sampled, which
        is exact for the root whatever sampling missed in its last interval.
        """
        result = {
            role: ProcessUsage(
                sum(u.cpu_seconds for u in seen.values()),
                max((u.peak_rss_mib for u in seen.values()), default=0.0),
            )
            for role, seen in self.usage.items()
            if role != root_role
        }
        others = sum(u.cpu_seconds for role, u in result.items() if role != "postgres")
        peak = max((u.peak_rss_mib for u in self.usage[root_role].values()), default=0.0)
        result[root_role] = ProcessUsage(max(root_total_cpu - others, 0.0), peak)
        result["postgres"] = ProcessUsage(
            self._postgres_cpu() - self._postgres_start, self._postgres_peak
        )
        return {role: usage for role, usage in result.items() if usage.cpu_seconds > 0}


def run_measured(
    command: list[str], *, env: dict[str, str], role: str, postmaster: int, log: Path
) -> tuple[float, dict[str, ProcessUsage]]:
    """Run ``command``; wall seconds and per-role usage. Fails with the log's end."""
    monitor = Monitor(postmaster)
    children_cpu.take()
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
        while process.poll() is None:
            monitor.sample(process.pid, role)
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    # The root's CPU, with the descendants it waited for: this process's children times
    # since just before the start (nothing else was started meanwhile).
    root_cpu = children_cpu.take()
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        msg = f"{' '.join(command[:4])} exited {process.returncode}:\n{tail}"
        raise BenchmarkError(msg)
    return wall, monitor.finish(role, root_cpu)


class _ChildrenCpu:
    """CPU of the children this process has waited for, since the last ``take``."""

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> float:
        usage = os.times()
        return usage.children_user + usage.children_system

    def take(self) -> float:
        now = self._now()
        spent, self._last = now - self._last, now
        return spent


children_cpu = _ChildrenCpu()


# ---------------------------------------------------------------------- variants


@dataclass
class Sample:
    wall: float
    usage: dict[str, ProcessUsage]
    batch_files_left: int = 0


@dataclass
class Variant:
    key: str
    label: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, value: t.Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples)

    def cpu(self, role: str) -> float:
        return self.median(lambda s: s.usage[role].cpu_seconds if role in s.usage else 0.0)

    def rss(self, role: str) -> float:
        return self.median(lambda s: s.usage[role].peak_rss_mib if role in s.usage else 0.0)

    def tap_share(self) -> float | None:
        if not any("tap" in s.usage for s in self.samples):
            return None
        roles = ("tap", "meltano", "loader", "postgres")
        return self.median(
            lambda s: (
                s.usage["tap"].cpu_seconds
                / (sum(s.usage[r].cpu_seconds for r in roles if r in s.usage) or 1.0)
            )
        )


@dataclass
class Bench:
    sandbox: Sandbox
    postgres: Postgres
    job_id: str
    rows: int
    workdir: Path

    @property
    def postmaster(self) -> int:
        pid_file = self.postgres.datadir / "postmaster.pid"
        return int(pid_file.read_text(encoding="ascii").split()[0])

    def reset(self, schema: str) -> None:
        self.postgres.psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def check(self, schema: str) -> None:
        keys = ", ".join(KEY)
        found = self.postgres.psql(
            f"SELECT count(*), count(DISTINCT ({keys})) FROM {schema}.import_results"
        ).split("|")
        if [int(n) for n in found] != [self.rows, self.rows]:
            msg = f"{schema}.import_results holds {found} rows/keys, not {self.rows}"
            raise BenchmarkError(msg)

    def meltano(self, extractor: str, loader_env: dict[str, str], log: Path) -> Sample:
        self.reset(SCHEMA)
        refs = self.workdir / "refs.txt"
        refs.write_text(f"{self.sandbox.ref(self.job_id)}\n", encoding="utf-8")
        batches = self.workdir / "batches"
        batches.mkdir(exist_ok=True)
        env = Meltano.for_sandbox(self.sandbox, self.workdir, refs).env
        env.update(self.postgres.target_env)
        env.update(
            {
                "TAP_PRISM_IMPORTS_BATCH_BATCH_CONFIG": json.dumps(
                    {
                        "encoding": {"format": "jsonl", "compression": "gzip"},
                        "storage": {"root": batches.as_uri(), "prefix": "prism-"},
                    }
                ),
                **loader_env,
            }
        )
        command = [str(MELTANO), "run", "--no-install", "--full-refresh", extractor]
        wall, usage = run_measured(
            [*command, "target-postgres"],
            env=env,
            role="meltano",
            postmaster=self.postmaster,
            log=log,
        )
        self.check(SCHEMA)
        left = list(batches.iterdir())
        for path in left:
            path.unlink()
        return Sample(wall, usage, len(left))

    def dlt(self, log: Path, file_format: str = "insert_values") -> Sample:
        schema = f"prism_dlt_{file_format}"
        self.reset(schema)
        pg = self.postgres
        credentials = f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{pg.port}/{pg.database}"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "dlt-load",
            self.sandbox.base_url + self.sandbox.location(self.job_id),
            credentials,
            schema,
            file_format,
        ]
        env = {**os.environ, "RUNTIME__LOG_LEVEL": "WARNING", "DLT_DATA_DIR": str(self.workdir)}
        wall, usage = run_measured(
            command, env=env, role="dlt", postmaster=self.postmaster, log=log
        )
        self.check(schema)
        return Sample(wall, usage)

    def copy_floor(self, csv_path: Path, log: Path) -> Sample:
        schema = "prism_copy"
        self.reset(schema)
        columns = ", ".join(RESULT_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in RESULT_COLUMNS if c not in KEY)
        self.postgres.psql(
            f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.import_results ("
            "team_id uuid NOT NULL, job_id text NOT NULL, row_index bigint NOT NULL, "
            "record_id uuid, outcome text, created boolean, existing boolean, "
            "error_code text, error_message text, fetched_at timestamp, "
            f"PRIMARY KEY ({', '.join(KEY)}))"
        )
        script = self.workdir / "copy.sql"
        script.write_text(
            f"CREATE TEMP TABLE staged (LIKE {schema}.import_results);\n"
            f"\\copy staged ({columns}) FROM '{csv_path}' WITH (FORMAT csv)\n"
            f"INSERT INTO {schema}.import_results SELECT * FROM staged "
            f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET {updates};\n",
            encoding="utf-8",
        )
        pg = self.postgres
        command = [
            str(pg.bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            "-d",
            pg.database,
            "-f",
            str(script),
        ]
        env = {**os.environ, "PGPASSWORD": pg.password}
        wall, usage = run_measured(
            command, env=env, role="psql", postmaster=self.postmaster, log=log
        )
        self.check(schema)
        return Sample(wall, usage)


def result_rows(snapshot_url: str) -> t.Iterator[dict[str, t.Any]]:
    """The job's rows as the tap's ``import_results`` stream shapes them."""
    import requests  # noqa: PLC0415 - only the dlt worker needs it

    response = requests.get(snapshot_url, headers={"x-api-key": DEMO_API_KEY}, timeout=600)
    response.raise_for_status()
    fetched_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    snapshot = response.json()
    team_id, job_id = snapshot_url.rstrip("/").split("/")[-3], snapshot["job_id"]
    for index, row in enumerate(snapshot["results"]):
        error = row["error"] or {}
        outcome: str | None = None
        if error:
            outcome = "failed"
        elif row["created"]:
            outcome = "created"
        elif row["existing"]:
            outcome = "existing"
        yield {
            "team_id": team_id,
            "job_id": job_id,
            "row_index": index,
            "record_id": row["id"],
            "outcome": outcome,
            "created": row["created"],
            "existing": row["existing"],
            "error_code": error.get("code"),
            "error_message": error.get("message"),
            "fetched_at": fetched_at,
        }


def dlt_load(snapshot_url: str, credentials: str, schema: str, file_format: str) -> None:
    """The dlt baseline, run as its own process: fetch the job, merge it on the key."""
    import dlt  # noqa: PLC0415 - an optional dependency (group `bench`)

    resource = dlt.resource(
        result_rows(snapshot_url),
        name="import_results",
        primary_key=list(KEY),
        write_disposition="merge",
    )
    pipeline = dlt.pipeline(
        pipeline_name="prism_bench",
        destination=dlt.destinations.postgres(credentials),
        dataset_name=schema,
    )
    pipeline.run(resource, loader_file_format=t.cast("t.Any", file_format))


def write_csv(sandbox: Sandbox, job_id: str, path: Path) -> None:
    ref = sandbox.base_url + sandbox.location(job_id)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        for row in result_rows(ref):
            writer.writerow(["" if row[c] is None else row[c] for c in RESULT_COLUMNS])


# ---------------------------------------------------------------------- plans


def pipeline_variants() -> dict[str, tuple[str, t.Callable[[Bench, Path], Sample]]]:
    return {
        "record": (
            "meltano run tap-prism-imports target-postgres (RECORD)",
            lambda b, log: b.meltano("tap-prism-imports", TUNED, log),
        ),
        "batch": (
            "meltano run tap-prism-imports-batch target-postgres (BATCH)",
            lambda b, log: b.meltano("tap-prism-imports-batch", TUNED, log),
        ),
        "dlt": ("dlt 1.31, merge", lambda b, log: b.dlt(log)),
        "dlt-parquet": (
            "dlt 1.31, merge, parquet (ADBC)",
            lambda b, log: b.dlt(log, "parquet"),
        ),
        "copy": (
            "COPY to temp table + INSERT ON CONFLICT",
            lambda b, log: b.copy_floor(b.workdir / "rows.csv", log),
        ),
    }


def loader_setting_variants() -> dict[str, tuple[str, t.Callable[[Bench, Path], Sample]]]:
    """target-postgres's settings, each alone against its defaults, RECORD and BATCH."""
    settings: list[tuple[str, dict[str, str]]] = [
        ("defaults", {}),
        ("validate_records=false", {"TARGET_POSTGRES_VALIDATE_RECORDS": "false"}),
        ("use_copy=true", {"TARGET_POSTGRES_USE_COPY": "true"}),
        ("batch_size_rows=100000", {"TARGET_POSTGRES_BATCH_SIZE_ROWS": "100000"}),
        ("batch_size_rows=1000000", {"TARGET_POSTGRES_BATCH_SIZE_ROWS": "1000000"}),
        ("validate_records=false + use_copy=true", TUNED),
    ]
    variants: dict[str, tuple[str, t.Callable[[Bench, Path], Sample]]] = {}
    for mode, extractor in (("RECORD", "tap-prism-imports"), ("BATCH", "tap-prism-imports-batch")):
        for name, env in settings:

            def run(
                b: Bench, log: Path, extractor: str = extractor, env: dict[str, str] = env
            ) -> Sample:
                return b.meltano(extractor, env, log)

            variants[f"{mode}:{name}"] = (f"{mode}, {name}", run)
    return variants


def run_size(
    rows: int, runs: int, plan: dict[str, tuple[str, t.Callable[[Bench, Path], Sample]]]
) -> list[Variant]:
    variants = [Variant(key, label) for key, (label, _) in plan.items()]
    with (
        tempfile.TemporaryDirectory(prefix="prism-bench-") as tmp,
        Sandbox(api_keys=[DEMO_API_KEY], team_ids=[DEMO_TEAM_ID], rate_limit=None) as sandbox,
        postgres_server(timezone="America/New_York") as postgres,
    ):
        workdir = Path(tmp)
        job_id = sandbox.add_job(rows=rows)
        bench = Bench(sandbox, postgres, job_id, rows, workdir)
        if "copy" in plan:
            write_csv(sandbox, job_id, workdir / "rows.csv")
        for run in range(runs):
            for variant in variants:
                log = workdir / f"{variant.key.replace(':', '_')}.log"
                print(f"  {rows:,} rows, run {run + 1}/{runs}: {variant.label} ...", flush=True)
                sample = plan[variant.key][1](bench, log)
                variant.samples.append(sample)
                print(f"    {sample.wall:.1f} s", flush=True)
    return variants


def report(rows: int, variants: list[Variant]) -> str:
    lines = [
        f"### {rows:,} rows (medians of {len(variants[0].samples)} runs)",
        "",
        (
            "| variant | wall s | rows/s | CPU s: tap / Meltano / loader (or dlt, psql) / "
            "PostgreSQL | tap share | peak RSS MiB: tap / Meltano / loader (or dlt, psql) / "
            "PostgreSQL backend | batch files left |"
        ),
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for v in variants:
        wall = v.median(lambda s: s.wall)
        client = next((r for r in ("loader", "dlt", "psql") if v.cpu(r)), "loader")
        share = v.tap_share()
        cpu = " / ".join(f"{v.cpu(r):.1f}" for r in ("tap", "meltano", client, "postgres"))
        rss = " / ".join(f"{v.rss(r):.0f}" for r in ("tap", "meltano", client, "postgres"))
        left = int(v.median(lambda s: s.batch_files_left))
        lines.append(
            f"| {v.label} | {wall:.1f} | {rows / wall:,.0f} | {cpu} | "
            f"{'' if share is None else f'{share:.0%}'} | {rss} | {left} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--loader-settings",
        action="store_true",
        help="target-postgres settings one by one (RECORD and BATCH) instead of the pipelines",
    )
    parser.add_argument("--only", nargs="+", help="variant keys to run (default: all)")
    args = parser.parse_args(argv)
    plan = loader_setting_variants() if args.loader_settings else pipeline_variants()
    if args.only:
        unknown = set(args.only) - set(plan)
        if unknown:
            parser.error(f"unknown variants {sorted(unknown)}; known: {sorted(plan)}")
        plan = {key: plan[key] for key in args.only}
    if not MELTANO.exists():
        parser.error(f"Meltano is not installed at {MELTANO}: run `make plugins`")
    tables = []
    for rows in args.rows:
        tables.append(report(rows, run_size(rows, args.runs, plan)))
        print(tables[-1], flush=True)
    if len(tables) > 1:
        print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["dlt-load"]:
        dlt_load(*sys.argv[2:6])
        sys.exit(0)
    sys.exit(main())
