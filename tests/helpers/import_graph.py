"""A package's import graph, read from its source, and the cycles in it.

Every import statement counts, wherever it stands: under ``if TYPE_CHECKING:`` or in a
function too. A type-only import does not fail at run time, but it ties the two modules
as much as any other: neither can be read, or moved, without the other.
"""

from __future__ import annotations

import ast
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

ImportGraph = dict[str, dict[str, int]]
"""Each module -> the modules of the same package it imports -> the line of the first."""


def import_graph(package_dir: Path, package: str) -> ImportGraph:
    """The graph of the modules under ``package_dir``, imported as ``package``.

    ``from package import name`` is an import of the submodule ``package.name`` when
    there is one, else of ``package`` itself (its ``__init__``). Imports from outside
    the package are left out.
    """
    modules = {
        _module_name(path.relative_to(package_dir).with_suffix("").parts, package): path
        for path in sorted(package_dir.rglob("*.py"))
    }
    graph: ImportGraph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in _imported_names(node, module, is_package=path.name == "__init__.py"):
                # The module itself, or the one that defines the name imported from it.
                target = name
                while target not in modules and "." in target:
                    target = target.rpartition(".")[0]
                if target in modules:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """A cycle of ``graph`` as ``[a, b, ..., a]``, or ``None`` when there is none."""
    finished: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in finished:
            return None
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor)
            if cycle is not None:
                return cycle
        path.pop()
        finished.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


def describe_cycle(cycle: list[str], graph: ImportGraph) -> str:
    """``a -> b (line 3) -> a (line 9)``: each import with the line where it stands."""
    steps = [cycle[0]]
    steps.extend(
        f"{target} (line {graph[source][target]})" for source, target in itertools.pairwise(cycle)
    )
    return " -> ".join(steps)


def _module_name(parts: tuple[str, ...], package: str) -> str:
    names = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join((package, *names))


def _imported_names(
    node: ast.Import | ast.ImportFrom, module: str, *, is_package: bool
) -> list[str]:
    """What an import statement names (modules, or names in a module), made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        # A relative import counts from the importing module's package.
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [f"{base}.{alias.name}" for alias in node.names]
