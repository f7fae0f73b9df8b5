"""The store: migrations match the tables; status records are append-only and race-free."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.status import Status
from gateway.errors import ConfigError
from gateway.store import repo
from gateway.store.db import create_engine
from gateway.store.migrate import current_revision, head_revision
from gateway.store.tables import instruction_events, instructions, metadata
from tests.support import NOW, Database, insert_instruction


async def test_migrations_create_exactly_the_declared_tables(engine: AsyncEngine) -> None:
    assert await current_revision(engine) == head_revision()
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
        )
    assert diff == []


async def _history(engine: AsyncEngine, instruction_id: str) -> list[tuple[int, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(instruction_events.c.sequence, instruction_events.c.status, instruction_events.c.outcome)
            .where(instruction_events.c.instruction_id == instruction_id)
            .order_by(instruction_events.c.sequence)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_ignored_transitions_are_recorded_but_not_applied(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine)
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
    instruction_id = await insert_instruction(engine)
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


async def test_a_schema_named_in_the_url_holds_the_tables_on_postgresql(database: Database) -> None:
    # a `gateway serve` process is configured by URL alone: `?schema=` is how it shares a database
    if database.schema is None:
        with pytest.raises(ConfigError, match="PostgreSQL only"):
            create_engine(f"{database.url}?schema=gw")
        return
    engine = create_engine(f"{database.url}?schema={database.schema}")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_schema()")) == database.schema
            assert await conn.scalar(select(func.count()).select_from(instructions)) == 0
    finally:
        await engine.dispose()
    with pytest.raises(ConfigError, match="lower-case letters"):
        create_engine(f"{database.url}?schema=x;DROP")
