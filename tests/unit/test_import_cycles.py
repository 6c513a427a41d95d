"""No module of the tap, the sandbox or the import log writer imports itself back,
type-only imports counted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.import_graph import describe_cycle, find_cycle, import_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "tap_prism_imports": ROOT / "tap_prism_imports",
    "prism_sandbox": ROOT / "packages" / "prism-sandbox" / "prism_sandbox",
    "prism_import_log": ROOT / "packages" / "prism-import-log" / "prism_import_log",
}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_form_no_cycle(package: str) -> None:
    folder = PACKAGES[package]
    graph = import_graph(folder, package)
    assert len(graph) == len(list(folder.rglob("*.py")))
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in {package}: {describe_cycle(cycle, graph)}"


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root / "pkg"


def test_a_cycle_through_a_type_only_import_is_found_and_named(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "front.py": "from pkg.parts import helper\n",
            "parts.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from pkg.front import Front
            """,
        },
    )
    graph = import_graph(package, "pkg")
    cycle = find_cycle(graph)
    assert cycle == ["pkg.front", "pkg.parts", "pkg.front"]
    assert describe_cycle(cycle, graph) == "pkg.front -> pkg.parts (line 1) -> pkg.front (line 4)"


def test_submodules_relative_imports_and_names_from_a_package_resolve(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.front import Front\nVERSION = 1\n",
            "front.py": "import json\nfrom pkg import parts\nfrom . import VERSION\n",
            "parts.py": "def helper() -> None:\n    from .sub import leaf\n",
            "sub/__init__.py": "",
            "sub/leaf.py": "from .. import parts\nimport pkg.sub\n",
        },
    )
    graph = import_graph(package, "pkg")
    assert graph == {
        "pkg": {"pkg.front": 1},
        "pkg.front": {"pkg.parts": 2, "pkg": 3},
        "pkg.parts": {"pkg.sub.leaf": 2},
        "pkg.sub": {},
        "pkg.sub.leaf": {"pkg.parts": 1, "pkg.sub": 2},
    }
    assert find_cycle(graph) == ["pkg", "pkg.front", "pkg"]
