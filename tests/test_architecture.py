"""The layout holds: import layers and no cycles (lint-imports), no imports hidden in functions,
the public import paths adapter packages use, and a package map (docs/architecture.md) that names
only what exists."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

GATEWAY = REPO / "gateway"


def test_import_layers_and_no_cycles_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout
    for contract in (
        "depends on a sibling that depends back",
        "composition root",
        "domain imports nothing",
        "never imports the built-in",
        "layers of the core",
    ):
        assert contract in result.stdout.lower(), f"no contract about {contract!r} was checked"


def _imports_inside_functions(path: Path, root: Path = REPO) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    found.append(f"{path.relative_to(root)}:{inner.lineno}: {ast.unparse(inner)}")
    return found


def test_no_module_of_the_gateway_imports_inside_a_function() -> None:
    found = [line for path in sorted(GATEWAY.rglob("*.py")) for line in _imports_inside_functions(path)]
    assert found == []


def test_the_check_for_hidden_imports_finds_one(tmp_path: Path) -> None:
    sample = tmp_path / "hidden.py"
    sample.write_text("import os\n\n\ndef f() -> None:\n    import json\n")
    assert _imports_inside_functions(sample, tmp_path) == ["hidden.py:5: import json"]


def test_public_import_paths_for_adapter_packages_keep_working() -> None:
    from gateway import adapter, conformance, hookspecs
    from gateway.devtools import conformance as kit
    from gateway.partners import adapter as interface
    from gateway.plugins import hookspecs as specs

    for name in ("Adapter", "HttpAdapter", "AdapterContext", "Capabilities", "PaymentOrder", "SubmitResult"):
        assert getattr(adapter, name) is getattr(interface, name)
    assert hookspecs.hookimpl is specs.hookimpl
    assert hookspecs.gateway_adapter_classes is specs.gateway_adapter_classes
    assert conformance.run_check is kit.run_check and conformance.CHECKS is kit.CHECKS
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "gateway.devtools.conformance", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "--adapter" in help_text.stdout


def test_the_package_map_names_only_what_exists() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`(gateway/[A-Za-z0-9_/.]+)`", text))
    assert len(named) > 15
    missing = sorted(n for n in named if not (REPO / n.rstrip("/")).exists())
    assert missing == []
    packages = {p.parent.relative_to(REPO).as_posix() + "/" for p in GATEWAY.glob("*/__init__.py")}
    unmapped = sorted(p for p in packages if p not in named)
    assert unmapped == [], "packages missing from docs/architecture.md"


@pytest.mark.parametrize("module", ["gateway.runtime"])
def test_no_module_of_the_core_imports_the_composition_root(module: str) -> None:
    importers = []
    for path in sorted(GATEWAY.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(("gateway/cli/", "gateway/devtools/")) or rel == "gateway/runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == module:
                importers.append(rel)
    assert importers == []


def test_the_console_sits_between_the_composition_root_and_the_api() -> None:
    """gateway/console uses the API's services and rules; nothing below it imports it (docs/architecture.md)."""
    text = (REPO / "pyproject.toml").read_text()
    layers = re.search(r'type = "layers"\nlayers = \[(.*?)\]', text, re.S)
    assert layers is not None
    names = re.findall(r'"([^"]+)"', layers.group(1))
    assert names.index("gateway.runtime") < names.index("gateway.console") < names.index("gateway.api")
    importers = []
    for path in sorted(GATEWAY.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(("gateway/cli/", "gateway/devtools/", "gateway/console/")) or rel == "gateway/runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gateway.console"):
                importers.append(rel)
    assert importers == []
