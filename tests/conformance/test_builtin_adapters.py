"""Every built-in adapter passes the conformance kit against its own simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.devtools.conformance import CHECKS, run_check

BUILTIN = ["iso20022_bank", "card_acquirer", "ach_nacha", "instant_rtp"]


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("adapter", BUILTIN)
async def test_builtin_adapter_passes_the_check(adapter: str, check: str) -> None:
    # no skip reasons for the built-ins: a skip raises pytest.skip.Exception and fails this test
    notes = await run_check(adapter, check)

    assert all(isinstance(note, str) and note for note in notes), notes


def test_kit_runs_as_a_pytest_plugin_with_adapter_option(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "gateway.devtools.conformance", "--adapter", "ach_nacha", "-ra", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "8 passed" in run.stdout and "skipped" not in run.stdout, run.stdout
