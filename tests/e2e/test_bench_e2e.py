"""bench/e2e.py, run small: the processes start, every offered instruction settles, the report adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"


def test_a_small_run_settles_everything_it_offered_and_reports_the_json_last() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--rates",
            "20",
            "--seconds",
            "2",
            "--drain",
            "30",
            "--intake-seconds",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (row,) = report["rates"]
    assert row["accepted"] == 40 and row["unsettled_after_drain"] == 0
    assert 0 < row["p50_s"] <= row["p99_s"]
    assert report["intake_accepted_per_s"] > 0 and report["database"] == "sqlite"


def test_with_the_dispatcher_in_its_own_process_both_processes_count() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--rates",
            "20",
            "--seconds",
            "2",
            "--drain",
            "30",
            "--intake-seconds",
            "1",
            "--dispatch-process",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    (row,) = report["rates"]
    assert row["accepted"] == 40 and row["unsettled_after_drain"] == 0
    assert row["dispatched_per_s"] > 0 and report["double_dispatches"] == 0
    # the serving process and its dispatcher, each with CPU of its own
    serving, dispatcher = row["gateway_cpu_s_each"]
    assert serving > 0 and dispatcher > 0
