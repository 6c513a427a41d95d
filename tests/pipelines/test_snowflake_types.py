"""docs/warehouses.md's Snowflake type table is what target-snowflake itself would create.

No Snowflake account is needed: the loader's own connector maps each property of the
tap's discovered schemas to a SQL type, with the loader's config from ``meltano.yml``
(``uuid_format: string``), and compiles it with the Snowflake dialect, as in the
``CREATE TABLE`` it sends. That runs in the loader's plugin environment (it pins a
singer-sdk pre-release of its own), as a small script given to that environment's python.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from helpers.pipeline_helpers import MELTANO, ROOT, require_plugin

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.pipeline

WAREHOUSES = ROOT / "docs" / "warehouses.md"
TABLE_HEADING = "## Snowflake (MeltanoLabs `target-snowflake`)"
# The type docs/warehouses.md says the loader's default `uuid_format: native` gives UUID columns.
NATIVE_UUID_CLAIM = re.compile(r"the default `native` (?:declares|makes) them `([^`]+)`")

# Reads {"config": {...}, "catalog": {...}} on stdin; prints, per stream, each column's
# type as target-snowflake compiles it for its CREATE TABLE.
LOADER_MAPPING = """
import json, sys
from snowflake.sqlalchemy.snowdialect import SnowflakeDialect
from target_snowflake.connector import SnowflakeConnector

given = json.load(sys.stdin)
connector = SnowflakeConnector(config=given["config"])
dialect = SnowflakeDialect()
print(json.dumps({
    stream["tap_stream_id"]: {
        name: connector.to_sql_type(schema).compile(dialect=dialect)
        for name, schema in stream["schema"]["properties"].items()
    }
    for stream in given["catalog"]["streams"]
}))
"""


def clean_env() -> dict[str, str]:
    """This environment without settings that would change what Meltano or the tap see."""
    foreign = re.compile(r"^(TAP_PRISM_IMPORTS_|TARGET_|MELTANO_|MICRO_)")
    env = {key: value for key, value in os.environ.items() if not foreign.match(key)}
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", MELTANO_CLI_DISABLE_VERSION_CHECK="true")
    return env


def snowflake_section() -> str:
    text = WAREHOUSES.read_text(encoding="utf-8")
    assert TABLE_HEADING in text, f"docs/warehouses.md has no {TABLE_HEADING!r} section"
    return text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]


def readme_snowflake_types() -> dict[str, str]:
    """The table under the Snowflake heading: column name -> the first code span of its type."""
    rows = [line for line in snowflake_section().splitlines() if line.startswith("| `")]
    assert rows, "no table rows under the Snowflake heading"
    types: dict[str, str] = {}
    for row in rows:
        columns_cell, type_cell = (cell.strip() for cell in row.strip("|").split("|")[:2])
        sql_type = re.search(r"`([^`]+)`", type_cell)
        assert sql_type, f"docs/warehouses.md Snowflake table: no `TYPE` in {row!r}"
        for column in re.findall(r"`([^`]+)`", columns_cell):
            assert column not in types, f"docs/warehouses.md Snowflake table lists {column} twice"
            types[column] = sql_type.group(1)
    return types


def loader_config() -> dict[str, object]:
    """target-snowflake's config as ``meltano.yml`` gives it (no environment overrides)."""
    result = subprocess.run(
        [str(MELTANO), "config", "print", "target-snowflake"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    config: dict[str, object] = json.loads(result.stdout)
    return config


def discovered_catalog() -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "tap_prism_imports.tap", "--discover"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    catalog: dict[str, object] = json.loads(result.stdout)
    return catalog


def loader_types(venv: Path, config: dict[str, object]) -> dict[str, dict[str, str]]:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOADER_MAPPING],
        input=json.dumps({"config": config, "catalog": discovered_catalog()}),
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"target-snowflake's type mapping failed:\n{result.stderr}"
    types: dict[str, dict[str, str]] = json.loads(result.stdout)
    return types


@pytest.fixture(scope="module")
def loader() -> tuple[Path, dict[str, object]]:
    """target-snowflake's plugin environment and its config from ``meltano.yml``."""
    return require_plugin("loaders", "target-snowflake"), loader_config()


def test_readme_snowflake_types_are_the_loaders_own_mapping(
    loader: tuple[Path, dict[str, object]],
) -> None:
    venv, config = loader
    assert config.get("uuid_format") == "string", "meltano.yml keeps UUIDs with their dashes"
    by_stream = loader_types(venv, config)
    assert set(by_stream) == {"import_jobs", "import_results"}

    # Snowflake stores unquoted identifiers upper-case; a column in both streams is one
    # row of the table, so it must map alike in both.
    merged: dict[str, str] = {}
    for stream, columns in by_stream.items():
        for name, sql_type in columns.items():
            column = name.upper()
            assert merged.setdefault(column, sql_type) == sql_type, (
                f"{stream}.{name} maps to {sql_type}, elsewhere to {merged[column]}"
            )
    assert readme_snowflake_types() == merged


def test_readme_names_the_type_the_default_uuid_format_gives(
    loader: tuple[Path, dict[str, object]],
) -> None:
    """Why docs/warehouses.md sets `uuid_format: string`: the default maps UUIDs otherwise."""
    venv, config = loader
    claim = NATIVE_UUID_CLAIM.search(snowflake_section())
    assert claim, "docs/warehouses.md's Snowflake table says what `uuid_format: native` gives"
    native = loader_types(venv, {**config, "uuid_format": "native"})
    assert native["import_jobs"]["team_id"] == native["import_results"]["record_id"]
    assert native["import_results"]["record_id"] == claim.group(1)
    assert claim.group(1) != readme_snowflake_types()["RECORD_ID"]
