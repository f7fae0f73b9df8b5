"""Tamper evidence: rows changed, deleted or inserted behind the gateway's back are named by verify."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.collection import parse_collection
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.ids import new_id
from gateway.domain.status import Decision, Status
from gateway.store import collections as collection_store
from gateway.store import repo
from gateway.store.audit import verify
from gateway.store.tables import collection_events, instruction_events, instructions, ledger_entries, ledger_postings
from tests.support import NOW, TEST_CODEC, insert_instruction

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


async def _collections(engine: AsyncEngine) -> None:
    """Two direct debits through their statuses: 8 events in the collections chain."""
    doc = {
        "kind": "direct_debit",
        "amount": {"value": "25.00", "currency": "EUR"},
        "payer": {"name": "Debtor", "iban": "DE89370400440532013000"},
        "mandate": {"id": "M1", "signature_date": "2026-01-15", "sequence_type": "RCUR"},
    }
    for n in range(2):
        collection_id = new_id("col")
        data = parse_collection({**doc, "reference": f"COL-{n}"})
        async with engine.begin() as conn:
            bu = await repo.ensure_business_unit(conn, "erp", NOW)
            row = collection_store.new_collection_row(TEST_CODEC.cipher, collection_id, bu, data, "1.1", NOW)
            await collection_store.store_collection(
                conn, row=row, key=f"k{n}", request_hash="h", response={"id": collection_id}, now=NOW
            )
        for status in (CollectionStatus.ACCEPTED, CollectionStatus.SUBMITTED, CollectionStatus.COLLECTED):
            async with engine.begin() as conn:
                await collection_store.record_collection_transitions(
                    conn, [collection_store.CollectionTransition(collection_id, status, source="test")], NOW
                )


async def change_a_collection_event(conn: AsyncConnection) -> str:
    event_id = await conn.scalar(select(collection_events.c.id).where(collection_events.c.chain_seq == 6))
    await conn.execute(update(collection_events).where(collection_events.c.id == event_id).values(status="returned"))
    return f"collections chain at position 6: collection_events row id={event_id}"


async def delete_a_collection_event(conn: AsyncConnection) -> str:
    await conn.execute(delete(collection_events).where(collection_events.c.chain_seq == 3))
    return "collections chain at position 3: the row at position 3 was deleted"


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
        change_a_collection_event,
        delete_a_collection_event,
    )
}


@pytest.mark.parametrize("tamper", list(TAMPERING))
async def test_verify_names_the_first_row_changed_deleted_or_inserted(engine: AsyncEngine, tamper: str) -> None:
    await _history(engine)
    await _collections(engine)
    async with engine.connect() as conn:
        clean = await verify(conn)
    assert clean.ok and clean.checked == {"events": 15, "collections": 8, "journal": 11}
    async with engine.begin() as conn:
        expected = await TAMPERING[tamper](conn)
    async with engine.connect() as conn:
        report = await verify(conn)
    assert not report.ok
    assert expected in report.findings[0].line()
