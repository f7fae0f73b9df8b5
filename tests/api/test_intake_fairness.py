"""Per business unit rate limits (429) and intake overload shedding (503), through the real app."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import text

from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway


async def post(gw: LiveGateway, key: str, idem: str | None = None) -> tuple[int, dict[str, str], dict[str, object]]:
    resp = await gw.post_instruction(example_instruction(), key=key, idempotency_key=idem)
    async with resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def count(gw: LiveGateway, key: str) -> int:
    async with gw.session.get(f"{gw.url}/v1/instructions?limit=100", headers=gw.headers(key)) as resp:
        assert resp.status == 200
        return len((await resp.json())["items"])


async def test_a_business_unit_over_its_rate_gets_429_and_cannot_starve_the_others(database: Database) -> None:
    gw = await start_gateway(
        database,
        dispatch=False,
        poll=False,
        intake__rate_per_second=0.2,
        intake__burst=2,
        intake__rate_limits={"greedy": {"rate_per_second": 0.5, "burst": 3}},
    )
    try:
        greedy, quiet = await gw.new_key("greedy"), await gw.new_key("quiet")
        assert [(await post(gw, greedy))[0] for _ in range(3)] == [202, 202, 202]  # its own burst of 3
        status, headers, problem = await post(gw, greedy)
        assert status == 429
        assert headers["Content-Type"].startswith("application/problem+json")
        assert problem["type"].endswith("/rate-limited")  # type: ignore[union-attr]
        assert 1 <= int(headers["Retry-After"]) <= 2  # a token every 2 s
        assert await count(gw, greedy) == 3  # nothing accepted for the refused request
        # another unit is unaffected: the default bucket (burst 2) is its own
        assert [(await post(gw, quiet))[0] for _ in range(3)] == [202, 202, 429]
    finally:
        await stop_gateway(gw)


async def test_a_refused_request_is_accepted_when_retried_after_retry_after(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, intake__rate_per_second=5, intake__burst=1)
    try:
        key = await gw.new_key("steady")
        assert (await post(gw, key))[0] == 202
        idem = uuid.uuid4().hex
        status, headers, _ = await post(gw, key, idem)
        assert status == 429 and headers["Retry-After"] == "1"
        await asyncio.sleep(0.25)  # 5/s: a token is back
        assert (await post(gw, key, idem))[0] == 202
        assert await count(gw, key) == 2
    finally:
        await stop_gateway(gw)


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        lock.execute("ROLLBACK")
        lock.close()


@asynccontextmanager
async def database_locked(database: Database) -> AsyncIterator[None]:
    """Hold the lock intake needs (SQLite's write lock; the instructions table on PostgreSQL)."""
    if database.schema is None:
        with sqlite_write_lock(database.url.split(":///", 1)[1]):
            yield
        return
    engine = database.engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("LOCK TABLE instructions IN EXCLUSIVE MODE"))
            yield
    finally:
        await engine.dispose()


async def test_a_stalled_intake_writer_answers_503_at_once_and_accepts_nothing(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, intake__max_wait_seconds=0.3)
    try:
        assert (await post(gw, gw.key))[0] == 202  # the key is known (authentication is a cached read from now)
        async with database_locked(database):
            first = asyncio.create_task(post(gw, gw.key))  # waits in the writer's stalled batch
            await asyncio.sleep(0.8)
            idem = uuid.uuid4().hex
            started = time.monotonic()
            status, headers, problem = await post(gw, gw.key, idem)
            elapsed = time.monotonic() - started
            assert status == 503 and elapsed < 0.5  # shed at once, not queued behind the stall
            assert problem["type"].endswith("/unavailable")  # type: ignore[union-attr]
            assert int(headers["Retry-After"]) >= 1
            assert not first.done()
        assert (await first)[0] == 202  # the stalled batch commits once the lock is gone
        assert (await post(gw, gw.key, idem))[0] == 202  # the shed request, retried with its key
        assert await count(gw, gw.key) == 3
    finally:
        await stop_gateway(gw)


async def test_more_waiting_than_max_queue_is_shed_with_503(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, intake__max_queue=2, intake__max_wait_seconds=30)
    try:
        assert (await post(gw, gw.key))[0] == 202  # the key is known (authentication is a cached read from now)
        async with database_locked(database):
            waiting = [asyncio.create_task(post(gw, gw.key)) for _ in range(4)]  # one in the batch, three queued
            await asyncio.sleep(0.8)
            status, headers, _ = await post(gw, gw.key)
            assert status == 503 and "Retry-After" in headers
        statuses = sorted([(await w)[0] for w in waiting])
        assert statuses.count(202) >= 3 and set(statuses) <= {202, 503}
        assert await count(gw, gw.key) == 1 + statuses.count(202)
    finally:
        await stop_gateway(gw)
