"""Money in on the bank simulator, and statements fetched: injected transfers in camt.054 and camt.053,
control figures that add up, refusals naming the field, ``gateway recon fetch`` against the simulator,
and the statement inbox folder."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.clock import system_clock
from gateway.domain.statements import check_controls
from gateway.plugins.manager import Plugins
from gateway.recon.fetch import StatementInbox
from gateway.store.tables import receipts
from gateway_adapters.iso20022_bank.statements import read_camt053_statements, read_camt054_statements
from tests.receivables.camt import Credit, camt053
from tests.support import cli_config, run_cli

PAYER = {"payer_name": "Distributor Nord GmbH", "payer_iban": "DE44500105175407324931", "currency": "EUR"}


async def _bank(partner_simulator: Callable[..., Awaitable[object]]) -> str:
    probe = await partner_simulator("iso20022_bank")
    return str(probe.url)  # type: ignore[attr-defined]


async def _post(url: str, body: object) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/_sim/incoming-transfers", json=body) as resp:
        return resp.status, await resp.json()


async def _get(url: str, path: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(f"{url}{path}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PAYER, "amount": "10.001"}, "amount"),
        ({**PAYER, "amount": "-5.00"}, "amount"),
        ({**PAYER, "amount": 5}, "amount"),
        ({**PAYER, "amount": "5.00", "currency": "XXY"}, "currency"),
        ({**PAYER, "amount": "5.00", "payer_iban": "DE00500105175407324931"}, "payer_iban"),
        ({**PAYER, "amount": "5.00", "creditor_reference": "RF00 1234"}, "creditor_reference"),
        ({**PAYER, "amount": "5.00", "value_date": "2026-02-30"}, "value_date"),
        ({**PAYER, "amount": "5.00", "colour": "red"}, "colour"),
        ({"amount": "5.00"}, "payer_name"),
    ],
)
async def test_a_bad_transfer_is_refused_naming_the_field_and_books_nothing(
    partner_simulator: Callable[..., Awaitable[object]], body: dict, field: str
) -> None:
    url = await _bank(partner_simulator)
    status, answer = await _post(url, body)
    assert (status, answer["error"]["field"]) == (400, field), answer
    assert json.loads(await _get(url, "/_sim/incoming-transfers")) == []


async def test_injected_transfers_are_notified_one_by_one_and_on_the_days_statement(
    partner_simulator: Callable[..., Awaitable[object]],
) -> None:
    url = await _bank(partner_simulator)
    today = datetime.now(UTC).date()
    first = {**PAYER, "amount": "1450.00", "creditor_reference": "RF18 5390 0754 7034", "end_to_end_id": "E2E-1"}
    status, one = await _post(url, first)
    assert status == 201 and one["movement"] == 1 and one["payer_iban"].endswith("4931")
    status, two = await _post(url, {"payer_name": "Someone", "amount": "0.99", "remittance_text": "INV-2 INV-3"})
    assert status == 201 and two["movement"] == 2

    notes = read_camt054_statements(await _get(url, "/_sim/camt054?after=0"))
    assert [(n.statement_id, n.sequence, len(n.lines)) for n in notes] == [("SIMNTF-1-1", 1, 1), ("SIMNTF-2-2", 2, 1)]
    assert [n.statement_id for n in read_camt054_statements(await _get(url, "/_sim/camt054?after=1"))] == ["SIMNTF-2-2"]
    (statement,) = read_camt053_statements(await _get(url, f"/_sim/statements/{today}"))
    check_controls(statement)  # balances and TxsSummry add up
    assert (statement.declared_count, statement.declared_credits_minor, statement.declared_debits_minor) == (
        2,
        145099,
        0,
    )
    assert statement.closing_minor - statement.opening_minor == 145099
    line = statement.lines[0]
    assert (line.credit, line.amount_minor, line.end_to_end_id, line.remittance_reference) == (
        True,
        145000,
        "E2E-1",
        "RF18539007547034",
    )
    assert line.counterparty_name == "Distributor Nord GmbH" and line.counterparty_account.endswith("4931")
    assert line.servicer_reference == one["servicer_reference"] == notes[0].lines[0].servicer_reference
    assert statement.lines[1].text == "INV-2 INV-3"


def _config(tmp_path: Path, bank: str) -> Path:
    path = cli_config(tmp_path)
    text = path.read_text().replace("partners: {}", "")
    path.write_text(
        text
        + "partners:\n  iso20022_bank:\n"
        + f"    base_url: {bank}\n"
        + "    request_secret: dev-only-insecure-bank-request-secret\n"
        + "    callback_secret: dev-only-insecure-bank-callback-secret\n"
    )
    return path


async def test_gateway_recon_fetch_imports_and_names_a_partner_that_fetches_nothing(
    partner_simulator: Callable[..., Awaitable[object]], tmp_path: Path
) -> None:
    url = await _bank(partner_simulator)
    await _post(url, {**PAYER, "amount": "80.00", "remittance_text": "INV-7001"})
    config = _config(tmp_path, url)

    # the command runs in another process; the simulator answers from this test's event loop meanwhile
    first = await asyncio.to_thread(run_cli, "recon", "fetch", "--partner", "iso20022_bank", "--json", config=config)
    wrong = await asyncio.to_thread(run_cli, "recon", "fetch", "--partner", "card_acquirer", config=config)

    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert (doc["stored"], doc["lines"], doc["failed"]) == (1, 1, 0)
    assert {f["outcome"] for f in doc["files"]} == {"stored", "empty"}  # the notification; no closed day had any
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "gateway: partner 'card_acquirer' fetches no statements (partners that do: iso20022_bank)"
    ]


async def test_the_statement_inbox_imports_each_file_once_and_moves_it_aside(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    good = camt053("STMT-INBOX-1", [Credit("12.34", text="nobody knows")])
    (inbox / "day1.xml").write_bytes(good)
    (inbox / "again.xml").write_bytes(good)  # the same statement under another name
    (inbox / "bad.txt").write_bytes(b"not a statement at all")
    (inbox / ".hidden.xml").write_bytes(good)  # still being written by a careful writer: never taken
    old = time.time() - 10
    for path in inbox.iterdir():
        os.utime(path, (old, old))
    (inbox / "fresh.xml").write_bytes(good)  # changed a moment ago: taken at a later scan

    scan = StatementInbox(engine, system_clock, Plugins().statement_formats(), inbox)
    taken = {f.name: (f.outcome, f.statements) for f in await scan.scan()}

    # oldest name first: again.xml brings the statement, day1.xml is the same one again
    assert taken == {"again.xml": ("stored", 1), "bad.txt": ("refused", 0), "day1.xml": ("known", 0)}
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["again.xml", "day1.xml"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["bad.txt", "bad.txt.reason.txt"]
    assert "no known statement format" in (inbox / "failed" / "bad.txt.reason.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == [".hidden.xml", "fresh.xml"]
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(receipts))).scalar_one() == 1
