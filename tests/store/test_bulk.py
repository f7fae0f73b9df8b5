"""Bulk inserts store exactly what SQLAlchemy Core would have stored, on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.bulk import insert_rows
from gateway.store.tables import business_units, instruction_events, instructions

NOW = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=UTC)


def _instruction(instruction_id: str, reference: str) -> dict[str, object]:
    return {
        "id": instruction_id,
        "business_unit_id": "bu_1",
        "reference": reference,
        "type": "credit_transfer",
        "amount": "1250.00",
        "amount_minor": 125000,
        "currency": "EUR",
        "status": "received",
        "debtor_name": "Ä debtor — ünïcode",
        "debtor_account": "k$abc",
        "debtor_agent": None,
        "creditor_name": "Creditor",
        "creditor_account": "k$def",
        "creditor_agent": "COBADEFFXXX",
        "masked": {"debtor": {"iban": "DE89****3000"}, "creditor": {"wallet": "***x"}},
        "remittance_information": None,
        "requested_execution_date": date(2026, 11, 27),
        "urgency": "standard",
        "channel": None,
        "metadata": {"order": "SO-778", "empty": ""},
        "contract_version": "1.1",
        "adapter": None,
        "partner_reference": None,
        "event_count": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }


async def test_bulk_insert_round_trips_like_sqlalchemy_core(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(business_units.insert().values(id="bu_1", name="erp", created_at=NOW))
        await conn.execute(instructions.insert(), [_instruction("ins_core", "REF-1")])
        await insert_rows(conn, instructions, [_instruction("ins_bulk", "REF-2")])
        event = {
            "instruction_id": "ins_bulk",
            "sequence": 1,
            "previous_status": None,
            "status": "received",
            "applied": True,
            "outcome": "applied",
            "source": "api",
            "adapter": None,
            "partner_reference": None,
            "partner_status": None,
            "reason_code": None,
            "reason": None,
            "occurred_at": NOW,
        }
        await insert_rows(conn, instruction_events, [event, {**event, "sequence": 2, "applied": False}])
    async with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in (await conn.execute(select(instructions))).mappings()}
        events = (
            (await conn.execute(select(instruction_events).order_by(instruction_events.c.sequence))).mappings().all()
        )
        # ordering and range queries over the bulk-written timestamps work like over Core-written ones
        later = await conn.scalar(
            select(instructions.c.id).where(instructions.c.created_at >= NOW).order_by(instructions.c.id)
        )
    core, bulk = rows.pop("ins_core"), rows.pop("ins_bulk")
    assert {k: v for k, v in bulk.items() if k not in ("id", "reference")} == {
        k: v for k, v in core.items() if k not in ("id", "reference")
    }
    assert bulk["created_at"] == NOW and bulk["requested_execution_date"] == date(2026, 11, 27)
    assert bulk["metadata"] == {"order": "SO-778", "empty": ""}
    assert [e["applied"] for e in events] == [True, False]
    assert events[0]["occurred_at"] == NOW
    assert later == "ins_bulk"
