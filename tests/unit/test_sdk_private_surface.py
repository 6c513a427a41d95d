"""The private singer-sdk names the tap relies on: all listed in one seam, all still there.

An SDK release that renames one of them fails ``test_private_name_still_exists`` by
name, instead of silently stopping STATE from being written.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import pkgutil
import typing as t

import pytest
import singer_sdk

import tap_prism_imports
from tap_prism_imports import sdk_hooks
from tap_prism_imports.sdk_hooks import PRIVATE_SDK_SURFACE, PrivateName

if t.TYPE_CHECKING:
    import types

PACKAGE = pathlib.Path(tap_prism_imports.__file__).parent


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _sdk_private_names() -> frozenset[str]:
    """Every private method and ``self._x`` attribute defined anywhere in singer-sdk."""
    names: set[str] = set()
    for path in pathlib.Path(singer_sdk.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(node.name):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
                and _is_private(node.attr)
            ):
                names.add(node.attr)
    return frozenset(names)


def _package_modules() -> list[types.ModuleType]:
    names = [info.name for info in pkgutil.walk_packages([str(PACKAGE)], "tap_prism_imports.")]
    # __main__ modules run their command when imported.
    return [importlib.import_module(name) for name in names if not name.endswith("__main__")]


def _extends_sdk(module: types.ModuleType, class_name: str) -> bool:
    cls = getattr(module, class_name, None)
    return isinstance(cls, type) and any(
        base.__module__.startswith("singer_sdk") for base in cls.__mro__
    )


def _private_uses(module: types.ModuleType, sdk_names: frozenset[str]) -> list[str]:
    """Where a module overrides or touches a private singer-sdk name."""
    path = pathlib.Path(t.cast("str", module.__file__))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    uses: list[str] = []

    def note(node: ast.stmt | ast.expr, what: str) -> None:
        uses.append(f"{path.name}:{node.lineno}: {what}")

    sdk_class_nodes = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and _extends_sdk(module, node.name)
    ]
    in_sdk_class = {id(inner) for cls in sdk_class_nodes for inner in ast.walk(cls)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            module_name = node.module or ""
            if any(_is_private(part) for part in module_name.split(".")):
                note(node, f"imports private module {module_name}")
            for alias in node.names:
                if _is_private(alias.name):
                    note(node, f"imports private {module_name}.{alias.name}")
        elif isinstance(node, ast.FunctionDef) and id(node) in in_sdk_class:
            if node.name in sdk_names:
                note(node, f"overrides .{node.name}")
        elif isinstance(node, ast.Attribute) and (
            node.attr in sdk_names or node.attr == "is_flushed"
        ):
            on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            # A plain class's own private attributes are its business; in a class that
            # extends the SDK, or on any other object, the name is the SDK's.
            if not on_self or id(node) in in_sdk_class:
                note(node, f"uses .{node.attr}")
    return uses


@pytest.mark.parametrize(
    "private", PRIVATE_SDK_SURFACE, ids=lambda p: f"{p.owner.__name__}.{p.name}"
)
def test_private_name_still_exists(private: PrivateName) -> None:
    if private.parameters is None:
        # An attribute set on instances: the SDK's __init__ must still assign it.
        source = inspect.getsource(private.owner.__init__)  # type: ignore[misc]
        assert f"self.{private.name} =" in source, (
            f"singer-sdk no longer sets {private.owner.__name__}.{private.name}: {private.reason}"
        )
        return
    member = getattr(private.owner, private.name, None)
    assert member is not None, f"{private.owner.__name__}.{private.name} is gone: {private.reason}"
    parameters = tuple(inspect.signature(member).parameters)
    assert parameters == private.parameters, (
        f"{private.owner.__name__}.{private.name} now takes {parameters}, "
        f"not {private.parameters}: {private.reason}"
    )


def test_every_private_name_the_seam_uses_is_in_its_registry() -> None:
    listed = {p.name for p in PRIVATE_SDK_SURFACE}
    uses = _private_uses(sdk_hooks, _sdk_private_names())
    used = {use.rsplit(".", 1)[-1] for use in uses if "imports private" not in use}
    unlisted = used - listed
    assert not unlisted, (
        f"sdk_hooks.py uses private SDK names missing from its registry: {unlisted}"
    )


def test_no_other_module_touches_a_private_sdk_name() -> None:
    sdk_names = _sdk_private_names()
    offenders = [
        use
        for module in _package_modules()
        if module is not sdk_hooks
        for use in _private_uses(module, sdk_names)
    ]
    assert offenders == [], "private singer-sdk names outside sdk_hooks.py:\n" + "\n".join(
        offenders
    )
