"""``gateway rebates show|settle``: real runs on a SQLite file; settled once; bad input exits 2."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.store import repo
from gateway.store.db import create_engine
from gateway.store.rebates import bind_programs, load_programs
from gateway.store.receivables import insert_receivable
from gateway.store.tables import ledger_entries
from tests.support import run_cli

NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
PROGRAMS = """
version: 1
programs:
  - id: nord-m
    distributors: [nord]
    period: month
    basis: invoiced
    settlement: credit_note
    tiers:
      - {from: "0", rate: "1%"}
      - {from: "1000.00", rate: "2%"}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "rebates.yaml").write_text(PROGRAMS)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cli.db'}\npartners: {{}}\nsimulators: {{}}\n"
        "rebates:\n  file: rebates.yaml\n"
    )
    assert run_cli("db", "upgrade", config=path).returncode == 0
    return path


def _url(config: Path) -> str:
    return config.read_text().split("url: ")[1].split("\n")[0]


async def _invoice(config: Path, invoice: str, amount_minor: int) -> None:
    engine = create_engine(_url(config))
    bind_programs(engine, load_programs(config.parent / "rebates.yaml"))
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
                "due_date": date(2026, 12, 31),
                "structured_reference": None,
                "payer_account": None,
                "reservation_id": None,
                "created_at": NOW,
                "updated_at": NOW,
            }
            await insert_receivable(conn, row, NOW)
    finally:
        await engine.dispose()


async def _entries(config: Path) -> int:
    engine = create_engine(_url(config))
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(ledger_entries)) or 0)
    finally:
        await engine.dispose()


async def test_show_then_settle_once(config: Path) -> None:
    await _invoice(config, "INV-1", 60000)
    await _invoice(config, "INV-2", 50000)  # 1100.00: the 2% tier, on the whole month
    done = run_cli("rebates", "show", "--period", "2026-11", "--json", config=config)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["items"]
    assert [(v["volume"], v["accrued"], v["final"], v["true_up"], v["settled"]) for v in shown] == [
        ("1100.00", "16.00", "22.00", "6.00", False)
    ]
    table = run_cli("rebates", "show", "--period", "2026-11", config=config)
    assert table.returncode == 0 and "nord-m" in table.stdout
    dry = run_cli("rebates", "settle", "--period", "2026-11", "--dry-run", "--json", config=config)
    assert [v["action"] for v in json.loads(dry.stdout)["items"]] == ["would_settle"]
    before = await _entries(config)
    first = run_cli("rebates", "settle", "--period", "2026-11", "--json", config=config)
    assert first.returncode == 0, first.stderr
    [line] = json.loads(first.stdout)["items"]
    assert (line["action"], line["final"], line["credited"]) == ("settled", "22.00", "22.00")
    after = await _entries(config)
    assert after == before + 2  # the true-up and one credit note entry
    second = run_cli("rebates", "settle", "--period", "2026-11", config=config)
    assert second.returncode == 0 and "0 rows settled" in second.stderr
    assert await _entries(config) == after
    empty = json.loads(run_cli("rebates", "show", "--period", "2026-10", "--json", config=config).stdout)
    assert empty == {"items": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rebates", "show", "--period", "2026-Q5"], "use YYYY-Qn (a quarter) or YYYY-MM (a month)"),
        (["rebates", "settle", "--period", "Q4"], "use YYYY-Qn"),
        (["rebates", "settle"], "--period"),
    ],
)
def test_bad_input_exits_2_with_one_line(config: Path, args: list[str], message: str) -> None:
    done = run_cli(*args, config=config)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_bad_program_file_exits_2_naming_the_key(config: Path) -> None:
    (config.parent / "rebates.yaml").write_text(PROGRAMS.replace("period: month", "period: week"))
    done = run_cli("rebates", "settle", "--period", "2026-11", config=config)
    assert done.returncode == 2 and "programs[0].period: must be one of month, quarter" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
