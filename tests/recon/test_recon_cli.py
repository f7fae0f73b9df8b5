"""``gateway recon``: real runs on a SQLite file; a refused file exits 2 with one line and stores nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import cli_config, run_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return cli_config(tmp_path)


def test_import_a_real_return_file_once_then_its_lines_are_breaks(config: Path, partner_files: Path) -> None:
    file = str(partner_files / "nacha" / "return-WEB.ach")
    first = run_cli("recon", "import", file, config=config)
    again = json.loads(run_cli("recon", "import", file, "--format", "nacha", "--json", config=config).stdout)
    matched = json.loads(run_cli("recon", "run", "--json", config=config).stdout)
    breaks = json.loads(run_cli("recon", "breaks", "--json", config=config).stdout)
    shown = run_cli("recon", "breaks", "--kind", "unexpected_line", config=config)
    summary = run_cli("recon", "summary", config=config)
    assigned = run_cli("recon", "assign", breaks["items"][0]["id"], "ana", config=config)
    resolved = run_cli("recon", "resolve", breaks["items"][0]["id"], "--reason", "known", config=config)

    assert first.returncode == 0 and first.stderr.strip().endswith(
        "nacha, 1 statements stored (2 lines), 0 already imported"
    )
    assert (again["stored"], again["statements"][0]["stored"]) == (0, False)
    assert {k: matched[k] for k in ("lines", "confirmed", "breaks_opened")} == {
        "lines": 0,
        "confirmed": 0,
        "breaks_opened": 2,
    }  # returns of payments this gateway does not know: unexpected lines, in suspense
    assert matched["summary"]["by_kind"]["unexpected_line"] == 2
    assert [(b["kind"], b["amount"]) for b in breaks["items"]] == [
        ("unexpected_line", "123.54"),
        ("unexpected_line", "-45.65"),
    ]
    assert "2 breaks" in shown.stdout and "brk_1" in shown.stdout and "return" in shown.stdout
    assert "2 open" in summary.stdout and "0-1" in summary.stdout and "unexpected_li" in summary.stdout
    assert assigned.returncode == 0 and resolved.returncode == 2
    assert resolved.stderr.startswith("gateway: break brk_1's line sits in suspense")
    assert resolved.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mt940/rabobank.sta"], "gateway: mt940: statement '1291.99.348EUR/940A110615': opening 47317 + movements"),
        (["camt053/camt053.v4.xml", "--format", "nacha"], "gateway: not a valid nacha file: "),
        (["pain001/pain.001.001.03.xml"], "gateway: the file matches no known statement format"),
        (["nacha/short-line.ach"], "gateway: not a valid nacha file: invalid NACHA file: /line/5: record is 74"),
    ],
)
def test_a_refused_file_exits_2_with_one_line(config: Path, partner_files: Path, args: list[str], message: str) -> None:
    result = run_cli("recon", "import", str(partner_files / args[0]), *args[1:], config=config)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert json.loads(run_cli("recon", "breaks", "--json", config=config).stdout) == {"items": []}


def test_confirming_a_line_with_no_suggestion_exits_2(config: Path) -> None:
    result = run_cli("recon", "confirm", "ln_1_1", config=config)
    assert (result.returncode, result.stderr.strip()) == (2, "gateway: statement line ln_1_1 has no suggested match")


def test_a_wrong_rules_file_stops_the_run_with_the_key_named(config: Path, tmp_path: Path) -> None:
    rules = tmp_path / "reconciliation.yaml"
    rules.write_text("version: 1\nrules:\n  - name: ref\n    reference: true\n    amount: {percent: 5}\n")
    config.write_text(config.read_text() + f"reconciliation:\n  file: {rules}\n")
    result = run_cli("recon", "run", config=config)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"gateway: {rules}: rules.0.amount: ")


def test_control_totals_from_a_file_become_upstream_breaks_until_a_corrected_file_agrees(
    config: Path, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date().isoformat()
    sent = tmp_path / "totals.csv"
    sent.write_text(
        "business_unit,date,currency,count,amount,comment\n"
        f"erp-europe,{today},EUR,2,250.00,ignored column\n"
        f"erp-europe,{today},USD,0,0.00,\n"
        f"erp-us,{today},USD,1,10.5,\n",
        encoding="utf-8",
    )
    stored = json.loads(run_cli("recon", "control-totals", str(sent), "--json", config=config).stdout)
    again = run_cli("recon", "control-totals", str(sent), config=config)
    opened = json.loads(run_cli("recon", "run", "--json", config=config).stdout)
    breaks = json.loads(run_cli("recon", "breaks", "--kind", "upstream_total_mismatch", "--json", config=config).stdout)
    corrected = tmp_path / "corrected.json"
    corrected.write_text(
        json.dumps(
            [
                {"date": today, "totals": [{"currency": "EUR", "count": 0, "amount": "0"}]},
                {"business_unit": "erp-us", "date": today, "totals": [{"currency": "USD", "count": 0, "amount": "0"}]},
            ]
        ),
        encoding="utf-8",
    )
    fixed = run_cli("recon", "control-totals", str(corrected), "--business-unit", "erp-europe", config=config)
    closed = json.loads(run_cli("recon", "run", "--json", config=config).stdout)

    assert stored["stored"] == 3
    assert {(t["business_unit"], t["currency"], t["amount"]) for t in stored["totals"]} == {
        ("erp-europe", "EUR", "250.00"),
        ("erp-europe", "USD", "0.00"),
        ("erp-us", "USD", "10.50"),
    }
    assert again.returncode == 0 and "3 control totals stored" in again.stdout
    # the gateway took nothing in today: the two non-zero totals differ, the zero one agrees
    assert opened["breaks_opened"] == 2
    assert sorted((b["source"], b["subject"]) for b in breaks["items"]) == [
        ("bu:erp-europe", f"erp-europe/{today}/EUR"),
        ("bu:erp-us", f"erp-us/{today}/USD"),
    ]
    assert fixed.returncode == 0, fixed.stderr
    assert closed["breaks_closed"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "business_unit,date,currency,count,amount\nerp-europe,2026-12-01,EUR,1,1.001\n",
            "/line/2/amount: more decimals",
        ),
        (
            "business_unit,date,currency,count,amount\nerp-europe,2026-12-01,EUR,1,1\nx,2026-13-01,EUR,1,1\n",
            "/line/3/date",
        ),
        ("business_unit,date,currency,count\n", "the header row lacks amount"),
        ("business_unit,date,currency,count,amount\nerp-europe,2026-12-01,XXQ,1,1\n", "/line/2/currency"),
        ("business_unit,date,currency,count,amount\na,2026-12-01,EUR,1,1\na,2026-12-01,EUR,2,2\n", "a second time"),
        ('{"date": "2026-12-01", "totals": [{"currency": "EUR", "count": -1, "amount": "1"}]}', "/totals/0/count"),
    ],
)
def test_a_bad_control_totals_file_exits_2_naming_the_line_and_stores_nothing(
    config: Path, tmp_path: Path, text: str, message: str
) -> None:
    sent = tmp_path / "totals.txt"
    sent.write_text(text, encoding="utf-8")

    result = run_cli("recon", "control-totals", str(sent), "--business-unit", "erp-europe", config=config)
    after = json.loads(run_cli("recon", "run", "--json", config=config).stdout)

    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert after["breaks_opened"] == 0  # nothing of the file was stored
