"""`gateway adapters new NAME` scaffolds a package that is ruff-clean and passes the conformance kit out of the box."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from gateway.cli import main
from gateway.devtools.conformance import CHECKS, run_check
from gateway.devtools.scaffold import scaffold
from gateway.plugins.manager import Plugins
from tests.support import REPO

NAME = "scaffolded_bank"
PACKAGE = f"gateway_adapter_{NAME}"
RUFF = Path(sys.executable).with_name("ruff")


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaffold(NAME, tmp_path_factory.mktemp("scaffold") / f"{NAME}-adapter")


@pytest.fixture
def plugin(package_dir: Path) -> Iterator[ModuleType]:
    """The generated plugin module, imported in-process (not installed); sys.path and sys.modules restored."""
    sys.path.insert(0, str(package_dir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(package_dir))
        for module in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[module]


def test_scaffold_writes_the_package(package_dir: Path) -> None:
    written = {p.relative_to(package_dir).as_posix() for p in package_dir.rglob("*") if p.is_file()}

    assert {
        "pyproject.toml",
        "README.md",
        f"{PACKAGE}/__init__.py",
        f"{PACKAGE}/adapter.py",
        f"{PACKAGE}/simulator.py",
        f"{PACKAGE}/conformance.py",
        f"{PACKAGE}/contracts/payment-request.json",
        f"{PACKAGE}/py.typed",
        "tests/test_conformance.py",
        "qa/gateway.yaml",
        "qa/routing.yaml",
        f"qa/{NAME}-happy.yaml",
    } <= written


def test_generated_pyproject_declares_the_entry_point(package_dir: Path) -> None:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert project["name"] == "gateway-adapter-scaffolded-bank"
    assert "partner-gateway" in project["dependencies"]
    assert project["entry-points"]["gateway.adapters"] == {NAME: PACKAGE}


@pytest.mark.parametrize("config", ["generated", "repo"])
def test_generated_code_is_ruff_clean(package_dir: Path, config: str) -> None:
    pyproject = package_dir / "pyproject.toml" if config == "generated" else REPO / "pyproject.toml"
    for command in (["check"], ["format", "--check"]):
        run = subprocess.run(
            [str(RUFF), *command, "--no-cache", "--config", str(pyproject), "."],
            cwd=package_dir,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert run.returncode == 0, f"ruff {' '.join(command)}:\n{run.stdout}{run.stderr}"


@pytest.mark.parametrize("check", list(CHECKS))
async def test_scaffolded_adapter_passes_the_check(plugin: ModuleType, check: str) -> None:
    notes = await run_check(NAME, check, plugins=Plugins(extra=[plugin]))

    assert notes == [], notes


def test_generated_conformance_test_passes(package_dir: Path, plugin: ModuleType) -> None:
    spec = importlib.util.spec_from_file_location(
        "scaffolded_conformance_test", package_dir / "tests/test_conformance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    for check in CHECKS:
        module.test_conformance(check)  # raises AssertionError if a check fails

    assert module.NAME == NAME


def test_generated_package_tests_run_without_warnings(package_dir: Path) -> None:
    """`pytest NAME-adapter`, as its README says, in a fresh interpreter: green, and not one warning.

    ``-W error`` turns warnings raised during the tests into failures; warnings printed before the
    session (a plugin's configuration warning, say) only show in the output, so that is read too.
    """
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-W", "error", "-p", "no:cacheprovider", package_dir.name],
        cwd=package_dir.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = run.stdout + run.stderr

    assert run.returncode == 0, output
    assert f"{len(CHECKS)} passed" in output, output
    assert "warning" not in output.lower(), output


def test_cli_scaffolds_into_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out"

    assert main(["adapters", "new", "other_bank", "--dir", str(target)]) == 0
    assert (target / "gateway_adapter_other_bank" / "adapter.py").is_file()
    assert f"created {target}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["adapters", "new", "My-Bank"], "must be a lower_snake identifier"),
        (["adapters", "new", "class"], "must be a lower_snake identifier"),
        (["adapters", "new", "instant_rtp"], "already installed"),
    ],
)
def test_cli_refuses_a_bad_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main([*argv, "--dir", str(tmp_path / "out")])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")

    code = main(["adapters", "new", "other_bank", "--dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert "already exists and is not an empty directory" in err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_default_dir_is_name_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert main(["adapters", "new", "other_bank"]) == 0
    assert (tmp_path / "other_bank-adapter" / "pyproject.toml").is_file()


def test_scaffolded_adapter_gets_a_working_qa_run(package_dir: Path, tmp_path: Path) -> None:
    """`gateway --config qa/gateway.yaml qa run qa/NAME-happy.yaml`, with the package found by its entry point."""
    site = tmp_path / "site"  # the package on the path, its entry point declared as an installed one would be
    dist = site / f"{PACKAGE}-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(f"[gateway.adapters]\n{NAME} = {PACKAGE}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_dir), str(site)])}
    report = tmp_path / "qa.html"
    gateway = [sys.executable, "-m", "gateway.cli", "--config", "qa/gateway.yaml"]

    checked = subprocess.run(
        [*gateway, "qa", "scenario", "check", f"qa/{NAME}-happy.yaml"],
        cwd=package_dir, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    run = subprocess.run(
        [*gateway, "qa", "run", f"qa/{NAME}-happy.yaml", "--count", "12", "--json", "--html", str(report)],
        cwd=package_dir, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout)
    assert (summary["ok"], summary["partner"], summary["passed"]) == (True, NAME, 12)
    assert summary["double_submissions"] == 0
    assert {"rejected", "returned", "settled"} <= set(summary["expected"])
    assert summary["faults_injected"].get("reset", 0) >= 1  # answers were lost, and no payment was booked twice
    assert report.read_text(encoding="utf-8").count('class="payment"') == 12
