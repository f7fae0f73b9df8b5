"""Nothing lost: a delivery commits (or rolls back) with its status change, and survives a worker's death.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.contracts.registry import contracts
from gateway.domain.status import Status
from gateway.errors import ConfigError
from gateway.partners.signing import verify_signature
from gateway.store import webhooks as store
from gateway.store.repo import Transition, record_transitions
from gateway.store.tables import business_units, instructions, webhook_deliveries
from tests.support import NOW, TEST_CODEC, Database, LiveGateway, insert_instruction, start_gateway, stop_gateway
from tests.webhooks.support import FAST, Receiver, create_endpoint, deliveries, submit, wait_until


async def _unit_id(engine: AsyncEngine, name: str) -> str:
    async with engine.connect() as conn:
        return str(await conn.scalar(select(business_units.c.id).where(business_units.c.name == name)))


async def _rows(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.sequence))
        return [dict(r._mapping) for r in result]


async def test_a_delivery_commits_with_its_transition_and_rolls_back_with_it(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine, "erp")
    unit = await _unit_id(engine, "erp")
    async with engine.begin() as conn:
        everything, _ = await store.create_endpoint(conn, TEST_CODEC.cipher, unit, "https://a.example/h", ["*"], NOW)
        finals, _ = await store.create_endpoint(conn, TEST_CODEC.cipher, unit, "https://b.example/h", ["settled"], NOW)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await record_transitions(conn, [Transition(instruction_id, Status.ACCEPTED, "dispatcher")], NOW)
            assert len(await store.list_deliveries(conn, unit)) == 1  # written in the transaction…
            raise RuntimeError("crash before the commit")
    assert await _rows(engine) == []  # …and gone with it
    async with engine.begin() as conn:
        await record_transitions(
            conn,
            [
                Transition(instruction_id, Status.ACCEPTED, "dispatcher"),
                Transition(instruction_id, Status.SETTLED, "callback"),  # illegal from accepted: recorded, ignored
                Transition(instruction_id, Status.ROUTED, "dispatcher", adapter="iso20022_bank"),
            ],
            NOW,
        )
        status = await conn.scalar(select(instructions.c.status).where(instructions.c.id == instruction_id))
    rows = await _rows(engine)
    assert status == "routed"
    assert [(r["sequence"], r["endpoint_id"]) for r in rows] == [(2, everything.id), (4, everything.id)]
    for row in rows:
        doc = json.loads(str(row["body"]))
        contracts().validate("status-event", doc, "1.0")
        assert row["event_id"] == store.event_id(instruction_id, doc["sequence"]) and row["status"] == "pending"
    assert [json.loads(str(r["body"]))["status"] for r in rows] == ["accepted", "routed"]
    assert finals.events == ("settled",)


async def test_a_disabled_endpoint_gets_no_new_deliveries(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine, "erp")
    unit = await _unit_id(engine, "erp")
    async with engine.begin() as conn:
        endpoint, _ = await store.create_endpoint(
            conn, TEST_CODEC.cipher, unit, "https://a.example/h", ["*"], NOW, enabled=False
        )
        await record_transitions(conn, [Transition(instruction_id, Status.ACCEPTED, "dispatcher")], NOW)
    assert await _rows(engine) == []
    assert endpoint.enabled is False


async def test_intake_commits_the_first_events_delivery_with_the_instruction(database: Database) -> None:
    gw = await start_gateway(
        database, simulators=False, dispatch=False, poll=False, partners={}, webhooks__enabled=False
    )
    try:
        await create_endpoint(gw, "https://hooks.example.com/gateway")
        first = await submit(gw)
        second = await submit(gw)
        rows = await _rows(gw.runtime.engine)
    finally:
        await stop_gateway(gw)
    assert sorted((r["instruction_id"], r["sequence"]) for r in rows) == sorted([(first, 1), (second, 1)])
    assert {json.loads(str(r["body"]))["status"] for r in rows} == {"received"}


async def test_a_worker_killed_mid_delivery_leaves_it_to_another_with_the_same_event_id(
    database: Database, receiver: Receiver
) -> None:
    gw = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        partners={},
        webhooks__enabled=False,
        webhooks__lease_seconds=0.5,
        **FAST,
    )
    try:
        endpoint = await create_endpoint(gw, receiver.url)
        instruction_id = await submit(gw)
        receiver.hang.set()
        doomed = gw.runtime.new_webhook_worker(owner="doomed")
        await doomed.start()
        await receiver.wait_for(1)
        await doomed.stop(grace=0)  # killed while the receiver is still reading: nothing recorded
        (held,) = await deliveries(gw)
        receiver.hang.clear()
        receiver.released.set()
        survivor = gw.runtime.new_webhook_worker(owner="survivor")
        await survivor.start()
        try:
            got = await receiver.wait_for(2)
            (done,) = await wait_until(lambda: deliveries(gw, status="delivered"))
        finally:
            await survivor.stop()
    finally:
        await stop_gateway(gw)
    assert held["status"] == "pending" and held["attempts"] == 0
    assert got[0].event_id == got[1].event_id == store.event_id(instruction_id, 1)
    assert got[0].body == got[1].body
    for r in got:
        verify_signature(endpoint["secret"].encode(), r.body, r.headers["Gateway-Signature"])
    assert done["attempts"] == 1 and done["id"] == held["id"]


async def test_pending_deliveries_survive_a_gateway_restart(database: Database, receiver: Receiver) -> None:
    quiet = {"simulators": False, "dispatch": False, "poll": False, "partners": {}, **FAST}
    first = await start_gateway(database, webhooks__enabled=False, **quiet)
    try:
        await create_endpoint(first, receiver.url)
        ids = [await submit(first) for _ in range(3)]
    finally:
        await stop_gateway(first)
    second = await start_gateway(database, **quiet)
    try:
        got = await receiver.wait_for(3)
    finally:
        await stop_gateway(second)
    assert sorted(r.event_id for r in got) == sorted(store.event_id(i, 1) for i in ids)


async def test_a_rotation_overlap_longer_than_seven_days_is_refused(engine: AsyncEngine) -> None:
    await insert_instruction(engine, "erp")
    unit = await _unit_id(engine, "erp")
    async with engine.begin() as conn:
        endpoint, secret = await store.create_endpoint(conn, TEST_CODEC.cipher, unit, "https://a.example/h", ["*"], NOW)
        with pytest.raises(ConfigError, match="from 0 to 7 days"):
            await store.rotate_secret(conn, TEST_CODEC.cipher, endpoint.id, NOW, timedelta(days=7, seconds=1))
        after = await store.get_endpoint(conn, endpoint.id)
    assert secret.startswith("whsec_") and after.previous_secret_until is None


async def test_two_workers_racing_send_each_event_once(database: Database, receiver: Receiver) -> None:
    quiet = {"simulators": False, "dispatch": False, "poll": False, "partners": {}, **FAST}
    gw = await start_gateway(database, webhooks__enabled=False, **quiet)
    try:
        await create_endpoint(gw, receiver.url)
        ids = [await submit(gw) for _ in range(12)]
        small = replace(gw.runtime.settings.webhooks, batch=2)  # many rounds each, so the two claim side by side
        workers = [gw.runtime.new_webhook_worker(owner=name, settings=small) for name in ("left", "right")]
        for worker in workers:
            await worker.start()
        try:
            got = await receiver.wait_for(12)
            await wait_until(lambda: _all_delivered(gw, 12))
        finally:
            for worker in workers:
                await worker.stop()
        async with gw.runtime.engine.connect() as conn:
            owners = set((await conn.execute(select(webhook_deliveries.c.lease_owner))).scalars())
    finally:
        await stop_gateway(gw)
    assert sorted(r.event_id for r in got) == sorted(store.event_id(i, 1) for i in ids)
    assert len(receiver.received) == 12
    assert owners == {None}  # every lease released on delivery


async def _all_delivered(gw: LiveGateway, count: int) -> bool:
    return len(await deliveries(gw, status="delivered")) == count


async def test_a_body_that_does_not_fit_the_contract_is_never_sent(database: Database, receiver: Receiver) -> None:
    quiet = {"simulators": False, "dispatch": False, "poll": False, "partners": {}, **FAST}
    gw = await start_gateway(database, webhooks__enabled=False, **quiet)
    try:
        await create_endpoint(gw, receiver.url)
        await submit(gw)
        async with gw.runtime.engine.begin() as conn:
            body = json.loads(str(await conn.scalar(select(webhook_deliveries.c.body))))
            body["status"] = "paid"  # not a status of the contract
            await conn.execute(webhook_deliveries.update().values(body=json.dumps(body)))
        worker = gw.runtime.new_webhook_worker(owner="checker")
        try:
            assert await worker.run_once() == 1
        finally:
            await worker.stop()
        (failed,) = await deliveries(gw, status="failed")
    finally:
        await stop_gateway(gw)
    assert receiver.received == []
    assert failed["attempts"] == 1 and "status-event contract" in failed["last_error"]
