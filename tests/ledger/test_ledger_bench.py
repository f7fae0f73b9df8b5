"""Smoke test of the ledger benchmark (bench/ledger.py): tiny sizes, real code paths, JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import load_bench


def test_bench_runs_tiny_and_reports_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--entries", "3000", "--transitions", "300", "--pipeline", "64", "--rounds", "1", "--reads", "20"]
    assert load_bench("ledger").main([*argv, "--cache-dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["verify"] == {**result["verify"], "ok": True, "entries": 3000}
    assert result["reads"]["entries"] == 3000 and result["reads"]["hot_account_postings"] == 3000
    assert result["posting"]["with_ledger_per_s"] > 0 and result["pipeline"]["ratio"] > 0
    assert set(result["targets"]) == {
        "posting_entries_per_s>=20000",
        "pipeline_ratio>=0.8",
        "hot_balance_median_ms<2",
        "verify_1M_seconds<10",
    }
