"""Process heartbeats: a dead process's claims are taken over in seconds; a live one's never.

The "other process" is a row in ``processes`` plus a dispatcher claiming under its id,
so the test controls exactly when it stops beating (or which pid it had).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.dispatch.routing import CircuitBreaker
from gateway.store.processes import register_process, share_circuits, take_job_lease
from gateway.store.tables import job_leases, outbox, processes
from gateway_simulators.iso20022_bank import BANK, Bank
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

FAST = {"dispatch__heartbeat_seconds": 0.2, "dispatch__dead_after_seconds": 1.0, "dispatch__lease_seconds": 600}


def bank_of(gw: LiveGateway) -> Bank:
    return gw.simulators["iso20022_bank"].runner.app[BANK]


async def submit(gw: LiveGateway) -> str:
    resp = await gw.post_instruction(example_instruction())
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


async def register_other(gw: LiveGateway, process_id: str, *, host: str, pid: int) -> None:
    """A process that is not this one, as its own start would have registered it."""
    async with gw.runtime.engine.begin() as conn:
        await register_process(conn, process_id, gw.runtime.clock())
        await conn.execute(update(processes).where(processes.c.id == process_id).values(host=host, pid=pid))


async def owners(gw: LiveGateway) -> list[str | None]:
    async with gw.runtime.engine.connect() as conn:
        return [r.lease_owner for r in await conn.execute(select(outbox.c.lease_owner))]


async def test_a_silent_process_claims_are_taken_over_within_seconds(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, **FAST)
    try:
        instruction_id = await submit(gw)
        dead = "elsewhere:4242:dead"
        await register_other(gw, dead, host="elsewhere", pid=4242)
        assert [j.instruction_id for j in await gw.runtime.new_dispatcher(owner=dead).claim()] == [instruction_id]
        # ...that process stops beating (killed); its lease would hold for 600 s
        survivor = gw.runtime.new_dispatcher()
        assert await survivor.claim() == []
        started = time.monotonic()
        while await owners(gw) == [dead]:
            assert time.monotonic() - started < 3.0, "a dead process's claim was not taken over within 3 s"
            await asyncio.sleep(0.05)
        assert await owners(gw) == [None]
        async with gw.runtime.engine.connect() as conn:
            assert (await conn.scalar(select(processes.c.id).where(processes.c.id == dead))) is None
        await survivor.run_until_idle()
        await bank_of(gw).idle()
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)
        assert view["status"] == "settled"
        assert [p["submissions"] for p in bank_of(gw).describe()] == [1]
    finally:
        await stop_gateway(gw)


async def test_a_live_process_claim_is_never_taken(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, **FAST)
    try:
        instruction_id = await submit(gw)
        live = "elsewhere:4343:live"
        await register_other(gw, live, host="elsewhere", pid=4343)
        await gw.runtime.new_dispatcher(owner=live).claim()

        async def keep_beating() -> None:
            while True:
                async with gw.runtime.engine.begin() as conn:
                    await conn.execute(
                        update(processes).where(processes.c.id == live).values(heartbeat_at=gw.runtime.clock())
                    )
                await asyncio.sleep(0.2)

        beating = asyncio.create_task(keep_beating())
        try:
            await asyncio.sleep(3.0)  # three times dead_after_seconds, fifteen heartbeat rounds of ours
            assert await owners(gw) == [live]
            assert await gw.runtime.new_dispatcher().claim() == []
        finally:
            beating.cancel()
        assert (await gw.get_instruction(instruction_id))["status"] == "received"  # nobody else worked on it
    finally:
        await stop_gateway(gw)


async def test_a_restart_on_the_same_host_takes_over_a_killed_pid_at_once(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, dispatch__lease_seconds=600)
    try:
        await submit(gw)
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        pid = int(gone.stdout)
        killed = f"{os.uname().nodename}:{pid}:killed"
        # killed a moment ago: its heartbeat is fresh, but its pid no longer exists on this host
        await register_other(gw, killed, host=os.uname().nodename, pid=pid)
        await gw.runtime.new_dispatcher(owner=killed).claim()
        released = await gw.runtime.heartbeat.reap()  # what a (re)starting process does before it claims
        assert released == {"outbox": 1, "collection_outbox": 0, "webhook_deliveries": 0, "job_leases": 0}
        assert await owners(gw) == [None]
        assert len(await gw.runtime.new_dispatcher().claim()) == 1
    finally:
        await stop_gateway(gw)


async def test_unregistered_owners_and_stale_clock_rows_are_left_to_their_lease(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, **FAST)
    try:
        await submit(gw)
        await gw.runtime.new_dispatcher(owner="a-tool-not-a-process").claim()
        async with gw.runtime.engine.begin() as conn:
            # another runtime in this very process is alive whatever its heartbeat says
            await register_process(conn, "same-process-runtime", gw.runtime.clock() - timedelta(hours=1))
        assert await gw.runtime.heartbeat.reap() == {}
        assert await owners(gw) == ["a-tool-not-a-process"]
    finally:
        await stop_gateway(gw)


class ProcessDied(Exception):
    """Stands in for a kill -9 at one exact point of the dispatcher's code."""


async def test_a_payment_sent_just_before_a_kill_shows_its_submission_when_the_status_query_answers_first(
    database: Database,
) -> None:
    gw = await start_gateway(
        database,
        dispatch=False,
        poll=False,
        sim_overrides={"iso20022_bank": {"send_callbacks": False}},
        dispatch__status_poll_after_seconds=0,
    )
    try:
        instruction_id = await submit(gw)
        crashed = gw.runtime.new_dispatcher(owner="process-that-dies")
        commits = 0
        real_commit = crashed._commit

        async def die_at_second_commit(*args: Any, **kwargs: Any) -> Any:
            nonlocal commits
            commits += 1
            if commits == 2:  # the first commit records the routing; the second would record the submission
                raise ProcessDied
            return await real_commit(*args, **kwargs)

        crashed._commit = die_at_second_commit  # type: ignore[method-assign]
        with pytest.raises(ProcessDied):
            await crashed.process(await crashed.claim())
        assert (await gw.get_instruction(instruction_id))["status"] == "routed"
        await bank_of(gw).idle()  # the bank settles what it was sent
        assert gw.runtime.scheduler is not None
        summary = await gw.runtime.scheduler.poll_due()  # the status query answers before any resubmission
        assert summary.applied == 1
        view = await gw.get_instruction(instruction_id)
        assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
        submitted = next(e for e in view["events"] if e["status"] == "submitted")
        assert submitted["reason"] == "implied by the partner's report on the payment"
        assert [p["submissions"] for p in bank_of(gw).describe()] == [1]
    finally:
        await stop_gateway(gw)


async def test_a_scheduled_job_runs_once_across_processes_and_moves_on_when_its_holder_dies(
    database: Database,
) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, **FAST)
    try:
        here, there = gw.runtime.new_scheduler(), gw.runtime.new_scheduler()
        there.owner = "elsewhere:4545:other"
        await register_other(gw, there.owner, host="elsewhere", pid=4545)
        runs: list[str | None] = []

        def job_of(scheduler: Any) -> Any:
            async def job() -> int:
                runs.append(scheduler.owner)
                return 0

            return job

        for scheduler in (here, there, here, there):  # both processes' timers fire, twice each
            await scheduler._guarded("risk-prune", job_of(scheduler), 60)
        assert runs == [here.owner, here.owner]  # once per round, by the lease's holder
        # the holder's lease ends (here: 90 s later): the other process takes the job over
        later = gw.runtime.clock() + timedelta(seconds=91)
        async with gw.runtime.engine.begin() as conn:
            assert not await take_job_lease(conn, "risk-prune", there.owner, gw.runtime.clock(), later)
            assert await take_job_lease(conn, "risk-prune", there.owner, later, later + timedelta(seconds=90))
        # a holder found dead releases it at once
        async with gw.runtime.engine.begin() as conn:
            await conn.execute(
                update(processes)
                .where(processes.c.id == there.owner)
                .values(heartbeat_at=gw.runtime.clock() - timedelta(minutes=5))
            )
        assert (await gw.runtime.heartbeat.reap())["job_leases"] == 1
        await here._guarded("risk-prune", job_of(here), 60)
        assert runs == [here.owner, here.owner, here.owner]
    finally:
        await stop_gateway(gw)


async def test_a_clean_stop_hands_over_what_the_process_held_at_once(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False)
    await submit(gw)
    owner = gw.runtime.owner
    await gw.runtime.new_dispatcher().claim()  # e.g. a batch cut short by the stop's grace period
    await gw.runtime.new_scheduler()._guarded("hold-expiry", gw.runtime.new_scheduler().expire_holds, 60)
    await stop_gateway(gw)
    engine = database.engine()
    try:
        async with engine.connect() as conn:
            assert [r.lease_owner for r in await conn.execute(select(outbox.c.lease_owner))] == [None]
            assert [r.lease_owner for r in await conn.execute(select(job_leases.c.lease_owner))] == [None]
            assert (await conn.scalar(select(processes.c.id).where(processes.c.id == owner))) is None
    finally:
        await engine.dispose()


async def test_processes_agree_on_a_partner_circuit_within_a_heartbeat(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, poll=False, **FAST)
    try:
        here = gw.runtime.router.breaker
        there = CircuitBreaker(failure_threshold=1, open_seconds=60)  # another process's breaker
        there.record_failure("iso20022_bank")
        assert there.state("iso20022_bank") == "open" and here.state("iso20022_bank") == "closed"
        async with gw.runtime.engine.begin() as conn:
            await share_circuits(conn, there.share)

        async def until(check: Any) -> None:
            started = time.monotonic()
            while not check():
                assert time.monotonic() - started < 2.0, "not shared within 2 s"
                await asyncio.sleep(0.05)

        await until(lambda: here.state("iso20022_bank") == "open")  # this process adopted it on a beat
        assert not here.allows("iso20022_bank")
        here.record_success("iso20022_bank")  # e.g. a probe went through here later: closed for everyone

        async def closed_there() -> bool:
            async with gw.runtime.engine.begin() as conn:
                await share_circuits(conn, there.share)
            return there.state("iso20022_bank") == "closed"

        started = time.monotonic()
        while not await closed_there():
            assert time.monotonic() - started < 2.0, "the close was not shared within 2 s"
            await asyncio.sleep(0.05)
        assert here.state("iso20022_bank") == "closed"
    finally:
        await stop_gateway(gw)
