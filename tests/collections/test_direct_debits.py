"""SEPA direct debits end to end: gateway + the ISO 20022 bank simulator on loopback (pain.008 out,
pain.002 back, camt.054 polled), with the ``dd-returns`` scenario. SQLite and (with
GATEWAY_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from gateway.domain.clock import system_clock
from gateway.domain.collection_status import CollectionStatus
from gateway.store import collections as store
from gateway.store.collections import CollectionTransition
from gateway.store.tables import ledger_entries
from gateway_simulators.core import SIMULATOR, Simulator
from gateway_simulators.iso20022_bank.direct_debits import DESK, DirectDebitDesk
from tests.collections.support import get_collection, post_collection, trial_balance, wait_for_collection
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

BANK_SIM = {
    "request_secret": "dev-only-insecure-bank-request-secret",
    "callback_secret": "dev-only-insecure-bank-callback-secret",
    "scenario": "dd-returns",
}


async def start(database: Database, **overrides: Any) -> LiveGateway:
    """A gateway whose bank (the simulator, scenario dd-returns) collects direct debits; polled quickly."""
    settings: dict[str, Any] = {
        "dispatch__status_poll_after_seconds": 0,
        "dispatch__status_poll_interval_seconds": 0.05,
        "dispatch__backoff_base_seconds": 0.05,
        "dispatch__backoff_max_seconds": 0.2,
        "partners__iso20022_bank__notifications_cache_seconds": 0.02,
        **overrides,
    }
    return await start_gateway(database, simulators=False, extra_simulators={"iso20022_bank": BANK_SIM}, **settings)


def bank_of(gw: LiveGateway) -> Simulator:
    return gw.simulators["iso20022_bank"].runner.app[SIMULATOR]


def desk_of(gw: LiveGateway) -> DirectDebitDesk:
    return gw.simulators["iso20022_bank"].runner.app[DESK]


def direct_debit(debtor: str, amount: str = "250.00", sequence_type: str = "RCUR", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": f"DD-{uuid.uuid4().hex[:12].upper()}",
        "kind": "direct_debit",
        "amount": {"value": amount, "currency": "EUR"},
        "payer": {"name": debtor, "iban": "DE89370400440532013000"},
        "mandate": {"id": "MNDT-2026-0042", "signature_date": "2026-01-15", "sequence_type": sequence_type},
        "description": "Invoice 2026-0042",
    }
    body.update(changes)
    return body


async def submit(gw: LiveGateway, body: dict[str, Any]) -> str:
    resp = await post_collection(gw, body)
    assert resp.status == 202, await resp.text()
    return str((await resp.json())["id"])


def applied(view: dict[str, Any]) -> list[str]:
    return [e["status"] for e in view["events"] if e["applied"]]


async def entries_for(gw: LiveGateway, collection_id: str) -> list[str]:
    async with gw.runtime.engine.connect() as conn:
        rows = await conn.execute(select(ledger_entries.c.kind).where(ledger_entries.c.instruction_id == collection_id))
        return sorted(r.kind for r in rows)


def pain008_submissions(gw: LiveGateway, collection_id: str) -> list[str]:
    return [
        e.outcome
        for e in bank_of(gw).journal.entries
        if e.kind == "submit-pain008" and e.instruction_id == collection_id
    ]


async def test_direct_debit_collected_then_refunded_md06_books_the_reversal_and_balances(database: Database) -> None:
    gw = await start(database)
    try:
        refunded = await submit(gw, direct_debit("Refund Claimant SpA", "250.00", sequence_type="FRST"))
        paid = await submit(gw, direct_debit("Paying Debtor GmbH", "80.00"))

        view = await wait_for_collection(gw, refunded, "returned")
        paid_view = await wait_for_collection(gw, paid, "collected")

        assert applied(view) == ["received", "accepted", "submitted", "collected", "returned"]
        returned = view["events"][-1]
        assert (returned["source"], returned["reason_code"], returned["partner_status"]) == ("poll", "MD06", "refund")
        assert "within the 8-week window" in returned["reason"]
        assert view["adapter"] == "iso20022_bank" and view["partner_reference"]
        assert applied(paid_view) == ["received", "accepted", "submitted", "collected"]
        # the refund reverses the collection in the books; the paid one stays owed by the bank
        assert await entries_for(gw, refunded) == ["collection_collected", "collection_returned"]
        assert await entries_for(gw, paid) == ["collection_collected"]
        balances = await trial_balance(gw)
        assert sum(balances.values()) == 0
        assert balances["partner:iso20022_bank:receivable"] == 8000
        assert balances["bu:erp-europe:collections"] == -8000
        # the bank got one pain.008 per collection, the collection id as InstrId and EndToEndId
        (taken,) = [c for c in desk_of(gw).collections.values() if c.tx.instruction_id == refunded]
        assert (taken.tx.end_to_end_id, taken.tx.sequence_type, taken.step) == (refunded, "FRST", "returned")
        assert pain008_submissions(gw, refunded) == ["created"]
    finally:
        await stop_gateway(gw)


async def test_pain002_reject_and_refusal_before_settlement_are_rejected_with_their_codes(database: Database) -> None:
    gw = await start(database)
    try:
        closed = await submit(gw, direct_debit("Closed Account GmbH"))
        refusing = await submit(gw, direct_debit("Refusing Debtor SARL"))

        closed_view = await wait_for_collection(gw, closed)
        refused_view = await wait_for_collection(gw, refusing)

        assert applied(closed_view) == ["received", "accepted", "rejected"]
        last = closed_view["events"][-1]
        assert (last["source"], last["reason_code"], last["partner_status"]) == ("dispatcher", "AC04", "RJCT reject")
        assert "closed" in last["reason"].lower()
        assert applied(refused_view) == ["received", "accepted", "submitted", "rejected"]
        last = refused_view["events"][-1]
        assert (last["source"], last["reason_code"], last["partner_status"]) == ("poll", "MS02", "refusal")
        assert await entries_for(gw, closed) == [] and await entries_for(gw, refusing) == []
        assert sum((await trial_balance(gw)).values()) == 0
    finally:
        await stop_gateway(gw)


async def test_a_due_date_that_cannot_be_met_is_rejected_with_the_reason_and_never_sent(database: Database) -> None:
    gw = await start(database)
    try:
        too_late = await submit(gw, direct_debit("Paying Debtor GmbH", due_date="2026-02-02"))

        view = await wait_for_collection(gw, too_late)

        assert view["status"] == "rejected" and view["due_date"] == "2026-02-02"
        last = view["events"][-1]
        assert last["reason_code"] == "DT01"
        assert "needs submission by" in last["reason"] and "D-1 TARGET2" in last["reason"]
        assert pain008_submissions(gw, too_late) == []  # the bank never saw it
    finally:
        await stop_gateway(gw)


async def post_versioned(gw: LiveGateway, body: dict[str, Any], version: str) -> Any:
    headers = gw.headers(**{"Idempotency-Key": uuid.uuid4().hex, "Contract-Version": version})
    return await gw.session.post(f"{gw.url}/v1/collections", json=body, headers=headers)


async def test_the_due_date_asked_for_is_the_one_the_bank_gets_and_1_0_metadata_still_counts(
    database: Database,
) -> None:
    gw = await start(database)
    try:
        today = system_clock().date()
        asked = today + timedelta(days=45 + (7 - (today + timedelta(days=45)).weekday()) % 7)  # a Monday
        current = await submit(gw, direct_debit("Paying Debtor GmbH", due_date=asked.isoformat()))
        old_style = await post_versioned(
            gw, direct_debit("Paying Debtor GmbH", metadata={"due_date": asked.isoformat()}), "1.0"
        )
        assert old_style.status == 202, await old_style.text()
        legacy = str((await old_style.json())["id"])
        # 1.1 has a field for it: the same key in metadata is only metadata there
        plain = await submit(gw, direct_debit("Paying Debtor GmbH", metadata={"due_date": "not a date"}))

        for collection_id in (current, legacy, plain):
            await wait_for_collection(gw, collection_id, "collected")
        got = {c.tx.instruction_id: c.tx.due_on for c in desk_of(gw).collections.values()}

        assert got[current] == got[legacy] == asked.isoformat()
        assert got[plain] < asked.isoformat()  # the earliest the scheme allows
        assert (await get_collection(gw, current))["due_date"] == asked.isoformat()
        assert (await get_collection(gw, legacy))["contract_version"] == "1.0"
    finally:
        await stop_gateway(gw)


async def test_a_bad_due_date_is_a_problem_in_the_senders_own_terms(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        v11 = await post_collection(gw, direct_debit("Paying Debtor GmbH", due_date="2026-02-30"))
        v10 = await post_versioned(gw, direct_debit("Paying Debtor GmbH", metadata={"due_date": "soon"}), "1.0")
        unknown_in_10 = await post_versioned(gw, direct_debit("Paying Debtor GmbH", due_date="2027-01-04"), "1.0")

        assert v11.status in (400, 422) and "/due_date" in str(await v11.json())
        assert v10.status == 422
        assert [e["pointer"] for e in (await v10.json())["errors"]] == ["/metadata/due_date"]
        assert unknown_in_10.status in (400, 422) and "/due_date" in str(await unknown_in_10.json())
    finally:
        await stop_gateway(gw)


async def test_a_return_read_before_collected_records_the_implied_collection_first(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        collection_id = await submit(gw, direct_debit("Empty Account BV", "99.95"))
        dispatcher = gw.runtime.new_collection_dispatcher("test")
        assert await dispatcher.run_once() == 1
        await desk_of(gw).idle()  # collected and returned at the bank before anyone asked
        assert await dispatcher.poll_once() == 1

        view = await wait_for_collection(gw, collection_id, "returned", timeout=2)

        assert applied(view) == ["received", "accepted", "submitted", "collected", "returned"]
        collected, returned = view["events"][-2:]
        assert collected["reason"] == "implied by the partner's reversal report"
        assert (returned["reason_code"], returned["partner_status"]) == ("AM04", "return")
        assert await entries_for(gw, collection_id) == ["collection_collected", "collection_returned"]
        balances = await trial_balance(gw)
        assert balances["partner:iso20022_bank:receivable"] == 0 and sum(balances.values()) == 0
        assert await dispatcher.poll_once() == 0  # returned is final: nothing left to ask about
    finally:
        await stop_gateway(gw)


async def test_dispatcher_crash_after_the_pain008_is_retried_after_its_lease_and_the_bank_has_it_once(
    database: Database,
) -> None:
    gw = await start(database, dispatch=False)
    try:
        collection_id = await submit(gw, direct_debit("Paying Debtor GmbH", "42.00"))
        engine, now = gw.runtime.engine, system_clock()
        # the dispatcher that crashes: leases the job (2 s), routes it, sends the pain.008, and dies
        async with engine.begin() as conn:
            (job,) = await store.claim_collection_jobs(conn, "crashed", now, now + timedelta(seconds=2), 10)
            await store.record_collection_transitions(
                conn,
                [CollectionTransition(collection_id, CollectionStatus.ACCEPTED, "dispatcher", adapter="iso20022_bank")],
                now,
            )
            row = await store.load_collection(conn, collection_id)
        assert row is not None and job.collection_id == collection_id
        order = store.collection_order(gw.runtime.cipher, row, "erp-europe")
        answer = await gw.runtime.adapters["iso20022_bank"].collect(order)
        assert answer.status is CollectionStatus.SUBMITTED

        survivor = gw.runtime.new_collection_dispatcher("survivor")
        assert await survivor.run_once() == 0  # the lease still holds
        await asyncio.sleep((now + timedelta(seconds=2.1) - system_clock()).total_seconds())
        assert await survivor.run_once() == 1  # lease expired: the job is retried with the same key
        await desk_of(gw).idle()
        assert await survivor.poll_once() == 1
        view = await wait_for_collection(gw, collection_id, "collected", timeout=2)

        assert applied(view) == ["received", "accepted", "submitted", "collected"]
        assert pain008_submissions(gw, collection_id) == ["created", "replayed"]  # one collection, asked twice
        assert [c.tx.instruction_id for c in desk_of(gw).collections.values()] == [collection_id]
        async with engine.connect() as conn:
            booked = await conn.scalar(
                select(func.count()).select_from(ledger_entries).where(ledger_entries.c.instruction_id == collection_id)
            )
            jobs_left = await store.collection_outbox_depth(conn)
        assert booked == 1 and jobs_left == 0
    finally:
        await stop_gateway(gw)
