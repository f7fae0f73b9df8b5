"""The rules of config/reconciliation.yaml on a real database: order, AND, 1:1, 1:N, N:1, tolerance, ledger."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import product

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.statements import Statement, StatementLine
from gateway.errors import ConflictError
from gateway.recon.breaks import list_breaks
from gateway.recon.matching import load_open_lines
from gateway.recon.rules import load_recon_rules
from gateway.recon.service import confirm_match, run_recon
from gateway.store.statements import store_statements
from gateway.store.tables import (
    instructions,
    ledger_postings,
    recon_match_lines,
    recon_match_payments,
    recon_matches,
)
from tests.support import NOW, insert_instruction

RULES = load_recon_rules()
TODAY: date = NOW.date()


async def _payment(
    engine: AsyncEngine,
    reference: str,
    amount: str = "1250.00",
    partner_reference: str | None = None,
    status: str = "settled",
) -> str:
    instruction_id = await insert_instruction(engine, reference=reference, amount=amount)
    async with engine.begin() as conn:
        await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id)
            .values(status=status, adapter="bank", partner_reference=partner_reference, updated_at=NOW)
        )
    return instruction_id


def _line(amount_minor: int = 125000, credit: bool = False, **refs: str) -> StatementLine:
    return StatementLine(amount_minor=amount_minor, credit=credit, currency="EUR", booked_on=TODAY, **refs)


async def _statement(engine: AsyncEngine, name: str, *lines: StatementLine, end: date | None = None) -> None:
    statement = Statement(
        source="bank",
        format="test",
        statement_id=name,
        currency="EUR",
        period_start=TODAY,
        period_end=end or TODAY,
        lines=lines,
    )
    await store_statements(engine, [statement], digest=name.ljust(64, "0")[:64], now=NOW)


async def _matches(engine: AsyncEngine) -> list[tuple[list[int], list[str], str, str, int]]:
    """(lines, payments, status, rule, difference) of every match, in id order."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(recon_matches).order_by(recon_matches.c.id))).mappings().all()
        out = []
        for r in rows:
            lines = (
                await conn.scalars(
                    select(recon_match_lines.c.line)
                    .where(recon_match_lines.c.match_id == r["id"])
                    .order_by(recon_match_lines.c.line)
                )
            ).all()
            pays = (
                await conn.scalars(
                    select(recon_match_payments.c.instruction_id)
                    .where(recon_match_payments.c.match_id == r["id"])
                    .order_by(recon_match_payments.c.instruction_id)
                )
            ).all()
            out.append((list(lines), list(pays), r["status"], r["rule"], r["difference_minor"]))
    return out


async def _balance(engine: AsyncEngine, account: str) -> int:
    async with engine.connect() as conn:
        rows = await conn.scalars(select(ledger_postings.c.amount).where(ledger_postings.c.account == account))
        return sum(rows.all())


async def test_rules_in_order_and_no_line_or_payment_used_twice(engine: AsyncEngine) -> None:
    by_id = await _payment(engine, "INV-1")
    by_e2e = await _payment(engine, "INV-2")
    by_partner = await _payment(engine, "INV-3", partner_reference="BANKREF-3")
    by_text = await _payment(engine, "INV-44")
    by_amount = await _payment(engine, "INV-4", amount="990.00")
    unmatched = await _payment(engine, "INV-5", amount="5.00")
    await _statement(
        engine,
        "S-1",
        _line(partner_reference=by_id),
        _line(partner_reference=by_id),  # the same payment again: not used twice, a duplicate
        _line(end_to_end_id="INV-2"),
        _line(servicer_reference="BANKREF-3"),
        _line(text="Payment for INV-44 thank you"),
        _line(99000, counterparty_name="NORDIC  parts ab"),  # the example creditor, exact amount
        _line(777, counterparty_name="Nordic Parts AB"),  # nothing near that amount
        end=TODAY + timedelta(days=2),  # a payment settled today and not on it is missing (2 days)
    )

    run = await run_recon(engine, RULES, now=NOW)
    again = await run_recon(engine, RULES, now=NOW)
    breaks = await list_breaks(engine)

    assert run.as_dict() == {
        "lines": 7,
        "confirmed": 4,
        "suggested": 1,
        "unmatched": 2,
        "breaks_opened": 4,
        "breaks_closed": 0,
    }
    assert again.as_dict()["lines"] == 2 and again.breaks_opened == 0
    assert await _matches(engine) == [
        ([1], [by_id], "confirmed", "reference", 0),
        ([3], [by_e2e], "confirmed", "reference", 0),
        ([4], [by_partner], "confirmed", "reference", 0),
        ([5], [by_text], "confirmed", "remittance", 0),
        ([6], [by_amount], "suggested", "amount-date-counterparty", 0),
    ]
    assert sorted((b["kind"], b["instruction_id"]) for b in breaks) == sorted(
        [
            ("duplicate", by_id),
            ("unexpected_line", None),
            ("suggested_match", None),
            ("missing_on_statement", unmatched),
        ]
    )


async def test_the_database_refuses_a_line_or_a_payment_in_two_matches(engine: AsyncEngine) -> None:
    paid = await _payment(engine, "INV-U")
    await _statement(engine, "S-U", _line(end_to_end_id="INV-U"), _line(125000))
    await run_recon(engine, RULES, now=NOW)
    row = {"source": "bank", "status": "confirmed", "rule": "x", "currency": "EUR", "matched_at": NOW}
    amounts = {"lines_minor": 1, "payments_minor": 1, "difference_minor": 0}
    async with engine.begin() as conn:
        await conn.execute(insert(recon_matches).values(id=99, **row, **amounts))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(recon_match_payments).values(instruction_id=paid, match_id=99))
    async with engine.connect() as conn:
        pk = await conn.scalar(select(recon_match_lines.c.statement_pk))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(recon_match_lines).values(statement_pk=pk, line=1, match_id=99))


async def test_one_line_settles_a_batch_net_of_fees_and_the_fee_is_posted(engine: AsyncEngine) -> None:
    batch = [await _payment(engine, f"ACH-{n}", amount="100.00", partner_reference="BATCH-7") for n in range(3)]
    await _statement(engine, "S-B", _line(30150, partner_reference="BATCH-7"))  # 300.00 + 1.50 fee

    run = await run_recon(engine, RULES, now=NOW)

    assert run.confirmed == 1 and run.matched_lines == 1
    assert await _matches(engine) == [([1], sorted(batch), "confirmed", "batch", 150)]
    assert await _balance(engine, "fees:bank") == 150
    assert await _balance(engine, "partner:bank:bank_reconciled") == -30150
    assert await _balance(engine, "partner:bank:bank") == 30000  # the callbacks' outflow, now reconciled


async def test_two_lines_settle_one_payment(engine: AsyncEngine) -> None:
    paid = await _payment(engine, "INV-SPLIT", amount="1000.00")
    await _statement(engine, "S-N", _line(60000, end_to_end_id="INV-SPLIT"), _line(40000, end_to_end_id="INV-SPLIT"))

    run = await run_recon(engine, RULES, now=NOW)

    assert await _matches(engine) == [([1, 2], [paid], "confirmed", "split", 0)]
    assert run.as_dict()["unmatched"] == 0 and run.breaks_opened == 0


async def test_a_difference_is_suggested_and_confirming_it_posts_the_fee(engine: AsyncEngine) -> None:
    fee = await _payment(engine, "INV-FEE")
    off = await _payment(engine, "INV-OFF")
    await _statement(engine, "S-F", _line(125250, end_to_end_id="INV-FEE"), _line(150000, end_to_end_id="INV-OFF"))

    await run_recon(engine, RULES, now=NOW)
    breaks = await list_breaks(engine)
    before = await _balance(engine, "fees:bank")
    paid = await confirm_match(engine, "m_1", by="finance-1", now=NOW)
    twice = confirm_match(engine, "m_1", by="finance-1", now=NOW)
    with pytest.raises(ConflictError):
        await twice
    await run_recon(engine, RULES, now=NOW)
    left = await list_breaks(engine)

    assert await _matches(engine) == [
        ([1], [fee], "confirmed", "reference-with-fee", 250),
        ([2], [off], "suggested", "reference-amount-differs", 25000),
    ]
    assert [(b["kind"], b["amount_minor"]) for b in breaks] == [("amount_mismatch", 250), ("amount_mismatch", 25000)]
    assert (before, paid, await _balance(engine, "fees:bank")) == (0, [fee], 250)
    assert [(b["kind"], b["amount_minor"]) for b in left] == [("amount_mismatch", 25000)]


async def test_two_payments_a_line_could_be_are_left_for_finance(engine: AsyncEngine) -> None:
    await _payment(engine, "INV-A")
    await _payment(engine, "INV-B")
    await _statement(engine, "S-2", _line(counterparty_name="Nordic Parts AB"))  # fits both by amount + name

    run = await run_recon(engine, RULES, now=NOW)

    assert run.as_dict()["unmatched"] == 1 and await _matches(engine) == []  # never a guess between two
    assert [b["kind"] for b in await list_breaks(engine)] == ["unexpected_line"]


async def test_debited_there_but_rejected_here_is_a_status_mismatch(engine: AsyncEngine) -> None:
    rejected = await _payment(engine, "INV-REJ", status="rejected")
    settled = await _payment(engine, "INV-RET")
    await _statement(
        engine,
        "S-3",
        _line(end_to_end_id="INV-REJ"),
        StatementLine(
            amount_minor=125000,
            credit=True,
            currency="EUR",
            booked_on=TODAY,
            kind="return",
            reason_code="AC04",
            original_reference="INV-RET",
        ),
    )
    await run_recon(engine, RULES, now=NOW)
    breaks = await list_breaks(engine)

    assert sorted((b["kind"], b["instruction_id"]) for b in breaks) == [
        ("status_mismatch", rejected),
        ("status_mismatch", settled),
    ]


async def test_a_line_is_looked_up_by_each_reference_it_has_in_order(engine: AsyncEngine) -> None:
    shapes = [
        dict(zip(("end_to_end_id", "partner_reference", "servicer_reference"), values, strict=True))
        for values in product(("E2E", "", None), ("PTN", "", None), ("SVC", "", None))
    ]
    await _statement(engine, "S-REFS", *(_line(**{k: v for k, v in s.items() if v is not None}) for s in shapes))
    async with engine.connect() as conn:
        lines = await load_open_lines(conn)
    assert [x.refs for x in lines] == [tuple(v for v in s.values() if v) for s in shapes]
    assert ("E2E", "PTN", "SVC") in [x.refs for x in lines] and ("E2E", "PTN") in [x.refs for x in lines]
