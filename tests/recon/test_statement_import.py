"""Importing statements: the real vendored files, their control figures, idempotency and sequence gaps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.plugins.manager import Plugins
from gateway.recon.imports import StatementFileError, detect_format, import_file, read_file
from gateway.store.tables import statement_lines, statements

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FORMATS = Plugins().statement_formats()


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        return (
            int(await conn.scalar(select(func.count()).select_from(statements)) or 0),
            int(await conn.scalar(select(func.count()).select_from(statement_lines)) or 0),
        )


def _mt940(number: int, opening: str, movements: list[tuple[str, str, str]], closing: str) -> str:
    """A small balanced MT940 message (synthetic, no real account)."""
    body = [":20:STMT", ":25:NL00TEST0000000000", f":28C:{number}/1", f":60F:C261201EUR{opening}"]
    for mark, amount, ref in movements:
        body += [f":61:2612011201{mark}{amount}NTRF{ref}", ":86:PAYMENT"]
    body += [f":62F:C261201EUR{closing}", "-"]
    return "\n".join(body) + "\n"


def test_every_format_the_adapters_offer_is_known() -> None:
    assert set(FORMATS) == {
        "camt.053",
        "camt.054",
        "mt940",
        "nacha",
        "ach_settlement",
        "card_settlement",
        "rtp.camt.053",
    }
    assert {f.source for f in FORMATS.values()} == {"iso20022_bank", "ach_nacha", "card_acquirer", "instant_rtp"}


def _ach_report(**batch: Any) -> bytes:
    """The ODFI's settlement report as its simulator writes it (synthetic traces)."""
    base: dict[str, Any] = {
        "id": "SET2612060001",
        "company_id": "1234567890",
        "company_name": "PARTNER GATEWAY",
        "entries": [
            {"trace": "021000020000001", "individual_id": "INV-1", "amount_cents": 10_000, "fee_cents": 15},
            {"trace": "021000020000002", "individual_id": "INV-2", "amount_cents": 2_550, "fee_cents": 15},
        ],
        "gross_cents": 12_550,
        "fees_cents": 30,
        "debit_cents": 12_580,
    }
    base.update(batch)
    doc = {"object": "ach_settlement_report", "date": "2026-12-06", "odfi": "091000019", "batches": [base]}
    return json.dumps(doc).encode()


def test_the_odfis_settlement_report_is_one_debit_per_batch_itemised_and_its_figures_are_checked() -> None:
    fmt = FORMATS["ach_settlement"]
    (statement,) = read_file(fmt, _ach_report())
    (line,) = statement.lines

    assert (fmt.source, detect_format(FORMATS, _ach_report()).name) == ("ach_nacha", "ach_settlement")
    assert (statement.statement_id, statement.account) == ("091000019/2026-12-06", "*****0019")
    assert (line.amount_minor, line.credit, line.partner_reference) == (12_580, False, "SET2612060001")
    assert [(i.kind, i.reference, i.amount_minor, i.fee_minor) for i in line.items] == [
        ("payout", "021000020000001", -10_000, 15),
        ("payout", "021000020000002", -2_550, 15),
    ]
    for bad, message in (
        (_ach_report(debit_cents=12_581), "gross 12550 + fees 30 is not the declared debit 12581"),
        (_ach_report(fees_cents=31), "its fees sum to 30, it declares 31"),
        (_ach_report(gross_cents=12_000, debit_cents=12_030), "its entries sum to 12550, it declares gross 12000"),
        (_ach_report(entries=[]), "/batches/0/entries: a settled batch needs its entries"),
        (_ach_report(gross_cents="125.50"), "/batches/0/gross_cents must be a non-negative integer of cents"),
    ):
        with pytest.raises(StatementFileError, match="ach_settlement") as refused:
            read_file(fmt, bad)
        assert message in refused.value.message


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("camt053/camt053.v2.minimal.xml", "camt.053"),
        ("camt053/camt053.v4.xml", "camt.053"),
        ("camt053/camt053.v8.xml", "camt.053"),
        ("mt940/abnamro.sta", "mt940"),
        ("mt940/rabobank.sta", "mt940"),
        ("mt940/mt940.sta", "mt940"),
        ("nacha/return-WEB.ach", "nacha"),
        ("nacha/cor-example.ach", "nacha"),
        ("nacha/web-debit.ach", "nacha"),
    ],
)
def test_auto_detects_the_format_of_each_real_file(partner_files: Path, path: str, name: str) -> None:
    assert detect_format(FORMATS, (partner_files / path).read_bytes()).name == name


def test_real_camt053_v8_is_read_with_its_references(partner_files: Path) -> None:
    (s,) = FORMATS["camt.053"].read((partner_files / "camt053/camt053.v8.xml").read_bytes())
    assert (s.statement_id, s.currency, s.sequence) == ("253EURNL26VAYB8060476890", "EUR", 12312)
    assert s.account is not None and s.account.endswith("6890") and "NL26" not in s.account
    (line,) = s.lines
    assert (line.amount_minor, line.direction, line.end_to_end_id) == (885, "credit", "MUELL/FINP/RA12345")
    assert line.servicer_reference == "AAAASESS-FP-CN_98765/01"


@pytest.mark.parametrize("version", ["camt053.v2.minimal.xml", "camt053.v4.xml", "camt053.v8.xml"])
async def test_real_camt053_files_are_refused_because_their_balances_are_in_other_currencies(
    engine: AsyncEngine, partner_files: Path, version: str
) -> None:
    # genkgo/camt's fixtures give OPBD in EUR and CLBD in SEK: opening + movements = closing cannot hold
    with pytest.raises(StatementFileError, match="closing balance is in SEK, the statement in EUR"):
        await import_file(engine, FORMATS, (partner_files / "camt053" / version).read_bytes(), now=NOW)
    assert await _counts(engine) == (0, 0)


@pytest.mark.parametrize(
    ("path", "refusal"),
    [
        ("mt940/abnamro.sta", r"'517852257/19321/1': opening 323628 \+ movements -32144 = 291484, but the closing"),
        ("mt940/rabobank.sta", r"'1291.99.348EUR/940A110615': opening 47317 \+ movements -121328"),
        ("mt940/mt940.sta", r"'DEM' is not an ISO 4217 currency code"),
    ],
)
async def test_real_mt940_files_whose_figures_do_not_add_up_are_refused_whole(
    engine: AsyncEngine, partner_files: Path, path: str, refusal: str
) -> None:
    with pytest.raises(StatementFileError, match=refusal) as caught:
        await import_file(engine, FORMATS, (partner_files / path).read_bytes(), now=NOW)
    assert "\n" not in caught.value.message
    assert await _counts(engine) == (0, 0)


def test_real_mt940_statements_are_read_by_the_mt940_library(partner_files: Path) -> None:
    found = FORMATS["mt940"].read((partner_files / "mt940/rabobank.sta").read_bytes())
    assert [s.statement_id for s in found] == [
        "1291.99.348EUR/940A110615",
        "1291.99.348EUR/940A110616",
        "1291.99.348EUR/940A110617",
        "1526.89.184EUR/940A120829",
    ]
    last = found[-1]
    assert (last.opening_minor, last.closing_minor) == (419612, 410182)
    assert [x.amount_minor for x in last.lines] == [8810, 620]
    cmxl = (partner_files / "mt940/mt940.sta").read_bytes()
    (pln,) = FORMATS["mt940"].read(cmxl[cmxl.index(b":20:TELEWIZORY") :])  # its third message; the first is in DEM
    assert (pln.currency, pln.opening_minor, pln.credits_minor, pln.debits_minor) == ("PLN", 4000000, 2004000, 1000000)


async def test_real_nacha_return_file_imports_with_reasons_and_original_traces(
    engine: AsyncEngine, partner_files: Path
) -> None:
    report = await import_file(engine, FORMATS, (partner_files / "nacha/return-WEB.ach").read_bytes(), now=NOW)
    assert (report.format, report.as_dict()["stored"], report.as_dict()["lines"]) == ("nacha", 1, 2)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(statement_lines).order_by(statement_lines.c.line))).mappings().all()
    assert [(r["kind"], r["reason_code"], r["original_reference"], r["amount_minor"]) for r in rows] == [
        ("return", "R01", "091400600000001", 12354),
        ("return", "R03", "091400600000003", 4565),
    ]
    assert all(r["counterparty_account"].startswith("*") for r in rows)


async def test_real_nacha_notification_of_change_imports_as_a_change_line(
    engine: AsyncEngine, partner_files: Path
) -> None:
    await import_file(engine, FORMATS, (partner_files / "nacha/cor-example.ach").read_bytes(), now=NOW)
    async with engine.connect() as conn:
        row = (await conn.execute(select(statement_lines))).mappings().one()
    assert (row["kind"], row["reason_code"], row["amount_minor"]) == ("change", "C01", 0)


async def test_real_nacha_file_with_wrong_control_totals_is_refused(engine: AsyncEngine, partner_files: Path) -> None:
    with pytest.raises(StatementFileError, match="batch_count is 000005, the batches give 4"):
        await import_file(engine, FORMATS, (partner_files / "nacha/20110805A.ach").read_bytes(), now=NOW)
    assert await _counts(engine) == (0, 0)


async def test_the_same_statement_twice_adds_nothing(engine: AsyncEngine, partner_files: Path) -> None:
    body = (partner_files / "nacha/web-debit.ach").read_bytes()
    first = await import_file(engine, FORMATS, body, now=NOW)
    again = await import_file(engine, FORMATS, body, now=NOW, given="nacha")
    assert [s.stored for s in first.statements] == [True]
    assert [s.stored for s in again.statements] == [False]
    assert await _counts(engine) == (1, 6)


async def test_a_balanced_mt940_imports_and_a_gap_in_the_sequence_is_reported(engine: AsyncEngine) -> None:
    one = _mt940(11, "100,00", [("C", "25,50", "E2E-1"), ("D", "10,00", "NONREF")], "115,50")
    three = _mt940(13, "115,50", [], "115,50")
    first = await import_file(engine, FORMATS, one.encode(), now=NOW)
    assert first.gaps == []
    later = await import_file(engine, FORMATS, three.encode(), now=NOW)
    assert later.gaps == ["statement 12 of iso20022_bank account **************0000 not imported"]
    assert await _counts(engine) == (2, 2)


def test_a_file_no_format_recognises_is_refused_in_one_line() -> None:
    with pytest.raises(StatementFileError, match="matches no known statement format"):
        detect_format(FORMATS, b"date,amount\n2026-12-01,10.00\n")
    with pytest.raises(StatementFileError, match="the csv format needs a column mapping"):
        detect_format(FORMATS, b"x", "csv")


def test_a_malformed_mt940_is_refused_not_crashed() -> None:
    with pytest.raises(StatementFileError, match="mt940"):
        read_file(FORMATS["mt940"], b":20:X\n:25:A\n:60F:C261301EURabc\n:62F:C261201EUR1,00\n")
