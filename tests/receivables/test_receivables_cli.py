"""``gateway receivables`` and ``gateway credit-lines``: real runs on a SQLite file; bad input exits 2 with one line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.store import repo
from gateway.store.db import create_engine
from gateway.store.receivables import insert_receivable
from tests.support import cli_config, run_cli

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return cli_config(tmp_path)


async def _receivable(config: Path, invoice: str, amount_minor: int, due: date) -> str:
    url = config.read_text().split("url: ")[1].split("\n")[0]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            bu = await repo.ensure_business_unit(conn, "erp", NOW)
            row = {
                "id": f"rcv_{invoice.replace('-', '').ljust(26, '0')[:26]}",
                "business_unit_id": bu,
                "business_unit": "erp",
                "invoice_number": invoice,
                "distributor": "nord",
                "currency": "EUR",
                "amount_minor": amount_minor,
                "paid_minor": 0,
                "status": "open",
                "due_date": due,
                "structured_reference": None,
                "payer_account": None,
                "reservation_id": None,
                "created_at": NOW,
                "updated_at": NOW,
            }
            await insert_receivable(conn, row, NOW)
        return str(row["id"])
    finally:
        await engine.dispose()


async def test_credit_lines_set_and_show_count_open_receivables(config: Path) -> None:
    await _receivable(config, "INV-1", 300_00, date(2020, 1, 31))
    rid = await _receivable(config, "INV-2", 200_00, date(2099, 1, 31))
    made = json.loads(
        run_cli(
            "credit-lines", "set", "nord", "--currency", "EUR", "--limit", "1000.00", "--json", config=config
        ).stdout
    )
    assert (
        made["lines"][0]["open_receivables"]["value"] == "500.00" and made["lines"][0]["available"]["value"] == "500.00"
    )
    shown = run_cli("credit-lines", "show", "nord", config=config)
    assert shown.returncode == 0 and "1000.00" in shown.stdout and "500.00" in shown.stdout
    listed = json.loads(run_cli("receivables", "list", "--overdue", "--json", config=config).stdout)
    assert [r["invoice_number"] for r in listed["items"]] == ["INV-1"]
    one = json.loads(run_cli("receivables", "show", rid, "--json", config=config).stdout)
    assert (one["invoice_number"], one["status"], one["overdue"]) == ("INV-2", "open", False)
    table = run_cli("receivables", "list", "--distributor", "nord", config=config)
    assert table.returncode == 0 and "2 receivables" in table.stdout and "INV-2" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["credit-lines", "set", "nord", "--currency", "EUR", "--limit", "1.001"],
            "gateway: --limit/--currency: EUR allows 2",
        ),
        (["credit-lines", "set", "nord", "--currency", "XXQ", "--limit", "1"], "gateway: --limit/--currency: "),
        (["credit-lines", "show", "nobody"], "gateway: distributor nobody has no credit line"),
        (
            ["credit-lines", "show", "no body"],
            "gateway credit-lines show: argument distributor: a distributor is",
        ),
        (["receivables", "show", "rcv_1"], "gateway: 'rcv_1' is not a receivable id"),
        (["receivables", "show", "rcv_00000000000000000000000000"], "gateway: no receivable rcv_0000"),
        (["receivables", "list", "--status", "late"], "gateway receivables list: argument --status: invalid"),
    ],
)
def test_bad_input_exits_2_with_one_line(config: Path, args: list[str], message: str) -> None:
    result = run_cli(*args, config=config)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
