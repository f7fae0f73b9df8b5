"""bench/memory.py, run small: both gateways start, the walk lists every stored instruction, the report adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory.py"


def test_a_small_run_lists_everything_stored_and_reports_peak_memory_in_the_json_last(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--instructions", "450", "--cache-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    full, empty = report["full"], report["baseline"]
    assert full["phases"]["walk"]["items"] == 450 and empty["phases"]["walk"]["items"] == 0
    assert full["phases"]["reads"]["items"] == 450 and full["phases"]["filters"]["items"] >= 300
    assert 20 < empty["peak_rss_mb"] <= full["peak_rss_mb"] and report["target_met"] == (full["peak_rss_mb"] < 200)
    assert "peak RSS (MB)" in result.stdout and "target: peak RSS < 200 MB" in result.stdout
