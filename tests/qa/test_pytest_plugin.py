"""The pytest plugin for QA teams' own suites: start a named simulator with a scenario, get its URL and journal."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.adapter import AdapterContext
from gateway_adapters.ach_nacha.adapter import AchNachaAdapter
from gateway_adapters.ach_nacha.conformance import profile
from gateway_simulators.pytest_plugin import SimulatorProbe

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "plugin-test-ach-api-key", "plugin-test-ach-callback-secret"
#: the first acknowledgement of every file is lost after the ODFI took the file
LOST_ACK = {"name": "lost-ack", "partner": "ach_nacha", "faults": [{"kind": "reset", "after": True, "times": 1}]}


@pytest.mark.simulator("ach_nacha", scenario=LOST_ACK, seed=19, api_key=KEY, callback_secret=SECRET)
async def test_simulator_marker_starts_the_ach_file_drop_with_its_scenario(
    simulator: SimulatorProbe, tmp_path: Path
) -> None:
    # the system under test: the gateway's own ACH adapter, delivering through lost and malformed acknowledgements
    settings = {"base_url": simulator.url, "api_key": KEY, "callback_secret": SECRET, "spool_dir": str(tmp_path)}
    adapter = AchNachaAdapter.from_settings(
        settings | {"timeout_seconds": 1}, AdapterContext(callback_url="http://127.0.0.1:9/none")
    )
    await adapter.start()
    try:
        orders = [profile().sample_order(f"ins_plugin_{i:04d}", "Hudson Supply Co") for i in range(3)]
        for order in orders:
            await adapter.submit(order)
        sent: list[str] = []
        for _ in range(8):  # each run delivers what is still pending, under the same file id
            sent += await adapter.run_cutoff()
            if not [f for f in adapter.spool.files() if f["state"] == "pending"]:
                break
    finally:
        await adapter.close()

    assert simulator.url is not None and simulator.url.startswith("http://127.0.0.1:")
    assert simulator.scenario == "lost-ack"
    simulator.assert_fault_injected("reset")  # the first acknowledgement was lost
    simulator.assert_no_double_submission()
    booked = simulator.journal(kind="submit", outcome="created")
    assert sorted(e.end_to_end_id or "" for e in booked) == sorted(o.reference.upper() for o in orders)
    assert len(sent) == 1 and [e.outcome for e in simulator.journal(kind="file")] == ["accepted", "dropped", "replayed"]


async def test_partner_simulator_starts_any_installed_simulator(partner_simulator: object) -> None:
    probes = [
        await partner_simulator(name, scenario=scenario, seed=5)  # type: ignore[operator]
        for name, scenario in [("iso20022_bank", "happy"), ("card_acquirer", "card-happy"), ("ach_nacha", "ach-happy")]
    ]

    assert [p.scenario for p in probes] == ["happy", "card-happy", "ach-happy"]
    assert len({p.url for p in probes}) == 3 and all(p.journal() == [] for p in probes)


def _docs_example() -> str:
    text = (ROOT / "docs" / "qa.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- example: test_with_simulator.py -->\n```python\n(.*?)```", text, re.S)
    assert found, "docs/qa.md lost its pytest plugin example"
    return found.group(1)


def test_the_documented_example_runs_in_a_suite_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "test_with_simulator.py").write_text(_docs_example(), encoding="utf-8")

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "gateway_simulators.pytest_plugin", "-o", "asyncio_mode=auto",
         "-W", "error::pytest.PytestUnknownMarkWarning", "test_with_simulator.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout, run.stdout


def test_the_simulator_fixture_without_its_marker_says_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "test_unmarked.py").write_text("async def test_x(simulator):\n    pass\n", encoding="utf-8")

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "gateway_simulators.pytest_plugin", "-o", "asyncio_mode=auto",
         "test_unmarked.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert run.returncode != 0
    assert "@pytest.mark.simulator(NAME, scenario=..., seed=...)" in run.stdout, run.stdout
