"""What Meltano 4.4 hands the tap for its fractional settings, by kind and by source.

The tap takes ``poll_interval_seconds``, ``max_wait_seconds``, ``requests_per_second`` and
``request_timeout_seconds`` as JSON numbers, fractions included. Meltano casts a value
that arrives as text (an env var, ``.env``, ``meltano config set``) by the setting's kind:

- ``integer`` (what the definition declares): whole numbers from anywhere; a fraction
  written in ``meltano.yml`` as a YAML number reaches the tap as it is, while a fraction
  as text is refused with a traceback before anything runs;
- ``decimal``: ``meltano config set`` stores a fraction as a YAML number, but any value
  from an env var becomes a ``Decimal`` that Meltano cannot write into the tap's config
  file, so every run fails. Env vars matter more here, hence ``integer``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from helpers.pipeline_helpers import ROOT, Meltano, borrow_plugin, job_refs_file

if TYPE_CHECKING:
    from pathlib import Path

    from prism_sandbox import Sandbox

pytestmark = pytest.mark.pipeline

TAP = "tap-prism-imports"


def project(
    tmp_path: Path, *, kind: str = "integer", config: dict[str, Any] | None = None
) -> Meltano:
    """A copy of this project's ``meltano.yml`` with the tap's fractional settings of ``kind``."""
    directory = tmp_path / "project"
    directory.mkdir()
    document = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in document["plugins"]["extractors"] if p["name"] == TAP)
    for setting in tap["settings"]:
        if setting["name"] in {"requests_per_second", "max_wait_seconds"}:
            setting["kind"] = kind
    if config:
        tap["config"] = config
    (directory / "meltano.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return Meltano.offline(tmp_path, directory)


def tap_config(meltano: Meltano, **env: str) -> dict[str, Any]:
    """The config file Meltano writes for the tap, as the tap would read it."""
    result = meltano.command("invoke", "--no-install", "--dump=config", TAP, extra_env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_integer_takes_whole_numbers_from_env_and_fractions_from_meltano_yml(
    tmp_path: Path,
) -> None:
    meltano = project(tmp_path, config={"requests_per_second": 0.5})
    config = tap_config(meltano, TAP_PRISM_IMPORTS_MAX_WAIT_SECONDS="600")
    assert config["requests_per_second"] == 0.5
    assert config["max_wait_seconds"] == 600


def test_integer_refuses_a_fraction_given_as_text(tmp_path: Path) -> None:
    meltano = project(tmp_path)
    config_set = meltano.command("config", "set", TAP, "requests_per_second", "2.5")
    from_env = meltano.command(
        "invoke",
        "--no-install",
        "--dump=config",
        TAP,
        extra_env={"TAP_PRISM_IMPORTS_REQUESTS_PER_SECOND": "2.5"},
    )
    for result in (config_set, from_env):
        assert result.returncode != 0
        assert "invalid literal for int() with base 10: '2.5'" in result.stdout + result.stderr


def test_decimal_would_break_every_value_from_an_env_var(tmp_path: Path) -> None:
    meltano = project(tmp_path, kind="decimal")
    config_set = meltano.command("config", "set", TAP, "requests_per_second", "2.5")
    assert config_set.returncode == 0, config_set.stdout + config_set.stderr
    assert tap_config(meltano)["requests_per_second"] == 2.5

    from_env = meltano.command(
        "invoke",
        "--no-install",
        "--dump=config",
        TAP,
        extra_env={"TAP_PRISM_IMPORTS_MAX_WAIT_SECONDS": "600"},
    )
    assert from_env.returncode != 0
    assert "Object of type Decimal is not JSON serializable" in from_env.stdout + from_env.stderr


def test_the_tap_runs_with_a_fraction_from_meltano_yml(sandbox: Sandbox, tmp_path: Path) -> None:
    meltano = project(tmp_path, config={"requests_per_second": 2.5, "request_timeout_seconds": 7.5})
    borrow_plugin(meltano.project, "extractors", TAP, "-e .")
    job = sandbox.add_job(rows=3)
    refs = job_refs_file(sandbox, tmp_path / "refs", [job])
    result = meltano.command(
        "invoke",
        TAP,
        extra_env={
            "TAP_PRISM_IMPORTS_API_URL": sandbox.base_url,
            "TAP_PRISM_IMPORTS_API_KEY": sandbox.api_key,
            "TAP_PRISM_IMPORTS_JOB_IDS_FILE": str(refs),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if '"RECORD"' in line]
    assert len([r for r in records if r["stream"] == "import_results"]) == 3
    assert [entry["job_id"] for entry in sandbox.requests] == [job]
