"""bench/recon.py, run small: every kind of break and 1:N with fees, auto-confirmed matches all correct."""

from __future__ import annotations

from gateway.recon.matching import decide
from gateway.recon.rules import load_recon_rules
from tests.support import load_bench


def test_the_mix_is_matched_with_precision_1_and_recall_over_99_percent() -> None:
    bench = load_bench("recon")
    data = bench.generate(5000, seed=3)

    quality = bench.score(data, decide(data.lines, data.payments, load_recon_rules(), bench.elsewhere(data)))

    assert quality["confirmed_wrong"] == 0 and quality["precision_confirmed"] == 1.0
    assert quality["recall"] >= 0.99
    assert {"batch", "remittance", "counterparty", "one"} <= set(quality["matched_by_kind"])
    assert "unexpected" not in quality["matched_by_kind"] and "status_mismatch" not in quality["matched_by_kind"]


async def test_the_sqlite_run_stores_what_the_decision_found() -> None:
    bench = load_bench("recon")
    data = bench.generate(1500, seed=5)
    expected = decide(data.lines, data.payments, load_recon_rules(), bench.elsewhere(data))

    result = await bench.sqlite_run(data, ledger=True)

    report = result["report"]
    assert report["confirmed"] + report["suggested"] == len(expected)
    assert report["lines"] == len(data.lines) and report["breaks_opened"] > 0
    assert set(result["parts_seconds"]) == {"read", "decide", "write", "breaks"}
