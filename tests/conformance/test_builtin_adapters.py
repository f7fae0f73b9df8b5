"""Every built-in adapter passes the conformance kit against its own simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.devtools.conformance import CHECKS, run_check

BUILTIN = ["iso20022_bank", "card_acquirer", "ach_nacha", "instant_rtp"]
#: checks that do not apply to an adapter, and why (the kit skips them with this reason)
NOT_APPLICABLE = {
    ("ach_nacha", "contracts"): "declares no partner_contracts",
    ("ach_nacha", "faults"): "the simulator is not built on gateway_simulators.core",
}


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("adapter", BUILTIN)
async def test_builtin_adapter_passes_the_check(adapter: str, check: str) -> None:
    if (adapter, check) in NOT_APPLICABLE:
        with pytest.raises(pytest.skip.Exception, match=NOT_APPLICABLE[adapter, check]):
            await run_check(adapter, check)
        return

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
    assert "6 passed, 2 skipped" in run.stdout, run.stdout
    assert "ach_nacha: declares no partner_contracts" in run.stdout, run.stdout
    assert "ach_nacha: the simulator is not built on gateway_simulators.core" in run.stdout, run.stdout
