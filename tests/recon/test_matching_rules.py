"""The matching rules in order, on a real database: references confirm, the rest is only suggested."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import ReconciliationSettings
from gateway.domain.statements import Statement, StatementLine
from gateway.recon.matching import list_breaks, run_matching
from gateway.store.statements import store_statements
from gateway.store.tables import instructions, recon_matches
from tests.support import NOW, insert_instruction

RULES = ReconciliationSettings(
    date_window_days=3, amount_tolerance_minor=0, amount_tolerance_bp=100, missing_after_days=2
)
TODAY: date = NOW.date()


async def _payment(
    engine: AsyncEngine, reference: str, amount: str = "1250.00", partner_reference: str | None = None
) -> str:
    instruction_id = await insert_instruction(engine, reference=reference, amount=amount)
    async with engine.begin() as conn:
        await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id)
            .values(status="settled", adapter="bank", partner_reference=partner_reference)
        )
    return instruction_id


def _line(amount_minor: int = 125000, **refs: str) -> StatementLine:
    return StatementLine(amount_minor=amount_minor, credit=False, currency="EUR", booked_on=TODAY, **refs)


async def _matches(engine: AsyncEngine) -> dict[int, tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(recon_matches))).mappings().all()
    return {r["line"]: (r["instruction_id"], r["status"], r["rule"]) for r in rows}


async def test_rules_in_order_and_no_line_or_payment_used_twice(engine: AsyncEngine) -> None:
    by_id = await _payment(engine, "INV-1")
    by_e2e = await _payment(engine, "INV-2")
    by_partner = await _payment(engine, "INV-3", partner_reference="BANKREF-3")
    by_amount = await _payment(engine, "INV-4", amount="990.00")
    unmatched = await _payment(engine, "INV-5", amount="5.00")
    lines = (
        _line(partner_reference=by_id),
        _line(partner_reference=by_id),  # the same payment again: not used twice
        _line(end_to_end_id="INV-2"),
        _line(servicer_reference="BANKREF-3"),
        _line(98500, counterparty_name="NORDIC  parts ab"),  # 5.00 off 990.00: within 1 %
        _line(777, counterparty_name="Nordic Parts AB"),  # nothing near that amount
    )
    statement = Statement(
        source="bank",
        format="test",
        statement_id="S-1",
        currency="EUR",
        period_start=TODAY,
        period_end=TODAY + timedelta(days=2),  # a payment settled today and not on it is missing (2 days)
        lines=lines,
    )
    await store_statements(engine, [statement], digest="0" * 64, now=NOW)

    run = await run_matching(engine, RULES, now=NOW)
    again = await run_matching(engine, RULES, now=NOW)
    breaks = await list_breaks(engine, RULES, now=NOW + timedelta(days=10))

    assert run.as_dict() == {"lines": 6, "confirmed": 3, "suggested": 1, "unmatched": 2}
    assert again.as_dict() == {"lines": 2, "confirmed": 0, "suggested": 0, "unmatched": 2}
    assert await _matches(engine) == {
        1: (by_id, "confirmed", "instruction-id"),
        3: (by_e2e, "confirmed", "end-to-end-id"),
        4: (by_partner, "confirmed", "partner-reference"),
        5: (by_amount, "suggested", "amount-date-counterparty"),
    }
    assert [(b.kind, b.instruction_id) for b in breaks] == [
        ("unexpected_line", None),
        ("duplicate", None),  # names a payment line 1 already took
        ("suggested_match", by_amount),
        ("missing_on_statement", unmatched),
    ]
    assert breaks[0].age_days == 10


async def test_two_payments_a_line_could_be_are_left_for_finance(engine: AsyncEngine) -> None:
    await _payment(engine, "INV-A")
    await _payment(engine, "INV-B")
    line = _line(counterparty_name="Nordic Parts AB")  # same amount, day and creditor as both
    await store_statements(
        engine,
        [Statement(source="bank", format="test", statement_id="S-2", currency="EUR", lines=(line,))],
        digest="1" * 64,
        now=NOW,
    )
    run = await run_matching(engine, RULES, now=NOW)
    assert run.as_dict()["unmatched"] == 1


async def test_a_line_naming_a_payment_matched_earlier_is_a_duplicate_not_a_guess(engine: AsyncEngine) -> None:
    first = await _payment(engine, "INV-X")
    await _payment(engine, "INV-Y")  # same amount, day and creditor: rule 4 would fit it
    again = _line(end_to_end_id="INV-X", counterparty_name="Nordic Parts AB")
    for n, line in enumerate([_line(end_to_end_id="INV-X"), again], start=1):
        statement = Statement(source="bank", format="test", statement_id=f"D-{n}", currency="EUR", lines=(line,))
        await store_statements(engine, [statement], digest=str(n) * 64, now=NOW)
        await run_matching(engine, RULES, now=NOW)

    breaks = await list_breaks(engine, RULES, now=NOW)

    assert list((await _matches(engine)).values()) == [(first, "confirmed", "end-to-end-id")]
    assert [b.kind for b in breaks] == ["duplicate"]
