"""The collections API: idempotency, bad input (problem+json pointers, nothing written), cancel, listing,
routing of a kind no adapter declares, manual capture and refunds with the ledger.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL, against the card acquirer simulator.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.store.tables import collection_events, collection_keys, collections
from tests.collections.support import (
    acquirer_of,
    card_charge,
    get_collection,
    post_collection,
    start,
    trial_balance,
    wait_for_collection,
)
from tests.support import Database, LiveGateway, stop_gateway


async def _count(gw: LiveGateway, table: Any) -> int:
    async with gw.runtime.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_same_key_and_body_replays_the_first_answer_and_another_body_is_409(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        body, key = card_charge(), uuid.uuid4().hex
        first = await post_collection(gw, body, idempotency_key=key)
        again = await post_collection(gw, body, idempotency_key=key)
        other = await post_collection(gw, {**body, "description": "another"}, idempotency_key=key)
        twin = await post_collection(gw, body)  # new key, same reference

        assert (first.status, again.status) == (202, 202)
        assert await first.json() == await again.json()
        assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
        assert first.headers["Location"] == f"/v1/collections/{(await first.json())['id']}"
        assert other.status == 409 and other.content_type == "application/problem+json"
        assert twin.status == 409
        assert [e["pointer"] for e in (await twin.json())["errors"]] == ["/reference"]
        assert await _count(gw, collections) == 1
        assert await _count(gw, collection_events) == 1
    finally:
        await stop_gateway(gw)


PAN = "4111111111111111"  # the well-known test card number: Luhn-valid
MANDATE = {"id": "M1", "signature_date": "2026-01-01", "sequence_type": "FRST"}
BAD_INPUT = [
    ("no amount", lambda b: b.pop("amount"), "/amount"),
    ("zero amount", lambda b: b.update(amount={"value": "0.00", "currency": "EUR"}), "/amount/value"),
    ("too many decimals", lambda b: b.update(amount={"value": "1.001", "currency": "EUR"}), "/amount/value"),
    ("unknown currency", lambda b: b.update(amount={"value": "1.00", "currency": "XXQ"}), "/amount/currency"),
    ("card number as token", lambda b: b.update(payer={"name": "A", "card_token": PAN}), "/payer/card_token"),
    ("card number in description", lambda b: b.update(description="card 4111 1111 1111 1111 thanks"), "/description"),
    ("card number in metadata", lambda b: b.update(metadata={"note": "5555555555554444"}), "/metadata/note"),
    ("wallet charge with a card", lambda b: b.update(kind="wallet_charge"), "/payer/wallet"),
    ("mandate on a card charge", lambda b: b.update(mandate=MANDATE), "/mandate"),
    ("due date on a card charge", lambda b: b.update(due_date="2027-01-04"), "/due_date"),
    ("unknown field", lambda b: b.update(pan="4111111111111111"), "/pan"),
    ("bad kind", lambda b: b.update(kind="cash"), "/kind"),
]


@pytest.mark.parametrize(("case", "change", "pointer"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
async def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    database: Database, case: str, change: Any, pointer: str
) -> None:
    gw = await start(database, dispatch=False)
    try:
        body = card_charge()
        change(body)
        resp = await post_collection(gw, body)
        problem = await resp.json()

        assert resp.status == 422, problem
        assert resp.content_type == "application/problem+json"
        assert pointer in [e["pointer"] for e in problem["errors"]], problem
        assert "4111" not in str(problem) and "5555" not in str(problem)  # a card number is never echoed
        assert await _count(gw, collections) == 0
        assert await _count(gw, collection_keys) == 0
    finally:
        await stop_gateway(gw)


async def test_direct_debit_iban_checksum_and_missing_mandate_are_named(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        body = card_charge(kind="direct_debit", payer={"name": "Nordic Parts AB", "iban": "DE89370400440532013001"})
        resp = await post_collection(gw, body)
        assert resp.status == 422
        assert {e["pointer"] for e in (await resp.json())["errors"]} >= {"/payer/iban", "/mandate"}
        no_key = await gw.session.post(f"{gw.url}/v1/collections", json=card_charge(), headers=gw.headers())
        assert no_key.status == 400 and "Idempotency-Key" in (await no_key.json())["detail"]
        assert await _count(gw, collections) == 0
    finally:
        await stop_gateway(gw)


async def test_direct_debit_with_no_adapter_declaring_it_is_rejected_with_a_reason_not_left_waiting(
    database: Database,
) -> None:
    gw = await start(database)
    try:
        body = card_charge(
            kind="direct_debit",
            payer={"name": "Nordic Parts AB", "iban": "DE89370400440532013000"},
            mandate={"id": "MNDT-0042", "signature_date": "2026-01-15", "sequence_type": "FRST"},
            channel="card_acquirer",  # the bank collects direct debits; the card acquirer does not
        )
        resp = await post_collection(gw, body)
        assert resp.status == 202, await resp.text()
        view = await wait_for_collection(gw, (await resp.json())["id"])

        assert view["status"] == "rejected"
        assert view["events"][-1]["reason_code"] == "NO_ROUTE"
        assert "direct_debit" in view["events"][-1]["reason"]
        assert view["mandate"] == {"id": "MNDT-0042", "signature_date": "2026-01-15", "sequence_type": "FRST"}
        assert view["payer"]["iban"].endswith("3000") and "DE8937" not in str(view)
    finally:
        await stop_gateway(gw)


async def test_cancel_before_dispatch_then_409_once_collected(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        waiting = (await (await post_collection(gw, card_charge())).json())["id"]
        url = f"{gw.url}/v1/collections/{waiting}/cancel"
        async with gw.session.post(url, headers=gw.headers()) as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "cancelled"
        async with gw.session.post(url, headers=gw.headers()) as resp:
            assert resp.status == 200  # asking again changes nothing
        view = await get_collection(gw, waiting)
        assert [(e["status"], e["applied"]) for e in view["events"]] == [("received", True), ("cancelled", True)]
        # the dispatcher, started now, leaves the cancelled one alone
        dispatcher = gw.runtime.new_collection_dispatcher("test")
        assert await dispatcher.run_once() == 1
        assert (await get_collection(gw, waiting))["status"] == "cancelled"
        assert acquirer_of(gw).describe() == []

        taken = (await (await post_collection(gw, card_charge())).json())["id"]
        await dispatcher.run_once()
        await wait_for_collection(gw, taken, "collected")
        async with gw.session.post(f"{gw.url}/v1/collections/{taken}/cancel", headers=gw.headers()) as resp:
            assert resp.status == 409
        assert (await get_collection(gw, taken))["status"] == "collected"
    finally:
        await stop_gateway(gw)


async def test_list_filters_and_pages_with_a_cursor(database: Database) -> None:
    gw = await start(database, dispatch=False)
    try:
        ids = [(await (await post_collection(gw, card_charge())).json())["id"] for _ in range(3)]
        wallet = card_charge(kind="wallet_charge", payer={"name": "Ole Lund", "wallet": "wal_ole_lund_01"})
        ids.append((await (await post_collection(gw, wallet)).json())["id"])
        async with gw.session.get(f"{gw.url}/v1/collections", params={"limit": "3"}, headers=gw.headers()) as resp:
            page = await resp.json()
        async with gw.session.get(
            f"{gw.url}/v1/collections", params={"limit": "3", "cursor": page["next_cursor"]}, headers=gw.headers()
        ) as resp:
            rest = await resp.json()
        async with gw.session.get(
            f"{gw.url}/v1/collections", params={"kind": "wallet_charge", "status": "received"}, headers=gw.headers()
        ) as resp:
            wallets = await resp.json()
        async with gw.session.get(f"{gw.url}/v1/collections", params={"status": "paid"}, headers=gw.headers()) as bad:
            assert bad.status == 400

        assert [c["id"] for c in page["items"] + rest["items"]] == list(reversed(ids))
        assert rest["next_cursor"] is None
        assert [c["id"] for c in wallets["items"]] == [ids[-1]]
    finally:
        await stop_gateway(gw)


async def test_manual_capture_then_partial_refunds_never_more_than_collected(database: Database) -> None:
    gw = await start(database)
    try:
        created = await post_collection(gw, card_charge(amount="100.00", capture="manual"))
        collection_id = (await created.json())["id"]
        authorised = await wait_for_collection(gw, collection_id, "submitted")
        assert authorised["events"][-1]["partner_status"] == "requires_capture"
        assert acquirer_of(gw).parked  # the acquirer holds the authorisation until the capture

        async with gw.session.post(f"{gw.url}/v1/collections/{collection_id}/capture", headers=gw.headers()) as r:
            assert r.status == 202, await r.text()
        await wait_for_collection(gw, collection_id, "collected")

        refund_url = f"/v1/collections/{collection_id}/refund"
        thirty = {"amount": {"value": "30.00", "currency": "EUR"}}
        first = await post_collection(gw, thirty, idempotency_key="refund-1", path=refund_url)
        assert first.status == 202, await first.text()
        again = await post_collection(gw, thirty, idempotency_key="refund-1", path=refund_url)
        assert (await again.json())["id"] == (await first.json())["id"]  # the same refund, not a second one
        assert again.headers["Idempotent-Replayed"] == "true"
        too_much = await post_collection(gw, {"amount": {"value": "70.01", "currency": "EUR"}}, path=refund_url)
        assert too_much.status == 409
        assert [e["pointer"] for e in (await too_much.json())["errors"]] == ["/amount/value"]
        rest = await post_collection(gw, {}, path=refund_url)
        assert rest.status == 202 and (await rest.json())["amount"] == {"value": "70.00", "currency": "EUR"}

        async def refunded() -> dict[str, Any]:
            view = await get_collection(gw, collection_id)
            return view if all(r["status"] == "succeeded" for r in view["refunds"]) else {}

        for _ in range(200):
            view = await refunded()
            if view:
                break
            await gw.runtime.collection_dispatcher.run_once()  # type: ignore[union-attr]
        assert [r["amount"]["value"] for r in view["refunds"]] == ["30.00", "70.00"]
        assert view["refunded"] == "100.00" and view["status"] == "collected"
        balances = await trial_balance(gw)
        assert sum(balances.values()) == 0
        assert balances["partner:card_acquirer:receivable"] == 0  # 100.00 collected, 100.00 paid back
        refunds = [e for e in acquirer_of(gw).journal.entries if e.kind == "refund" and e.outcome == "created"]
        assert len(refunds) == 2
    finally:
        await stop_gateway(gw)
