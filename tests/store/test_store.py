"""The store: migrations match the tables; status records are append-only and race-free."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.contracts import contracts
from gateway.crypto import FieldCipher, parse_key_ring
from gateway.ids import new_id
from gateway.instruction import InstructionData, parse_instruction
from gateway.status import Decision, Status
from gateway.store import repo
from gateway.store.codec import InstructionCodec
from gateway.store.migrate import current_revision, head_revision
from gateway.store.tables import instruction_events, instructions, metadata
from gateway.versioning import parse_as_latest
from tests.support import example_instruction

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_migrations_create_exactly_the_declared_tables(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == head_revision()
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
        )
    assert diff == []


def _parse(body: dict[str, Any]) -> InstructionData:
    return parse_as_latest(contracts(), "instruction", "1.1", body, parse_instruction)


async def _insert_instruction(engine: AsyncEngine) -> str:
    cipher = FieldCipher(parse_key_ring("t:" + "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="))
    codec = InstructionCodec(cipher)
    instruction_id = new_id("ins")
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp", NOW)
        await conn.execute(
            instructions.insert().values(codec.new_row(instruction_id, bu, _parse(example_instruction()), "1.1", NOW))
        )
        await conn.execute(
            instruction_events.insert().values(
                repo.event_row(
                    instruction_id, 1, None, Status.RECEIVED, Decision(True, "applied"), source="api", occurred_at=NOW
                )
            )
        )
    return instruction_id


async def _history(engine: AsyncEngine, instruction_id: str) -> list[tuple[int, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(instruction_events.c.sequence, instruction_events.c.status, instruction_events.c.outcome)
            .where(instruction_events.c.instruction_id == instruction_id)
            .order_by(instruction_events.c.sequence)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_ignored_transitions_are_recorded_but_not_applied(engine: AsyncEngine) -> None:
    instruction_id = await _insert_instruction(engine)
    for status in (Status.ACCEPTED, Status.ROUTED, Status.SETTLED, Status.SUBMITTED, Status.REJECTED, Status.SETTLED):
        async with engine.begin() as conn:
            await repo.record_status(conn, instruction_id, status, source="callback", now=NOW)
    async with engine.connect() as conn:
        assert await conn.scalar(select(instructions.c.status).where(instructions.c.id == instruction_id)) == "settled"
    assert await _history(engine, instruction_id) == [
        (1, "received", "applied"),
        (2, "accepted", "applied"),
        (3, "routed", "applied"),
        (4, "settled", "applied"),
        (5, "submitted", "stale"),
        (6, "rejected", "illegal"),
        (7, "settled", "duplicate"),
    ]


async def test_concurrent_status_reports_apply_exactly_once(engine: AsyncEngine) -> None:
    instruction_id = await _insert_instruction(engine)
    for status in (Status.ACCEPTED, Status.ROUTED, Status.SUBMITTED):
        async with engine.begin() as conn:
            await repo.record_status(conn, instruction_id, status, source="dispatcher", now=NOW)

    async def report(status: Status) -> bool:
        async with engine.begin() as conn:
            rec = await repo.record_status(conn, instruction_id, status, source="callback", now=NOW)
        return rec.decision.applied

    # a settlement and a rejection race, each delivered several times
    results = await asyncio.gather(*(report(s) for s in [Status.SETTLED, Status.REJECTED] * 5))
    assert sum(results) == 1
    history = await _history(engine, instruction_id)
    assert [seq for seq, _, _ in history] == list(range(1, 15))
    assert sum(1 for _, _, outcome in history if outcome == "applied") == 5
