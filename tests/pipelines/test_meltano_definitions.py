"""The tap's Meltano plugin definition: one source, and what the tap and Meltano make of it.

``meltano-hub/extractors/tap-prism-imports/prism-imports.yml`` (Meltano Hub's format) is
the source; ``scripts/meltano_definitions.py`` writes the ``tap-prism-imports`` entry of
``meltano.yml`` and the README's snippet from it. These tests check that both are up to
date; that the definition says what ``tap-prism-imports --about`` says, each difference
with its reason; that Meltano Hub would accept its keys; that ``meltano add --from-ref``
turns it into the very entry generated in ``meltano.yml``; and that Meltano's own rewrites
of ``meltano.yml`` (``meltano config set`` and the like) leave the file as it is.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.pipeline_helpers import ROOT, Meltano, new_project

SCRIPT = ROOT / "scripts" / "meltano_definitions.py"
DEFINITION = ROOT / "meltano-hub" / "extractors" / "tap-prism-imports" / "prism-imports.yml"
MELTANO_YML = ROOT / "meltano.yml"
TAP = Path(sys.executable).parent / "tap-prism-imports"
GENERATED = re.compile(
    r"^  # BEGIN generated[^\n]*\n(.*?)^  # END generated$", re.MULTILINE | re.DOTALL
)

# Where the definition departs from --about, and why (its header says so too).
CAPABILITIES_LEFT_OUT = {
    "activate-version": "both streams are INCREMENTAL: the SDK sends ACTIVATE_VERSION "
    "for FULL_TABLE streams only, so the tap never sends one",
}
SETTINGS_ADDED = {
    "batch_config.batch_size": "the SDK reads it (rows per batch file) though its --about "
    "schema leaves it out",
}
# JSON Schema type -> Meltano kind. `number` becomes `integer`: with `decimal`, Meltano 4.4
# cannot write a value that comes from an env var into the tap's config
# (tests/test_meltano_settings.py).
KINDS = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "number": "integer",
    "array": "array",
    "object": "object",
}
# What each plugin of meltano.yml leaves out of the definition's capabilities, and why.
PROJECT_CAPABILITIES_LEFT_OUT = {
    "tap-prism-imports": {"batch": "it sends RECORD messages: tap-prism-imports-batch sends BATCH"},
    "tap-prism-imports-batch": {
        "stream-maps": "the tap refuses stream maps with batch_config",
        "schema-flattening": "the tap refuses flattening with batch_config",
    },
}

# What Meltano Hub accepts in an extractor definition: meltano/hub's
# schemas/plugin_definitions/extractors.schema.json with the schemas it refers to
# (common/common, common/extractors_specific, plugin_definitions/hub_metadata,
# common/base_setting), read at commit 9d28b36 (2026-08).
HUB_REQUIRED = {"name", "namespace", "variant", "quality"}
HUB_KEYS = {
    *HUB_REQUIRED,
    *("pip_url", "label", "description", "executable", "settings", "docs", "repo"),
    *("logo_url", "hidden", "python", "settings_group_validation", "commands"),
    *("capabilities", "metadata", "schema", "select", "maintenance_status", "domain_url"),
    *("keywords", "requires", "definition", "next_steps", "settings_preamble", "usage"),
    *("prereq", "supported_python_versions", "log_parser"),
}
HUB_CAPABILITIES = {
    *("properties", "catalog", "discover", "state", "about", "stream-maps"),
    *("schema-flattening", "activate-version", "batch", "test", "log-based"),
    "structured-logging",
}
HUB_SETTING_KEYS = {
    *("name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip"),
    *("documentation", "env", "value_processor", "value_post_processor", "oauth"),
    *("options", "docs", "hidden", "sensitive"),
}
HUB_KINDS = {
    *("oauth", "hidden", "password", "date_iso8601", "file", "email", "integer"),
    *("options", "object", "array", "boolean", "string", "decimal"),
}
HUB_QUALITY = {"gold", "silver", "bronze", "unknown"}
HUB_MAINTENANCE_STATUS = {"active", "beta", "development", "inactive", "unknown"}


def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    return loaded


def about() -> dict[str, Any]:
    result = subprocess.run(
        [str(TAP), "--about", "--format=json"], capture_output=True, text=True, check=True
    )
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def about_settings(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Each setting by name, nested objects spelled out as Meltano Hub does (not stream_maps)."""
    settings: dict[str, dict[str, Any]] = {}
    for name, prop in schema["properties"].items():
        nested = "object" in as_list(prop.get("type")) and prop.get("properties")
        if nested and name != "stream_maps":
            settings.update(about_settings(prop, f"{prefix}{name}."))
        else:
            settings[f"{prefix}{name}"] = prop
    return settings


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def described(prop: dict[str, Any]) -> str:
    """``--about``'s description, with the default stated when there is one."""
    default = prop.get("default")
    if default is None or default == []:
        return str(prop["description"])
    return f"{prop['description']} Default: {json.dumps(default)}."


def expected_kind(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "options"
    types = {t for t in as_list(prop.get("type")) if t != "null"}
    if not types:  # a oneOf of alternatives (faker_config.seed, faker_config.locale)
        types = {t for option in prop["oneOf"] for t in as_list(option.get("type"))} - {"null"}
        return "array" if "array" in types else "string"
    (json_type,) = types
    return KINDS[json_type]


def project_plugin(kind: str, name: str) -> dict[str, Any]:
    project = yaml.safe_load(MELTANO_YML.read_text(encoding="utf-8"))
    found: dict[str, Any] = next(p for p in project["plugins"][kind] if p["name"] == name)
    return found


# ---------------------------------------------------------------- one source


def test_meltano_yml_and_readme_are_generated_from_the_definition() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_definition_says_what_the_tap_says_about_itself() -> None:
    info = about()
    source = definition()
    assert (source["name"], source["description"]) == (info["name"], info["description"])
    assert source["supported_python_versions"] == info["supported_python_versions"]

    settings = {setting["name"]: setting for setting in source["settings"]}
    declared = about_settings(info["settings"])
    assert set(settings) == set(declared) | set(SETTINGS_ADDED)
    for name, prop in declared.items():
        setting = settings[name]
        assert setting["description"] == described(prop), name
        assert setting["kind"] == expected_kind(prop), name
        assert setting.get("sensitive", False) == prop.get("secret", False), name
        if "title" in prop:
            assert setting["label"] == prop["title"], name
        if "enum" in prop:
            assert [option["value"] for option in setting["options"]] == prop["enum"], name
    # Defaults are in the descriptions: a value is passed on every run, which would switch
    # off the MICRO_* fallbacks and override a newer tap's defaults.
    assert not [name for name, setting in settings.items() if "value" in setting]
    for group in source["settings_group_validation"]:
        assert set(group) <= set(settings), group

    capabilities = set(source["capabilities"])
    assert capabilities <= set(info["capabilities"])
    assert set(info["capabilities"]) - capabilities == set(CAPABILITIES_LEFT_OUT)


@pytest.mark.parametrize("name", sorted(PROJECT_CAPABILITIES_LEFT_OUT))
def test_each_extractor_of_meltano_yml_leaves_out_only_the_capabilities_listed(name: str) -> None:
    extractor = project_plugin("extractors", name)
    assert set(extractor["capabilities"]) == set(definition()["capabilities"]) - set(
        PROJECT_CAPABILITIES_LEFT_OUT[name]
    )


def test_meltano_hub_would_accept_the_definition() -> None:
    source = definition()
    assert HUB_REQUIRED <= set(source) <= HUB_KEYS
    assert set(source["capabilities"]) <= HUB_CAPABILITIES
    assert source["quality"] in HUB_QUALITY
    assert source["maintenance_status"] in HUB_MAINTENANCE_STATUS
    assert all(re.fullmatch(r"3\.\d+", v) for v in source["supported_python_versions"])
    assert DEFINITION.parent.name == source["name"]
    assert DEFINITION.stem == source["variant"]
    for setting in source["settings"]:
        assert set(setting) <= HUB_SETTING_KEYS, setting["name"]
        assert setting["kind"] in HUB_KINDS, setting["name"]


# ---------------------------------------------------------------- what Meltano makes of it


@pytest.mark.pipeline
def test_meltano_add_from_ref_writes_the_entry_generated_in_meltano_yml(tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    meltano = Meltano.offline(tmp_path, project)
    added = meltano.command(
        "add",
        "--no-install",
        "--plugin-type",
        "extractor",
        "tap-prism-imports",
        "--from-ref",
        str(DEFINITION),
    )
    assert added.returncode == 0, added.stdout + added.stderr

    written = (project / "meltano.yml").read_text(encoding="utf-8")
    entry = written.split("plugins:\n  extractors:\n", 1)[1]
    generated = GENERATED.search(MELTANO_YML.read_text(encoding="utf-8"))
    assert generated is not None
    # The generated entry: installed from the checkout, and without `batch`.
    expected = generated.group(1).replace(
        "    pip_url: -e .\n", f"    pip_url: {definition()['pip_url']}\n"
    )
    assert entry.replace("    - batch\n", "") == expected


@pytest.mark.pipeline
def test_meltanos_rewrites_leave_meltano_yml_as_it_is(tmp_path: Path) -> None:
    """Meltano rewrites the whole file on any change, reordering keys and losing comments
    in some places; this file is laid out so that nothing moves."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(MELTANO_YML, copy / "meltano.yml")
    meltano = Meltano.offline(tmp_path, copy)
    for change in (
        ("config", "set", "target-jsonl", "destination_path", "elsewhere"),
        ("config", "unset", "target-jsonl", "destination_path"),
    ):
        result = meltano.command(*change)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "meltano.yml").read_text(encoding="utf-8") == MELTANO_YML.read_text(
        encoding="utf-8"
    )
