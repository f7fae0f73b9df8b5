"""The group-commit writer: every outcome in one batch, on both write paths.

On SQLite the writer runs a batch's statements in one trip to the driver's
thread (``gateway.store.sqlite_thread``); with ``one_hop=False`` (and always on
PostgreSQL) it sends them one by one through SQLAlchemy. Both must decide and
store exactly the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.contracts.registry import contracts
from gateway.contracts.versions import parse_as_latest
from gateway.domain.ids import new_id
from gateway.domain.instruction import parse_instruction
from gateway.store import repo
from gateway.store.intake import IntakeItem, IntakeOutcome, IntakeResult, IntakeWriter
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import idempotency_keys, instruction_events, instructions, outbox
from tests.support import NOW, POSTGRESQL_ONLY, TEST_CODEC, example_instruction


def item(bu: str, key: str, body: dict[str, Any], request_hash: str) -> IntakeItem:
    data = parse_as_latest(contracts(), "instruction", "1.0", body, parse_instruction)
    instruction_id = new_id("ins")
    response = {"id": instruction_id, "reference": data.reference, "status": "received", "created_at": NOW.isoformat()}
    return IntakeItem.received(
        business_unit_id=bu,
        idempotency_key=key,
        request_hash=request_hash,
        instruction=TEST_CODEC.new_row(instruction_id, bu, data, "1.0", NOW, submitted_by="key_1"),
        response=response,
        now=NOW,
    )


async def write(writer: IntakeWriter, items: list[IntakeItem]) -> list[IntakeResult]:
    async with writer.engine.begin() as conn:
        return await writer._write(conn, items)


async def counts(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return [
            int(await conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (instructions, instruction_events, outbox, idempotency_keys)
        ]


@pytest.mark.parametrize("one_hop", [True, False], ids=["one-hop", "statement-by-statement"])
async def test_one_batch_with_every_outcome(engine: AsyncEngine, one_hop: bool) -> None:
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp", NOW)
        other = await repo.ensure_business_unit(conn, "erp-americas", NOW)
    writer = IntakeWriter(engine, one_hop=one_hop)
    async with engine.connect() as conn:
        runs_in_thread = await sqlite_thread(conn, enabled=one_hop) is not None
    assert runs_in_thread == (one_hop and engine.dialect.name == "sqlite")

    body = example_instruction()
    first = item(bu, "k-1", body, "h1")
    assert [r.outcome for r in await write(writer, [first])] == [IntakeOutcome.CREATED]

    fresh = example_instruction()
    batch = [
        item(bu, "k-1", body, "h1"),  # stored key, same body: the stored response again
        item(bu, "k-1", body, "h-other"),  # stored key, other body
        item(bu, "k-2", body, "h2"),  # new key, but the reference is taken
        item(other, "k-2", body, "h2"),  # the same reference in another business unit is fine
        item(bu, "k-3", fresh, "h3"),  # new
        item(bu, "k-3", fresh, "h3"),  # same key twice in one batch, same body: replay of the first
        item(bu, "k-3", fresh, "h3-other"),  # same key twice in one batch, other body
        item(bu, "k-4", fresh, "h4"),  # reference taken earlier in this batch
    ]
    results = await write(writer, batch)
    assert [(r.outcome, r.status_code) for r in results] == [
        (IntakeOutcome.REPLAYED, 202),
        (IntakeOutcome.KEY_CONFLICT, 409),
        (IntakeOutcome.DUPLICATE_REFERENCE, 409),
        (IntakeOutcome.CREATED, 202),
        (IntakeOutcome.CREATED, 202),
        (IntakeOutcome.REPLAYED, 202),
        (IntakeOutcome.KEY_CONFLICT, 409),
        (IntakeOutcome.DUPLICATE_REFERENCE, 409),
    ]
    assert results[0].response == first.response  # read back from the store, JSON decoded
    assert results[5].response == batch[4].response
    assert await counts(engine) == [3, 3, 3, 3]

    async with engine.connect() as conn:
        stored = (await conn.execute(select(instructions).where(instructions.c.id == batch[4].instruction["id"]))).one()
        job = (await conn.execute(select(outbox).where(outbox.c.instruction_id == batch[4].instruction["id"]))).one()
    assert stored.created_at == NOW and stored.reference == fresh["reference"]
    assert stored.masked == batch[4].instruction["masked"]
    assert job.available_at == NOW and job.kind == "dispatch"


@pytest.mark.parametrize("one_hop", [True, False], ids=["one-hop", "statement-by-statement"])
async def test_a_failed_batch_writes_nothing(engine: AsyncEngine, one_hop: bool) -> None:
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp", NOW)
    writer = IntakeWriter(engine, one_hop=one_hop)
    good = item(bu, "k-1", example_instruction(), "h1")
    broken = item(bu, "k-2", example_instruction(), "h2")
    broken.event = dict(broken.event, instruction_id="ins_NOSUCHINSTRUCTION0000000000")  # foreign key fails
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await write(writer, [good, broken])
    assert await counts(engine) == [0, 0, 0, 0]


async def test_writer_task_group_commits_concurrent_submissions(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp", NOW)
    committed: list[int] = []
    writer = IntakeWriter(engine, on_committed=committed.append)
    await writer.start()
    try:
        results = await asyncio.gather(
            *(writer.submit(item(bu, f"k-{n}", example_instruction(), "h")) for n in range(50))
        )
    finally:
        await writer.stop()
    assert {r.outcome for r in results} == {IntakeOutcome.CREATED}
    assert sum(committed) == 50 and len(committed) < 50  # group commits, not one per request
    assert await counts(engine) == [50, 50, 50, 50]


@pytest.mark.parametrize("database", [POSTGRESQL_ONLY], indirect=True)
async def test_writer_recovers_when_postgresql_drops_its_connection(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer keeps its own connection on PostgreSQL; a restarted server must not cost a batch."""
    async with engine.begin() as conn:
        bu = await repo.ensure_business_unit(conn, "erp", NOW)
    writer = IntakeWriter(engine)
    await writer.start()
    try:
        first = await writer.submit(item(bu, "k-1", example_instruction(), "h1"))
        assert writer._conn is not None
        pid = (await writer._conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
        await writer._conn.rollback()
        async with engine.begin() as conn:
            assert (await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")).scalar_one() is True
        second = await writer.submit(item(bu, "k-2", example_instruction(), "h2"))
        replay = await writer.submit(item(bu, "k-2", example_instruction(), "h2"))
    finally:
        await writer.stop()
    assert (first.outcome, second.outcome, replay.outcome) == (
        IntakeOutcome.CREATED,
        IntakeOutcome.CREATED,
        IntakeOutcome.REPLAYED,
    )
    assert writer._conn is None  # released at stop
    assert "lost its database connection" in caplog.text  # the batch was retried, not failed
    assert await counts(engine) == [2, 2, 2, 2]
