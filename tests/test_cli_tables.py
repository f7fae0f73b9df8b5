"""The CLI's tables at 80 columns: every name a user must type appears whole; long runs show progress."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from gateway.config import load_settings
from gateway.devtools.qa import shipped_scenarios
from gateway.plugins.manager import Plugins
from tests.support import example_instruction

GATEWAY = [sys.executable, "-m", "gateway.cli"]
REPO = Path(__file__).resolve().parents[1]
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "80", "TERM": "dumb"}
ADAPTERS = sorted(Plugins().adapter_classes())
#: the installed adapters the embedded configuration enables (not legacy_file: a go-live hand-off, off by default)
CONFIGURED = sorted(set(ADAPTERS) & set(load_settings(env={}).section("partners")))


def run(*args: str) -> str:
    result = subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=180, env=ENV)
    assert result.returncode == 0, result.stderr
    return result.stdout


def cells(output: str) -> set[str]:
    """Every table cell's text (a name cut or folded onto two lines would not be one of them)."""
    return {cell.strip() for line in output.splitlines() for cell in line.split("│")}


def assert_fits(output: str) -> None:
    too_wide = [line for line in output.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


def test_adapters_list_fits_80_columns_with_every_name_whole() -> None:
    output = run("adapters", "list")
    assert_fits(output)
    assert set(ADAPTERS) <= cells(output), output


def test_qa_scenarios_list_shows_every_shipped_scenario_by_the_name_qa_run_takes() -> None:
    output = run("qa", "scenarios", "list")
    assert_fits(output)
    names = {s.name for s in shipped_scenarios()}
    assert {"happy", "flaky-network", "callback-chaos", "card-happy", "instant-happy"} <= names
    assert names <= cells(output), output
    listed = json.loads(run("qa", "scenarios", "list", "--json"))
    assert {s["name"] for s in listed} == names
    card = json.loads(run("qa", "scenarios", "list", "--partner", "card_acquirer", "--json"))
    assert card and all(s["partner"] == "card_acquirer" for s in card)


def test_route_explain_fits_80_columns(tmp_path: Path) -> None:
    file = tmp_path / "usd.json"
    file.write_text(json.dumps(example_instruction(currency="USD")))
    output = run("route", "explain", str(file))
    assert_fits(output)
    assert set(CONFIGURED) <= cells(output), output


def test_demo_table_shows_the_per_adapter_breakdown_its_json_has() -> None:
    output = run("demo", "--count", "40")
    assert_fits(output)
    rows = {
        parts[0]: [int(p) for p in parts[1:]]
        for line in output.splitlines()
        if (parts := [c.strip() for c in line.strip("│ ").split("│")]) and len(parts) > 2 and parts[1].isdigit()
    }
    summary = json.loads(run("demo", "--count", "40", "--json").strip().splitlines()[-1])
    for adapter, counts in summary["by_adapter"].items():
        label = "none (no route)" if adapter == "none" else adapter
        assert sum(rows[label]) == sum(counts.values()), (label, output)
    assert set(CONFIGURED) <= set(rows)


def test_qa_run_shows_progress_on_a_terminal_and_not_with_json() -> None:
    leader, follower = pty.openpty()
    env = {**ENV, "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [*GATEWAY, "qa", "run", "happy", "--count", "30"], stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the run is over
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))  # no colours
    assert "sending" in screen and "waiting for final statuses" in screen
    assert "PASS: 30/30" in screen
    quiet = run("qa", "run", "happy", "--count", "5", "--json")
    assert "sending" not in quiet and json.loads(quiet.strip().splitlines()[-1])["ok"] is True
