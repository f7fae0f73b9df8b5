"""Tamper evidence: rows changed, deleted or inserted behind the gateway's back are named by verify."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.status import Decision, Status
from gateway.store import repo
from gateway.store.audit import verify
from gateway.store.tables import instruction_events, instructions, ledger_entries, ledger_postings
from tests.support import NOW, insert_instruction

S = Status


async def _history(engine: AsyncEngine) -> list[str]:
    ids = []
    for _ in range(3):
        instruction_id = await insert_instruction(engine)
        for status in (S.ACCEPTED, S.ROUTED, S.SUBMITTED, S.SETTLED):
            async with engine.begin() as conn:
                await repo.record_status(conn, instruction_id, status, source="test", now=NOW, adapter="bank")
        ids.append(instruction_id)
    return ids


async def _event_id(conn: AsyncConnection, position: int) -> int:
    return int(await conn.scalar(select(instruction_events.c.id).where(instruction_events.c.chain_seq == position)))


async def change_an_event(conn: AsyncConnection) -> str:
    event_id = await _event_id(conn, 7)
    await conn.execute(update(instruction_events).where(instruction_events.c.id == event_id).values(status="failed"))
    return f"events chain at position 7: instruction_events row id={event_id}"


async def delete_an_event(conn: AsyncConnection) -> str:
    await conn.execute(delete(instruction_events).where(instruction_events.c.id == await _event_id(conn, 4)))
    return "events chain at position 4: the row at position 4 was deleted"


async def delete_the_last_event(conn: AsyncConnection) -> str:
    last = await conn.scalar(select(func.max(instruction_events.c.chain_seq)))
    await conn.execute(delete(instruction_events).where(instruction_events.c.chain_seq == last))
    return f"events chain at position {last}: the row at position {last} was deleted"


async def insert_an_event(conn: AsyncConnection) -> str:
    victim = await conn.scalar(select(instructions.c.id).order_by(instructions.c.id).limit(1))
    row = repo.event_row(
        victim, 99, S.SETTLED, S.RETURNED, Decision(True, "applied"), source="api", occurred_at=NOW, adapter="bank"
    )
    await conn.execute(instruction_events.insert().values(row))
    forged = await conn.scalar(select(instruction_events.c.id).where(instruction_events.c.sequence == 99))
    return f"events chain: instruction_events row id={forged} ({victim} #99) was inserted"


async def change_a_posting(conn: AsyncConnection) -> str:
    await conn.execute(
        update(ledger_postings)
        .where(ledger_postings.c.entry_id == 2, ledger_postings.c.line == 1)
        .values(amount=ledger_postings.c.amount + 100)
    )
    return "journal chain at position 2: ledger_entries row id=2 was changed"


async def change_an_entry(conn: AsyncConnection) -> str:
    await conn.execute(update(ledger_entries).where(ledger_entries.c.id == 3).values(memo="nothing to see"))
    return "journal chain at position 3: ledger_entries row id=3 was changed"


async def delete_an_entry(conn: AsyncConnection) -> str:
    await conn.execute(delete(ledger_postings).where(ledger_postings.c.entry_id == 5))
    await conn.execute(delete(ledger_entries).where(ledger_entries.c.id == 5))
    return "journal chain at position 5: the row at position 5 was deleted (after ledger_entries row id=4)"


async def insert_an_entry(conn: AsyncConnection) -> str:
    last = int(await conn.scalar(select(func.max(ledger_entries.c.id))))
    await conn.execute(
        ledger_entries.insert().values(
            id=last + 1, kind="payment", memo="forged", booked_at=NOW, chain_hash="0" * 64, business_unit="erp"
        )
    )
    return f"journal chain at position {last + 1}: ledger_entries row id={last + 1} was inserted"


async def change_a_running_total(conn: AsyncConnection) -> str:
    await conn.execute(
        update(ledger_postings)
        .where(ledger_postings.c.entry_id == 4)
        .values(debits_after=ledger_postings.c.debits_after + 1)
    )
    return "ledger_postings row (entry 4, line"


TAMPERING: dict[str, Callable[[AsyncConnection], Awaitable[str]]] = {
    f.__name__: f
    for f in (
        change_an_event,
        delete_an_event,
        delete_the_last_event,
        insert_an_event,
        change_a_posting,
        change_an_entry,
        delete_an_entry,
        insert_an_entry,
        change_a_running_total,
    )
}


@pytest.mark.parametrize("tamper", list(TAMPERING))
async def test_verify_names_the_first_row_changed_deleted_or_inserted(engine: AsyncEngine, tamper: str) -> None:
    await _history(engine)
    async with engine.connect() as conn:
        clean = await verify(conn)
    assert clean.ok and clean.checked == {"events": 15, "journal": 9}
    async with engine.begin() as conn:
        expected = await TAMPERING[tamper](conn)
    async with engine.connect() as conn:
        report = await verify(conn)
    assert not report.ok
    assert expected in report.findings[0].line()
