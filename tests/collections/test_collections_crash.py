"""Crash and retry: a dispatcher that dies after charging is retried after its lease, and the payer is
charged once (the collection id is the acquirer's idempotency key). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from gateway.domain.clock import system_clock
from gateway.domain.collection_status import CollectionStatus
from gateway.store import collections as store
from gateway.store.collections import CollectionTransition
from gateway.store.tables import ledger_entries
from tests.collections.support import acquirer_of, card_charge, post_collection, start, wait_for_collection
from tests.support import Database, stop_gateway


async def test_dispatcher_crash_after_the_charge_is_retried_after_its_lease_and_charges_once(
    database: Database,
) -> None:
    # the charge succeeds at the acquirer only after the crashed dispatcher's lease has expired
    gw = await start(database, sim={"settle_delay": 1.5}, dispatch=False)
    try:
        collection_id = (await (await post_collection(gw, card_charge(amount="42.00"))).json())["id"]
        engine, now = gw.runtime.engine, system_clock()
        # the dispatcher that crashes: leases the job (0.3 s), routes it, charges the card, and dies
        async with engine.begin() as conn:
            (job,) = await store.claim_collection_jobs(conn, "crashed", now, now + timedelta(seconds=0.3), 10)
            await store.record_collection_transitions(
                conn,
                [CollectionTransition(collection_id, CollectionStatus.ACCEPTED, "dispatcher", adapter="card_acquirer")],
                now,
            )
            row = await store.load_collection(conn, collection_id)
        assert row is not None
        order = store.collection_order(gw.runtime.cipher, row, "erp-europe")
        answer = await gw.runtime.adapters["card_acquirer"].collect(order)
        assert answer.status is CollectionStatus.SUBMITTED

        survivor = gw.runtime.new_collection_dispatcher("survivor")
        assert await survivor.run_once() == 0  # the lease still holds: nobody touches the job
        await asyncio.sleep(0.4)
        assert await survivor.run_once() == 1  # lease expired: the job is retried
        view = await wait_for_collection(gw, collection_id, "collected")

        assert [e["status"] for e in view["events"] if e["applied"]] == [
            "received",
            "accepted",
            "submitted",
            "collected",
        ]
        journal = acquirer_of(gw).journal.entries
        submits = [(e.outcome, e.instruction_id) for e in journal if e.kind == "submit"]
        assert submits == [("created", collection_id), ("replayed", collection_id)]  # one charge, asked twice
        (charge,) = acquirer_of(gw).describe()
        assert (charge["submissions"], charge["status"]) == (2, "settled")
        async with engine.connect() as conn:
            booked = await conn.scalar(
                select(func.count()).select_from(ledger_entries).where(ledger_entries.c.instruction_id == collection_id)
            )
            jobs_left = await store.collection_outbox_depth(conn)
        assert booked == 1  # collected once in the books too
        assert jobs_left == 0
        assert job.collection_id == collection_id
    finally:
        await stop_gateway(gw)


async def test_lost_webhooks_are_made_good_by_polling_the_acquirer(database: Database) -> None:
    gw = await start(
        database,
        sim={"send_callbacks": False},
        dispatch=False,
        dispatch__status_poll_after_seconds=0.1,
    )
    try:
        collection_id = (await (await post_collection(gw, card_charge())).json())["id"]
        dispatcher = gw.runtime.new_collection_dispatcher("test")
        assert await dispatcher.run_once() == 1
        await acquirer_of(gw).idle()  # the acquirer captured it, but told nobody
        await asyncio.sleep(0.15)
        assert await dispatcher.poll_once() == 1
        view = await wait_for_collection(gw, collection_id, "collected", timeout=2)
        assert (view["events"][-1]["source"], view["events"][-1]["partner_status"]) == ("poll", "succeeded")
        assert await dispatcher.poll_once() == 0  # nothing left to ask about
    finally:
        await stop_gateway(gw)
