"""The models compile for Snowflake, with dbt-snowflake and no Snowflake account.

``meltano invoke dbt-snowflake compile --no-populate-cache`` renders every model and test
with the Snowflake adapter's own macros (types, datediff, dateadd) and the project's
``snowflake__`` dispatches, from the utility's settings as Meltano hands them to the
profile. The profile's account is pointed at a listener on the loopback, which must see
no connection: no model may need the warehouse to compile (an incremental model would,
through is_incremental()). A control run without ``--no-populate-cache``, against a
closed port, shows dbt does try to connect through those settings when it wants to.

What a compile cannot show, Snowflake's own parser: each compiled statement is parsed
with sqlglot's Snowflake dialect instead, and checked for what Snowflake reads
differently from DuckDB and PostgreSQL — a quoted lower-case identifier (the loader's
tables and columns are upper-case there) and a bare TIMESTAMP (the account's
TIMESTAMP_TYPE_MAPPING decides what that is).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest
import sqlglot
from helpers.pipeline_helpers import ROOT, Meltano, require_plugin

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.pipeline

BARE_TIMESTAMP = re.compile(r"\bas\s+timestamp\b(?!_)", re.IGNORECASE)


class Listener:
    """A TCP port on the loopback that counts the connections made to it."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = int(self.socket.getsockname()[1])
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def meltano_for(tmp_path: Path) -> Meltano:
    foreign = re.compile(r"^(TAP_PRISM_IMPORTS_|TARGET_|MELTANO_|MICRO_|DBT_)")
    env = {key: value for key, value in os.environ.items() if not foreign.match(key)}
    database = tmp_path / "meltano.db"
    env.update(
        {
            "MELTANO_DATABASE_URI": f"sqlite:///{database}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_DISABLE_VERSION_CHECK": "true",
            # The dbt-snowflake utility's settings, as a user would give them.
            "DBT_SNOWFLAKE_ACCOUNT": "prism-offline-check",
            "DBT_SNOWFLAKE_USER": "nobody",
            "DBT_SNOWFLAKE_PASSWORD": "not-a-password",
            "DBT_SNOWFLAKE_WAREHOUSE": "NONE",
            "DBT_SNOWFLAKE_DATABASE": "ANALYTICS",
            "DBT_SNOWFLAKE_HOST": "127.0.0.1",
            # dbt's own files for this test, not the project's transform/target.
            "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
            "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
        }
    )
    return Meltano(database, env)


def compiled_nodes(tmp_path: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((tmp_path / "dbt-target" / "manifest.json").read_text("utf-8"))
    nodes: dict[str, dict[str, Any]] = manifest["nodes"]
    return {node_id: node for node_id, node in nodes.items() if node["resource_type"] != "seed"}


def test_every_model_and_test_compiles_for_snowflake_without_a_connection(
    tmp_path: Path, listener: Listener
) -> None:
    require_plugin("utilities", "dbt-snowflake", "dbt")
    meltano = meltano_for(tmp_path)

    result = meltano.command(
        "invoke",
        "dbt-snowflake",
        "compile",
        "--no-populate-cache",
        extra_env={"DBT_SNOWFLAKE_PORT": str(listener.port)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert listener.connections == 0, "dbt connected to the warehouse to compile"

    nodes = compiled_nodes(tmp_path)
    models = {node["name"] for node in nodes.values() if node["resource_type"] == "model"}
    assert models == {path.stem for path in (ROOT / "transform" / "models").rglob("*.sql")}
    tests = [node for node in nodes.values() if node["resource_type"] == "test"]
    assert len(tests) >= 30
    for node in nodes.values():
        sql = node.get("compiled_code")
        assert sql, f"{node['unique_id']} was not compiled"
        sqlglot.parse(sql, read="snowflake")
        assert '"' not in sql, f"{node['unique_id']} quotes an identifier:\n{sql}"
        assert not BARE_TIMESTAMP.search(sql), f"{node['unique_id']}: TIMESTAMP, not _NTZ"
    staged = nodes["model.prism_imports.stg_prism__import_jobs"]["compiled_code"]
    assert "ANALYTICS.prism.import_jobs" in staged
    assert "as timestamp_ntz" in staged
    assert "sysdate()" in nodes["model.prism_imports.prism_imports"]["compiled_code"]


def test_the_compile_check_would_see_a_connection(tmp_path: Path) -> None:
    """Without --no-populate-cache dbt asks the warehouse first, through the same settings."""
    require_plugin("utilities", "dbt-snowflake", "dbt")
    result = meltano_for(tmp_path).command(
        "invoke", "dbt-snowflake", "compile", extra_env={"DBT_SNOWFLAKE_PORT": str(closed_port())}
    )
    assert result.returncode != 0
    assert "Could not connect to Snowflake" in result.stdout + result.stderr
