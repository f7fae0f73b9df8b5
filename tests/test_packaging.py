"""Packaging: every Python package is listed for the wheel, and the core never imports an adapter."""

from __future__ import annotations

import ast
import tomllib

from tests.support import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_directory_is_in_the_wheel() -> None:
    """Python packages and data-only folders (templates, scenarios, contracts) are declared, nothing else."""
    setuptools = _pyproject()["tool"]["setuptools"]
    mapping = {folder: name for name, folder in setuptools["package-dir"].items()}
    found = set()
    for folder, name in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    declared = set(setuptools["packages"])
    assert found <= declared
    for package in declared - found:  # data-only: a folder that exists and has package data declared
        name, *rest = package.split(".")
        folder = REPO / setuptools["package-dir"][name] / "/".join(rest)
        assert folder.is_dir(), package
        assert any(p.is_file() for p in folder.rglob("*")), package
    for package in setuptools["package-data"]:
        assert package in declared, f"package data declared for {package}, which is not a package"


def test_builtin_adapters_register_through_the_entry_point_group() -> None:
    entry_points = _pyproject()["project"]["entry-points"]["gateway.adapters"]
    assert entry_points == {name: f"gateway_adapters.{name}" for name in entry_points}
    assert "iso20022_bank" in entry_points


def test_the_core_never_imports_an_adapter_or_simulator() -> None:
    for path in (REPO / "gateway").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("gateway_adapters", "gateway_simulators")), f"{path}: imports {name}"
