"""``dispatch.gather_seconds``: the dispatcher claims at most once per window, however often it is woken, and
what arrived meanwhile goes in one batch; every payment still settles."""

from __future__ import annotations

import asyncio
import itertools
import time

from gateway.store.repo import OutboxJob
from tests.support import Database, example_instruction, start_gateway, stop_gateway


async def test_claims_are_at_least_gather_seconds_apart_and_everything_settles(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, dispatch__gather_seconds=0.3)
    dispatcher = gw.runtime.new_dispatcher(owner="gathering")
    claims: list[tuple[float, int]] = []
    claim = dispatcher.claim

    async def recorded(limit: int | None = None) -> list[OutboxJob]:
        started = time.monotonic()
        jobs = await claim(limit)
        if jobs:
            claims.append((started, len(jobs)))
        return jobs

    dispatcher.claim = recorded  # type: ignore[method-assign]
    ids: list[str] = []
    try:
        await dispatcher.start()
        for _ in range(12):  # a payment every 0.1 s, each intake commit waking the dispatcher
            resp = await gw.post_instruction(example_instruction())
            assert resp.status == 202, await resp.text()
            ids.append((await resp.json())["id"])
            dispatcher.wake()
            await asyncio.sleep(0.1)
        for instruction_id in ids:
            assert (await gw.wait_for(instruction_id))["status"] == "settled"
    finally:
        await dispatcher.stop()
        await stop_gateway(gw)
    assert sum(n for _, n in claims) == len(ids)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(claims)]
    assert gaps and min(gaps) >= 0.3 - 0.01  # never two claims within the window
    assert len(claims) < len(ids)  # some batches held more than one payment
