"""Smoke test of the risk screening benchmark (bench/risk.py): tiny store, real code path, JSON contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support import load_bench


def _run(capsys: pytest.CaptureFixture[str], db: Path, *extra: str) -> dict:
    argv = [
        "--stored",
        "2000",
        "--pool",
        "128",
        "--debtors",
        "16",
        "--creditors",
        "400",
        "--days",
        "3",
        "--singles",
        "20",
        "--batches",
        "4",
        "--db-path",
        str(db),
        "--json",
        *extra,
    ]
    assert load_bench("risk").main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return json.loads(lines[-1])


def test_bench_runs_tiny_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    db = tmp_path / "risk.db"
    first = _run(capsys, db)

    required = {
        "stored",
        "median_ms_single",
        "p99_ms_single",
        "median_ms_per_instruction_batch32",
        "baseline_ms",
        "ratio",
        "database",
    }
    assert required <= set(first)
    assert first["stored"] == 2000
    assert first["database"] == "sqlite"
    assert first["instructions_rows"] == 2000 + 128
    for key in ("median_ms_single", "p99_ms_single", "median_ms_per_instruction_batch32", "baseline_ms", "ratio"):
        assert first[key] > 0, key
    assert first["p99_ms_single"] >= first["median_ms_single"]
    assert not first["cached"]
    # the stream left a history that the pool's screening actually reads
    assert all(first["history_rows"][t] > 0 for t in ("risk_counters", "risk_pairs", "risk_beneficiaries"))
    assert first["census"]["history_hit_pct"]["beneficiary"] > 0
    assert sum(first["census"]["outcomes"].values()) == 128

    # the second run reuses the prepared file, and measurements rolled back: the same store
    second = _run(capsys, db)
    assert second["cached"]
    assert second["history_rows"] == first["history_rows"]
    assert second["census"] == first["census"]
    # one round trip per statement: the same outcomes
    third = _run(capsys, db, "--statement-by-statement")
    assert first["one_hop"] and not third["one_hop"]
    assert third["census"] == first["census"]
    assert time.monotonic() - started < 20
