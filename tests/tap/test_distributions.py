"""The distributions: the tap's wheel holds the tap alone; the sandbox's works by itself.

The wheels are built as pip builds them, by hatchling from the dev environment, with no
index and no build isolation: these tests need no network.
"""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from helpers.api_requests import api_request, job_path

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_PROJECT = ROOT / "packages" / "prism-sandbox"
# pip itself, run from the dev environment: the fresh one gets nothing but the sandbox.
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")

pytestmark = pytest.mark.distribution


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def _build_wheel(project: Path, directory: Path) -> Path:
    _run(*PIP, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", directory, project)
    (wheel,) = directory.glob("*.whl")
    return wheel


def _dist_info(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info/"


def _console_scripts(wheel: Path) -> set[str]:
    entry_points = configparser.ConfigParser()
    with zipfile.ZipFile(wheel) as archive:
        entry_points.read_string(archive.read(_dist_info(wheel) + "entry_points.txt").decode())
    return set(entry_points["console_scripts"])


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _source_files(package: Path) -> set[str]:
    """The package's files as a wheel names them (hatchling leaves out the ignored bytecode)."""
    return {
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def tap_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(ROOT, tmp_path_factory.mktemp("tap-wheel"))


@pytest.fixture(scope="module")
def sandbox_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(SANDBOX_PROJECT, tmp_path_factory.mktemp("sandbox-wheel"))


@pytest.fixture(scope="module")
def sandbox_venv(tmp_path_factory: pytest.TempPathFactory, sandbox_wheel: Path) -> Path:
    """A fresh environment holding the sandbox's wheel and nothing else, not even pip."""
    venv = tmp_path_factory.mktemp("sandbox-venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    # No --no-deps: with no index, a dependency the wheel declared would fail the install.
    _run(*PIP, "--python", venv / "bin" / "python", "install", "--no-index", sandbox_wheel)
    return venv


def _alone() -> dict[str, str]:
    """The environment for the fresh venv's processes: no PYTHONPATH leading elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}


def test_the_tap_wheel_holds_the_tap_package_alone(tap_wheel: Path) -> None:
    files = _files(tap_wheel)
    package = "tap_prism_imports/"
    assert [name for name in files if not name.startswith((package, _dist_info(tap_wheel)))] == []
    assert [name for name in files if "sandbox" in name] == []
    assert {name for name in files if name.startswith(package)} == _source_files(
        ROOT / "tap_prism_imports"
    )


def test_the_tap_wheel_has_no_command_but_the_tap(tap_wheel: Path) -> None:
    assert _console_scripts(tap_wheel) == {"tap-prism-imports"}


def test_the_sandbox_wheel_holds_the_sandbox_and_no_dependency(sandbox_wheel: Path) -> None:
    files = _files(sandbox_wheel)
    dist_info = _dist_info(sandbox_wheel)
    package = "prism_sandbox/"
    assert [name for name in files if not name.startswith((package, dist_info))] == []
    assert {name for name in files if name.startswith(package)} == _source_files(
        SANDBOX_PROJECT / "prism_sandbox"
    )
    assert f"{dist_info}licenses/LICENSE" in files
    assert _console_scripts(sandbox_wheel) == {"prism-sandbox"}
    with zipfile.ZipFile(sandbox_wheel) as archive:
        metadata = HeaderParser().parsestr(archive.read(dist_info + "METADATA").decode())
    assert metadata.get_all("Requires-Dist") is None
    assert metadata["Requires-Python"] == ">=3.10"


def test_the_sandbox_installs_alone(sandbox_venv: Path) -> None:
    python = sandbox_venv / "bin" / "python"
    names = "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    assert _run(python, "-c", names, env=_alone()).strip() == "['prism-sandbox']"


@pytest.mark.parametrize("command", [["prism-sandbox"], ["python", "-m", "prism_sandbox"]])
def test_the_sandbox_command_alone_shows_its_help(sandbox_venv: Path, command: list[str]) -> None:
    program, *arguments = command
    output = _run(sandbox_venv / "bin" / program, *arguments, "--help", env=_alone())
    assert output.startswith("usage: prism-sandbox")


def test_the_sandbox_alone_serves_and_stops_on_sigterm(sandbox_venv: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [sandbox_venv / "bin" / "prism-sandbox", "--port", "0", "--port-file", port_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_alone(),
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the sandbox did not write its port"
            time.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        assert api_request(base_url, "GET", job_path("job_unknown")).status_code == 404
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.rstrip().endswith("prism-sandbox: stopped")


IMPORT_LOG_PROJECT = ROOT / "packages" / "prism-import-log"
WRITE_AND_READ = """
import datetime, json, sys
from prism_import_log import ImportLog, LogLine

class Response:
    status_code = 200
    headers = {"Location": None}
    content = json.dumps({"job_id": None, "status": "complete", "total": 1,
                          "results": [{"id": None, "created": True}]}).encode()

log = ImportLog(sys.argv[1])
log.record(Response(), team_id="5eed0d3e-0000-4000-8000-000000000001",
           object_type="contact", input_keys=["crm-1"])
with open(sys.argv[1], encoding="utf-8") as file:
    line = LogLine.from_document(json.loads(file.readline()))
print(line.http_status, line.input_keys, line.response["total"])
"""


@pytest.fixture(scope="module")
def import_log_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment holding the import log writer's wheel and nothing else."""
    wheel = _build_wheel(IMPORT_LOG_PROJECT, tmp_path_factory.mktemp("import-log-wheel"))
    venv = tmp_path_factory.mktemp("import-log-venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    _run(*PIP, "--python", venv / "bin" / "python", "install", "--no-index", wheel)
    return venv


def test_the_import_log_writer_installs_alone_and_writes_a_line_it_reads(
    import_log_venv: Path, tmp_path: Path
) -> None:
    python = import_log_venv / "bin" / "python"
    names = "import importlib.metadata as m; print(sorted(d.name for d in m.distributions()))"
    assert _run(python, "-c", names, env=_alone()).strip() == "['prism-import-log']"
    log = tmp_path / "imports.jsonl"
    output = _run(python, "-c", WRITE_AND_READ, log, env=_alone())
    assert output.split() == ["200", "['crm-1']", "1"]
    assert (log.stat().st_mode & 0o777) == 0o600
