"""bench/e2e.py, run small: the processes start, every offered instruction settles, the report adds up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import PG_URL, POSTGRESQL_ONLY

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"


def _small_run(*options: str) -> dict[str, Any]:
    """The JSON report of a run at 20/s for 2 s (everything drained), after asserting it ended well."""
    command = [sys.executable, str(BENCH), "--rates", "20", "--seconds", "2", "--drain", "30", "--intake-seconds", "1"]
    result = subprocess.run([*command, *options, "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    for phase in report["phases"]:
        (row,) = phase["rates"]
        assert row["accepted"] == 40 and row["unsettled_after_drain"] == 0
        assert 0 < row["p50_s"] <= row["p99_s"]
        machine = row["machine_cpu"]  # the whole machine during the phase: the load itself kept it busy
        assert machine["cpus"] == os.cpu_count() and 0 < machine["busy_pct"] <= 100
        assert 0 <= machine["steal_pct"] <= 100 - machine["busy_pct"]
    assert report["intake_accepted_per_s"] > 0 and report["double_dispatches"] == 0
    return report


def test_a_small_run_settles_everything_it_offered_and_reports_the_json_last() -> None:
    report = _small_run()
    (row,) = report["rates"]
    assert report["database"] == "sqlite" and "database" not in row["cpu_ms_per_settled"]
    assert row["cpu_ms_per_settled"]["gateway"] > 0


def test_with_the_dispatcher_in_its_own_process_both_processes_count() -> None:
    (row,) = _small_run("--dispatch-process")["rates"]
    assert row["dispatched_per_s"] > 0
    # the serving process and its dispatcher, each with CPU of its own
    serving, dispatcher = row["gateway_cpu_s_each"]
    assert serving > 0 and dispatcher > 0


@pytest.mark.parametrize("backend", [POSTGRESQL_ONLY])
def test_one_then_two_processes_on_postgresql_give_their_ratio_and_the_servers_cpu(backend: str) -> None:
    assert PG_URL is not None
    report = _small_run("--database-url", PG_URL, "--workers", "1,2")
    one, two = report["phases"]
    assert (one["workers"], two["workers"]) == (1, 2) and report["database"] == "postgresql"
    (row_one,), (row_two,) = one["rates"], two["rates"]
    assert len(row_one["gateway_cpu_s_each"]) == 1 and len(row_two["gateway_cpu_s_each"]) == 2
    # PostgreSQL's own processes did the storing: their CPU is counted beside the gateway's
    assert row_one["cpu_ms_per_settled"]["database"] > 0 and row_two["cpu_ms_per_settled"]["database"] > 0
    (ratio,) = report["workers_ratio"]
    assert ratio == round(row_two["settled_per_s"] / row_one["settled_per_s"], 2)
