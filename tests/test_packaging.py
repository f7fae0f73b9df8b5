"""Packaging: every Python package is listed for the wheel, and the core never imports an adapter."""

from __future__ import annotations

import ast
import sys
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
    adapters = {name: module for name, module in entry_points.items() if module.startswith("gateway_adapters.")}
    assert adapters == {name: f"gateway_adapters.{name}" for name in adapters}
    assert "iso20022_bank" in entry_points
    # a simulator that imitates no partner (the business unit's) registers its simulator alone
    others = {name: module for name, module in entry_points.items() if name not in adapters}
    assert others == {"business_unit": "gateway_simulators.business_unit.plugin"}


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
                assert not name.startswith(("gateway_adapters", "gateway_simulators", "gateway_client")), (
                    f"{path}: imports {name}"
                )


def test_the_client_is_a_package_of_its_own_that_nothing_of_the_gateway_imports() -> None:
    """gateway_client installs on its own (requests only); the gateway, adapters and simulators never need it."""
    client = tomllib.loads((REPO / "client" / "pyproject.toml").read_text())
    assert client["project"]["name"] == "gateway-client"
    assert client["project"]["dependencies"] == ["requests>=2.28"]
    assert client["tool"]["setuptools"]["packages"] == ["gateway_client"]
    root = _pyproject()["project"]
    assert not any("gateway-client" in d or "gateway_client" in d for d in root["dependencies"])
    for folder in ("gateway", "adapters", "simulators"):
        for path in (REPO / folder).rglob("*.py"):
            assert "gateway_client" not in path.read_text(), f"{path} names gateway_client"
    for path in (REPO / "client" / "gateway_client").rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
        } | {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert imported <= {"__future__", "gateway_client", "requests", "urllib3"} | set(sys.stdlib_module_names), (
            f"{path} imports {sorted(imported)}"
        )
