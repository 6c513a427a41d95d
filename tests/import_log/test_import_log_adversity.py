"""The import log at volume and under adversity, with the tap run as a command.

What the import log cannot load is lost for good (the API never keeps sync or rejected
imports): every line the writer writes loads, memory and state stay flat whatever the
log's size, a stop is obeyed while reading, and one bad file is that file's problem.
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import typing as t

import httpx
import pytest
from helpers.tap_runner import cli_command, cli_env, run_cli, singer_messages

from prism_import_log import ImportLog
from prism_sandbox import DEMO_TEAM_ID
from tap_prism_imports.import_log.reader import _format_1_fingerprint

if t.TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

NOW = datetime.datetime.now(datetime.timezone.utc)


def sync_body(rows: int, *, message: str = "email is invalid") -> dict[str, t.Any]:
    results: list[dict[str, t.Any]] = [
        {"id": f"00000000-0000-4000-8000-{i:012d}", "created": True, "existing": False}
        for i in range(rows)
    ]
    if results:
        results[0] = {"id": None, "error": {"code": "validation_error", "message": message}}
    return {"job_id": None, "status": "complete", "total": rows, "results": results}


def log_line(
    status: int = 200,
    response: dict[str, t.Any] | None = None,
    *,
    submitted_at: datetime.datetime = NOW,
    **fields: t.Any,
) -> str:
    line = {
        "v": 1,
        "team_id": DEMO_TEAM_ID,
        "object_type": "contact",
        "submitted_at": submitted_at.isoformat(),
        "http_status": status,
        "location": None,
        "idempotency_key": None,
        "response": sync_body(1) if response is None else response,
        **fields,
    }
    return json.dumps(line) + "\n"


def write_sync_log(path: Path, lines: int, *, keyed: bool = False) -> None:
    """``lines`` one-row sync imports, each its own import."""
    with path.open("w", encoding="utf-8") as file:
        for n in range(lines):
            moment = NOW - datetime.timedelta(seconds=lines - n)
            key = f"batch-{n}" if keyed else None
            file.write(log_line(submitted_at=moment, input_keys=[f"crm-{n}"], idempotency_key=key))


def config(log: Path | str, **settings: t.Any) -> dict[str, t.Any]:
    return {"api_key": "k", "api_url": "http://127.0.0.1:9", "import_log": str(log), **settings}


def records(stdout: str, stream: str) -> list[dict[str, t.Any]]:
    return [
        m["record"]
        for m in singer_messages(stdout)
        if m["type"] == "RECORD" and m["stream"] == stream
    ]


def states(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith('{"type":"STATE"')]


def last_state(stdout: str) -> dict[str, t.Any]:
    found = states(stdout)
    return json.loads(found[-1])["value"] if found else {}


# --- no line the writer writes can fail to load -----------------------------------------


def test_lone_surrogates_and_nul_from_any_writer_load_replaced(tmp_path: Path) -> None:
    log_path = tmp_path / "imports.jsonl"
    writer = ImportLog(log_path)
    body = json.dumps(sync_body(2)).replace("email is invalid", "name \\ud83d is invalid")
    writer.record(
        httpx.Response(200, content=body.encode()),
        team_id=DEMO_TEAM_ID,
        object_type="contact",
        input_keys=["crm\x00-1", "k\ud800"],
    )
    # As Node's JSON.stringify writes an unpaired surrogate: an escape orjson refuses.
    node = log_line(response=sync_body(1, message="x"), input_keys=["a"]).replace(
        '"message": "x"', '"message": "x \\udc00"'
    )
    with log_path.open("a", encoding="utf-8") as file:
        file.write(node)

    result = run_cli(tmp_path, config(log_path))
    assert result.returncode == 0, result.stderr
    rows = records(result.stdout, "import_results")
    assert [row["source_key"] for row in rows] == ["crm-1", "k\ufffd", "a"]
    assert rows[0]["error_message"] == "name \ufffd is invalid"
    assert rows[2]["error_message"] == "x \ufffd"
    assert "NUL characters removed" in result.stderr
    assert "surrogate" in result.stderr


def test_a_200_whose_body_is_no_snapshot_loads_as_a_failed_import(tmp_path: Path) -> None:
    log_path = tmp_path / "imports.jsonl"
    ImportLog(log_path).record(
        httpx.Response(200, content=b"<html>proxy says hello</html>"),
        team_id=DEMO_TEAM_ID,
        object_type="contact",
        input_keys=["a", "b"],
    )
    result = run_cli(tmp_path, config(log_path))
    assert result.returncode == 0, result.stderr
    (job,) = records(result.stdout, "import_jobs")
    assert (job["mode"], job["status"], job["error_code"]) == (
        "sync",
        "failed",
        "unusable_response",
    )
    assert job["total"] == 2
    assert "no import snapshot" in job["error_message"]
    again = run_cli(tmp_path, config(log_path), state=last_state(result.stdout))
    assert records(again.stdout, "import_jobs") == []


# --- flat memory, small state, few STATE messages ----------------------------------------


def _peak_rss_and_output(command: list[str]) -> tuple[int, str]:
    """Run ``command``; its peak RSS in KiB (from wait4, not this process's) and stdout."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=cli_env())
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.returncode == 0
        out.seek(0)
        return usage.ru_maxrss, out.read().decode()


@pytest.mark.parametrize("keyed", [False, True])
def test_memory_and_state_do_not_grow_with_the_log(tmp_path: Path, keyed: bool) -> None:
    sizes = (2_000, 20_000)
    peaks, finals, totals, counts = [], [], [], []
    for lines in sizes:
        log_path = tmp_path / f"imports-{lines}.jsonl"
        write_sync_log(log_path, lines, keyed=keyed)
        workdir = tmp_path / str(lines)
        workdir.mkdir()
        peak, stdout = _peak_rss_and_output(cli_command(workdir, config(log_path), None))
        assert len(records(stdout, "import_jobs")) == lines
        found = states(stdout)
        peaks.append(peak)
        finals.append(len(found[-1]))
        totals.append(sum(map(len, found)))
        counts.append(len(found))
    # Ten times the lines: memory grows by what a set of ids takes, not by the rows.
    assert peaks[1] - peaks[0] < 25 * 1024, peaks
    assert max(counts) <= 6, counts
    assert totals[1] <= 10 * finals[1], (totals, finals)
    if keyed:
        # The last day's keyed imports are remembered (replays), nothing more.
        assert finals[1] < 70 * sizes[1], finals
    else:
        assert finals[1] - finals[0] < 200, finals


def test_a_rerun_over_an_unchanged_log_reads_nothing_and_emits_nothing(tmp_path: Path) -> None:
    log_path = tmp_path / "imports.jsonl"
    write_sync_log(log_path, 5_000)
    first = run_cli(tmp_path, config(log_path))
    state = last_state(first.stdout)
    started = time.monotonic()
    again = run_cli(tmp_path, config(log_path), state=state)
    assert again.returncode == 0, again.stderr
    assert records(again.stdout, "import_jobs") == []
    assert time.monotonic() - started < 10


# --- stops within a second, reading included --------------------------------------------


def test_sigterm_while_a_long_log_is_read_stops_within_a_second(tmp_path: Path) -> None:
    log_path = tmp_path / "imports.jsonl"
    write_sync_log(log_path, 20_000)
    command = cli_command(tmp_path, config(log_path), None)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=cli_env()
    ) as process:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while not lines[-1].startswith(b'{"type":"RECORD","stream":"import_jobs"'):
            lines.append(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        lines += process.stdout.readlines()
        code = process.wait(timeout=30)
        stopped = time.monotonic() - signalled
    assert code == 128 + signal.SIGTERM
    assert stopped < 1.0
    messages = [json.loads(line) for line in lines if line.strip()]
    assert messages[-1]["type"] == "STATE"
    first = [
        m["record"]["job_id"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "import_jobs"
    ]
    assert 0 < len(first) < 20_000

    rerun = run_cli(tmp_path, config(log_path), state=messages[-1]["value"])
    assert rerun.returncode == 0, rerun.stderr
    second = [job["job_id"] for job in records(rerun.stdout, "import_jobs")]
    # Every import once: the claimed ones are not sent again, the rest all are.
    assert len(set(first) | set(second)) == 20_000
    assert len(set(first) & set(second)) == 0


# --- one bad file is that file's problem ------------------------------------------------


def run_restricted(
    folder: Path, settings: dict[str, t.Any], state: dict[str, t.Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """The tap as a command that obeys file modes: root reads and writes anything, so
    as root it runs without the capabilities that override them (util-linux setpriv)."""
    command = cli_command(folder, settings, state)
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=cli_env()
    )


def test_an_unreadable_file_is_named_and_the_others_and_the_jobs_still_load(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    job = sandbox.add_job(rows=3)
    folder = tmp_path / "logs"
    folder.mkdir()
    for name, rows in (("a", 1), ("b", 2), ("c", 3)):
        (folder / f"{name}.jsonl").write_text(log_line(response=sync_body(rows)))
    (folder / "b.jsonl").chmod(0o000)
    settings = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(job)],
        "import_log": f"{folder}/*.jsonl",
    }
    first = run_restricted(tmp_path, settings)
    assert first.returncode == 1
    errors = [line for line in first.stderr.splitlines() if "| ERROR" in line]
    assert any(f"{folder}/b.jsonl cannot be read: Permission denied" in e for e in errors)
    assert "Traceback" not in first.stderr
    jobs = records(first.stdout, "import_jobs")
    assert sorted(j["total"] for j in jobs) == [1, 3, 3]  # a, c and the API's job

    (folder / "b.jsonl").chmod(0o644)
    second = run_restricted(tmp_path, settings, last_state(first.stdout))
    assert second.returncode == 0, second.stderr
    assert [j["total"] for j in records(second.stdout, "import_jobs")] == [2]


def test_a_read_only_or_full_batch_root_is_one_line_naming_the_setting(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Small enough that its rows stay in memory: the limit below is for the batch file.
    job = sandbox.add_job(rows=500)
    read_only = tmp_path / "batches"
    read_only.mkdir(mode=0o555)
    storage = {"root": f"file://{read_only}", "prefix": "p-"}
    settings: dict[str, t.Any] = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(job)],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": storage,
        },
    }
    result = run_restricted(tmp_path, settings)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "`batch_config.storage.root`" in errors[0]
    assert str(read_only) in errors[0]
    assert "Traceback" not in result.stderr

    # A full disk: a file size limit makes every write past 4 KiB fail alike.
    storage["root"] = f"file://{tmp_path / 'full'}"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    full = subprocess.run(
        cli_command(tmp_path, settings, None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=cli_env(),
        preexec_fn=small_files,
    )
    assert full.returncode == 1
    errors = [line for line in full.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, full.stderr
    assert "`batch_config.storage.root`" in errors[0]
    assert "File too large" in errors[0]


def test_batch_files_are_readable_by_their_owner_only(sandbox: Sandbox, tmp_path: Path) -> None:
    job = sandbox.add_job(rows=5)
    root = tmp_path / "batches"
    settings = {
        "api_key": sandbox.api_key,
        "api_url": sandbox.base_url,
        "job_ids": [sandbox.ref(job)],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{root}", "prefix": "p-"},
        },
    }
    result = run_cli(tmp_path, settings)
    assert result.returncode == 0, result.stderr
    files = list(root.iterdir())
    assert files
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files)


def test_a_path_with_glob_characters_that_exists_is_read_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "Team [EU]"
    folder.mkdir()
    log_path = folder / "imports.jsonl"
    log_path.write_text(log_line(), encoding="utf-8")
    result = run_cli(tmp_path, config(log_path))
    assert result.returncode == 0, result.stderr
    assert len(records(result.stdout, "import_jobs")) == 1
    assert "matches no file" not in result.stderr


# --- state written by the previous release ------------------------------------------------


def test_format_1_state_converts_with_nothing_emitted_twice_or_skipped(tmp_path: Path) -> None:
    log_path = tmp_path / "imports.jsonl"
    first_lines = log_line(idempotency_key="k-1", submitted_at=NOW) + log_line(500, {"m": 1})
    log_path.write_text(first_lines, encoding="utf-8")
    result = run_cli(tmp_path, config(log_path))
    emitted = {job["job_id"]: job["submitted_at"] for job in records(result.stdout, "import_jobs")}
    data = log_path.read_bytes()
    window = min(len(data), 1024)
    legacy_entry = {
        "offset": len(data),
        "line": 2,
        "fingerprint": _format_1_fingerprint(data[:window], len(data), data[-window:]),
        "oldest": NOW.isoformat(),
    }
    legacy = {
        "bookmarks": {
            "import_jobs": {
                "jobs_format": 1,
                "jobs": {},
                "import_log": {
                    "format": 1,
                    "files": {str(log_path): legacy_entry},
                    "emitted": emitted,
                },
            }
        }
    }
    with log_path.open("a", encoding="utf-8") as file:
        file.write(log_line(409, {"message": "new"}))
    converted = run_cli(tmp_path, config(log_path), state=legacy)
    assert converted.returncode == 0, converted.stderr
    assert [j["error_code"] for j in records(converted.stdout, "import_jobs")] == ["http_409"]
    log_state = last_state(converted.stdout)["bookmarks"]["import_jobs"]["import_log"]
    assert log_state["format"] == 2
    assert "emitted" not in log_state

    # A rotated file under format 1 (read again from its start): its imports still once.
    rotated = tmp_path / "rotated.jsonl"
    rotated.write_bytes(data)
    moved = json.loads(json.dumps(legacy))
    moved_log = moved["bookmarks"]["import_jobs"]["import_log"]
    moved_log["files"] = {str(rotated): {**legacy_entry, "fingerprint": "0" * 32}}
    again = run_cli(tmp_path, config(rotated), state=moved)
    assert again.returncode == 0, again.stderr
    assert records(again.stdout, "import_jobs") == []


def test_the_writer_is_the_standard_library_alone() -> None:
    """Application servers install it alone: importing it pulls in nothing else."""
    probe = (
        "import sys; before = set(sys.modules); import prism_import_log; "
        "extra = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(extra - set(sys.stdlib_module_names) - {'prism_import_log'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
