"""Helpers for the end-to-end tests: Meltano runs and a throwaway PostgreSQL server.

The pipeline tests need what ``make test`` installs before pytest: Meltano in
``.venv-meltano`` and the plugins of ``meltano.yml`` under ``.meltano/``, plus the
PostgreSQL server binaries (Debian package ``postgresql``). When they are missing the
tests skip, unless ``PIPELINE_TESTS=required`` (set by ``make test``), which makes
them fail instead.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from prism_sandbox import DEMO_API_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from prism_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(os.environ.get("MELTANO_BIN", str(ROOT / ".venv-meltano" / "bin" / "meltano")))
PLUGINS = ROOT / ".meltano"
RUN_TIMEOUT_SECONDS = 600
# Where Meltano records what a plugin's venv was installed from, and how it computes that.
FINGERPRINT = ".meltano_plugin_fingerprint"
_FINGERPRINT_OF = (
    "import shlex, sys; from meltano.core.venv_service import fingerprint; "
    "print(fingerprint(shlex.split(sys.argv[1])), end='')"
)
# Variables from the caller's shell that would change what a pipeline run does.
_FOREIGN_ENV = re.compile(r"^(TAP_PRISM_IMPORTS_|TARGET_|MELTANO_|MICRO_)")


def offline_env() -> dict[str, str]:
    """This process's environment without the caller's pipeline settings, Meltano offline."""
    env = {key: value for key, value in os.environ.items() if not _FOREIGN_ENV.match(key)}
    env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["MELTANO_CLI_DISABLE_VERSION_CHECK"] = "true"
    return env


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``PIPELINE_TESTS=required``."""
    if os.environ.get("PIPELINE_TESTS") == "required":
        pytest.fail(f"{reason} (PIPELINE_TESTS=required)", pytrace=False)
    pytest.skip(f"{reason}; `make test` installs it")


def require_plugin(kind: str, name: str, executable: str | None = None) -> Path:
    """The plugin's venv under ``.meltano``, after checking Meltano is installed."""
    if not MELTANO.exists():
        missing(f"Meltano is not installed at {MELTANO}")
    venv = PLUGINS / kind / name / "venv"
    if not (venv / "bin" / (executable or name)).exists():
        missing(f"the Meltano plugin {name} is not installed (meltano install)")
    return venv


def job_refs_file(sandbox: Sandbox, path: Path, job_ids: Sequence[str] | None = None) -> Path:
    """Write the sandbox's jobs (all, or ``job_ids``) as a refs file for the tap."""
    ids = sandbox.job_ids() if job_ids is None else job_ids
    path.write_text("".join(f"{sandbox.ref(job_id)}\n" for job_id in ids), encoding="utf-8")
    return path


@dataclass
class Meltano:
    """Runs ``meltano`` in the repository (or ``project``) with a system database of its own."""

    database: Path
    env: dict[str, str]
    project: Path = ROOT

    @classmethod
    def offline(cls, workdir: Path, project: Path = ROOT) -> Meltano:
        """Meltano in ``project``, offline, with a system database in ``workdir``."""
        database = workdir / "meltano.db"
        env = {**offline_env(), "MELTANO_DATABASE_URI": f"sqlite:///{database}"}
        return cls(database, env, project)

    @classmethod
    def for_sandbox(
        cls, sandbox: Sandbox, workdir: Path, refs_file: Path, project: Path = ROOT
    ) -> Meltano:
        meltano = cls.offline(workdir, project)
        meltano.env.update(
            {
                "TAP_PRISM_IMPORTS_API_URL": sandbox.base_url,
                "TAP_PRISM_IMPORTS_API_KEY": DEMO_API_KEY,
                "TAP_PRISM_IMPORTS_JOB_IDS_FILE": str(refs_file),
            }
        )
        return meltano

    def command(
        self, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``meltano ARGS`` in the project, whatever its exit code."""
        return subprocess.run(
            [str(MELTANO), *args],
            cwd=self.project,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )

    def start(self, log: Path, *blocks: str) -> subprocess.Popen[str]:
        """``meltano run --no-install BLOCKS`` in the background, its output into ``log``.

        In a process group of its own, which holds the tap and the loader too.
        """
        with log.open("w", encoding="utf-8") as output:
            return subprocess.Popen(
                [str(MELTANO), "run", "--no-install", *blocks],
                cwd=self.project,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )

    def run(self, *blocks: str, extra_env: Mapping[str, str] | None = None) -> str:
        """``meltano run --no-install BLOCKS``; the combined output, or fail with its end."""
        result = self.command("run", "--no-install", *blocks, extra_env=extra_env)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            tail = "\n".join(output.splitlines()[-60:])
            pytest.fail(f"meltano run {' '.join(blocks)} exited {result.returncode}:\n{tail}")
        return output


def new_project(directory: Path) -> Path:
    """A project made by ``meltano init`` in ``directory`` (which must not exist yet).

    Nothing is installed in it: ``borrow_plugin`` lends it the repository's plugins.
    """
    if not MELTANO.exists():
        missing(f"Meltano is not installed at {MELTANO}")
    result = subprocess.run(
        [str(MELTANO), "init", "--no-usage-stats", str(directory)],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def borrow_plugin(project: Path, kind: str, name: str, pip_url: str) -> None:
    """Give ``project`` the repository's installed plugin ``name`` without installing it.

    The project's venv is a directory of links to the entries of the repository's venv: if
    Meltano ever reinstalled the plugin there (it first deletes the venv directory), it
    would delete the links, never the repository's plugin. Its fingerprint is Meltano's for
    ``pip_url`` (the project's), so that Meltano sees the plugin as installed from it.
    """
    source = require_plugin(kind, name)
    venv = project / ".meltano" / kind / name / "venv"
    venv.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != FINGERPRINT:
            (venv / entry.name).symlink_to(entry)
    fingerprint = subprocess.run(
        [str(MELTANO.parent / "python"), "-c", _FINGERPRINT_OF, pip_url],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=True,
    )
    (venv / FINGERPRINT).write_text(fingerprint.stdout, encoding="utf-8")


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's ``bin`` directory (``PG_BINDIR`` overrides)."""
    if "PG_BINDIR" in os.environ:
        return Path(os.environ["PG_BINDIR"])
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if path.parent.parent.name.isdigit()
    ]
    if candidates:
        return max(candidates, key=lambda path: int(path.parent.name))
    initdb = shutil.which("initdb")
    if initdb is None:
        missing("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    """A PostgreSQL server of the test's own: a temporary cluster on 127.0.0.1."""

    bindir: Path
    base: Path
    port: int
    user: str
    password: str
    database: str
    run_as: tuple[str, ...]

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def target_env(self) -> dict[str, str]:
        """Connection settings for the ``target-postgres`` loader, as Meltano env vars."""
        return {
            "TARGET_POSTGRES_HOST": "127.0.0.1",
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": self.password,
            "TARGET_POSTGRES_DATABASE": self.database,
        }

    def _server_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.run_as, *args], capture_output=True, text=True, timeout=120, check=False
        )

    def psql(self, sql: str, database: str | None = None) -> str:
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database or self.database,
                "-c",
                sql,
            ],
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            msg = f"psql failed ({result.returncode}): {result.stderr.strip()}\nSQL: {sql}"
            raise RuntimeError(msg)
        return result.stdout

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The query's rows as JSON objects (timestamps come back as ISO 8601 text)."""
        text = self.psql(f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({sql}) AS q")
        rows: list[dict[str, Any]] = json.loads(text)
        return rows

    def start(self, timezone: str) -> None:
        """initdb and start; the server's ``TimeZone`` is ``timezone`` (not UTC, on purpose)."""
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        self._chown(self.base, pwfile)
        init = self._server_cmd(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if init.returncode != 0:
            msg = f"initdb failed: {init.stdout}{init.stderr}"
            raise RuntimeError(msg)
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.base} "
            f"-c fsync=off -c full_page_writes=off -c timezone={timezone}"
        )
        started = self._server_cmd(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = self.base / "server.log"
            detail = log.read_text(encoding="utf-8") if log.exists() else ""
            msg = f"pg_ctl start failed: {started.stdout}{started.stderr}\n{detail}"
            raise RuntimeError(msg)
        self.psql(f'CREATE DATABASE "{self.database}"', database="postgres")

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._server_cmd(
                str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"
            )

    def _chown(self, *paths: Path) -> None:
        if self.run_as:
            account = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, account.pw_uid, account.pw_gid)


@contextlib.contextmanager
def postgres_server(timezone: str = "America/New_York") -> Iterator[Postgres]:
    """A started PostgreSQL server on a free loopback port, removed afterwards.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres``
    account and the server commands run through ``runuser -u postgres``.
    """
    bindir = postgres_bindir()
    for tool in ("initdb", "pg_ctl", "psql"):
        if not (bindir / tool).exists():
            missing(f"{bindir / tool} is missing (Debian package postgresql)")
    run_as: tuple[str, ...] = ()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root needs the `postgres` account to run PostgreSQL")
        run_as = ("runuser", "-u", "postgres", "--")
    # The postgres account must reach the cluster: as root, not under a private TMPDIR.
    base = Path(tempfile.mkdtemp(prefix="prism-pg-", dir="/tmp" if run_as else None))
    server = Postgres(
        bindir=bindir,
        base=base,
        port=_free_port(),
        user="prism",
        password=secrets.token_hex(16),
        database="warehouse",
        run_as=run_as,
    )
    try:
        server.start(timezone)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def utc(value: str) -> datetime.datetime:
    """A logged or API date-time as the naive UTC value a ``timestamp`` column holds."""
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def naive(value: str | None) -> datetime.datetime | None:
    """A ``timestamp without time zone`` as PostgreSQL's JSON renders it."""
    return None if value is None else datetime.datetime.fromisoformat(value)


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
