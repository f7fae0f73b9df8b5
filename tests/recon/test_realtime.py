"""Real time: a line that arrived before the callback is matched when the payment settles, not at end of day."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.events import StatusChange
from gateway.domain.statements import Statement, StatementLine
from gateway.domain.status import Status
from gateway.recon.breaks import list_breaks
from gateway.recon.realtime import RealtimeRecon
from gateway.recon.rules import load_recon_rules
from gateway.recon.service import run_recon
from gateway.store.statements import store_statements
from gateway.store.tables import instructions, ledger_postings, recon_match_payments
from tests.support import NOW, insert_instruction

RULES = load_recon_rules()


async def _status(engine: AsyncEngine, instruction_id: str, status: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(instructions)
            .where(instructions.c.id == instruction_id)
            .values(status=status, adapter="bank", updated_at=NOW)
        )


async def test_an_early_line_is_matched_as_the_callback_settles_the_payment(engine: AsyncEngine) -> None:
    paid = await insert_instruction(engine, reference="INV-RT-1", amount="10.00")
    await _status(engine, paid, "submitted")
    line = StatementLine(
        amount_minor=1000, credit=False, currency="EUR", booked_on=NOW.date(), end_to_end_id="INV-RT-1"
    )
    intraday = Statement(source="bank", format="test", statement_id="INTRADAY-1", currency="EUR", lines=(line,))
    await store_statements(engine, [intraday], digest="a" * 64, now=NOW)
    early = await run_recon(engine, RULES, now=NOW)
    before = [(b["kind"], b["state"]) for b in await list_breaks(engine)]

    realtime = RealtimeRecon(engine, RULES, lambda: NOW, delay=0)
    await _status(engine, paid, "settled")
    realtime.gateway_status_changed(StatusChange(paid, "bu", Status.SUBMITTED, Status.SETTLED, "callback", NOW))
    realtime.gateway_status_changed(  # a burst: still one run
        StatusChange(paid, "bu", Status.SUBMITTED, Status.SETTLED, "callback", NOW)
    )
    await realtime.close()

    async with engine.connect() as conn:
        matched = (await conn.scalars(select(recon_match_payments.c.instruction_id))).all()
        suspense = sum(
            (await conn.scalars(select(ledger_postings.c.amount).where(ledger_postings.c.account == "suspense"))).all()
        )
    assert early.matched_lines == 0 and before == [("status_mismatch", "open")]
    assert realtime.runs == 1 and matched == [paid]
    assert await list_breaks(engine) == [] and suspense == 0


async def test_a_settled_payment_with_no_line_waiting_runs_nothing(engine: AsyncEngine) -> None:
    paid = await insert_instruction(engine, reference="INV-RT-2")
    await _status(engine, paid, "settled")
    realtime = RealtimeRecon(engine, RULES, lambda: NOW, delay=0)

    realtime.gateway_status_changed(StatusChange(paid, "bu", Status.SUBMITTED, Status.SETTLED, "callback", NOW))
    realtime.gateway_status_changed(StatusChange(paid, "bu", Status.SETTLED, Status.RETURNED, "callback", NOW))
    await realtime.close()

    assert realtime.runs == 0
