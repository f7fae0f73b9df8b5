"""Collections end to end: gateway + card acquirer simulator on loopback (charges, chargebacks, refunds).

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from gateway.contracts.registry import contracts
from gateway.partners.signing import sign_payload
from gateway.store.tables import webhook_deliveries
from tests.collections.support import (
    WEBHOOK_SECRET,
    acquirer_of,
    card_charge,
    get_collection,
    post_collection,
    start,
    trial_balance,
    wait_for_collection,
)
from tests.support import Database, stop_gateway
from tests.webhooks.support import FAST, start_receiver


def applied(view: dict) -> list[str]:
    return [e["status"] for e in view["events"] if e["applied"]]


async def test_card_charge_is_collected_then_charged_back_with_balanced_books_and_webhooks(database: Database) -> None:
    receiver = await start_receiver()
    gw = await start(database, sim={"scenario": "card-chargebacks"}, webhooks__allow_private_addresses=True, **FAST)
    try:
        async with gw.session.post(
            f"{gw.url}/v1/webhook-endpoints", json={"url": receiver.url, "events": ["*"]}, headers=gw.headers()
        ) as resp:
            assert resp.status == 201, await resp.text()
        resp = await post_collection(gw, card_charge("Chargeback Fraud Anna Berg", "129.90"))
        assert resp.status == 202, await resp.text()
        created = await resp.json()
        assert created["status"] == "received" and created["id"].startswith("col_")

        view = await wait_for_collection(gw, created["id"], "charged_back")

        assert applied(view) == ["received", "accepted", "submitted", "collected", "charged_back"]
        assert [e["sequence"] for e in view["events"]] == list(range(1, len(view["events"]) + 1))
        chargeback = view["events"][-1]
        assert (chargeback["source"], chargeback["reason_code"], chargeback["partner_status"]) == (
            "callback",
            "4837",
            "disputed",
        )
        assert view["adapter"] == "card_acquirer" and view["partner_reference"].startswith("ch_")
        assert view["payer"]["card_token"].endswith("abcd") and "tok_visa" not in str(view)  # never shown whole
        balances = await trial_balance(gw)
        assert sum(balances.values()) == 0
        # collected then reversed: nothing is left owed either way
        assert balances["partner:card_acquirer:receivable"] == 0
        assert balances["bu:erp-europe:collections"] == 0
        async with gw.runtime.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(webhook_deliveries.c.sequence, webhook_deliveries.c.body)
                    .where(webhook_deliveries.c.instruction_id == created["id"])
                    .order_by(webhook_deliveries.c.sequence)
                )
            ).all()
        assert [r.sequence for r in rows] == [1, 2, 3, 4, 5]
        assert '"status":"charged_back"' in rows[-1].body and '"subject":"collection"' in rows[-1].body
        (charge,) = acquirer_of(gw).describe()
        assert (charge["instruction_id"], charge["submissions"], charge["status"]) == (created["id"], 1, "returned")
        # the business unit's receiver gets them signed, in order, under the collection-event contract
        received = await receiver.wait_for(5)
        assert [r.doc["status"] for r in received] == ["received", "accepted", "submitted", "collected", "charged_back"]
        assert {r.headers["Gateway-Contract"] for r in received} == {"collection-event/1.0"}
        assert [contracts().errors("collection-event", r.doc) for r in received] == [[]] * 5
    finally:
        await stop_gateway(gw)
        await receiver.stop()


def _charge_event(collection_id: str, kind: str, status: str, **extra: object) -> bytes:
    charge = {
        "id": "ch_SIMBTEST0000000001",
        "object": "charge",
        "amount": 12990,
        "currency": "eur",
        "status": status,
        "captured": True,
        "created": int(time.time()),
        "metadata": {"collection_id": collection_id},
        **extra,
    }
    event = {
        "id": "evt_TEST0001",
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": charge},
    }
    return json.dumps(event).encode()


async def test_a_chargeback_overtaking_the_capture_report_implies_it_and_a_bad_signature_changes_nothing(
    database: Database,
) -> None:
    gw = await start(database, sim={"send_callbacks": False})
    try:
        created = await (await post_collection(gw, card_charge(amount="129.90"))).json()
        await wait_for_collection(gw, created["id"], "submitted")
        url = f"{gw.url}/v1/partners/card_acquirer/callbacks"
        body = _charge_event(created["id"], "charge.dispute.created", "disputed", dispute_reason_code="4853")
        forged = {"Content-Type": "application/json", "Acquirer-Signature": sign_payload(b"not-the-secret", body)}
        async with gw.session.post(url, data=body, headers=forged) as resp:
            assert resp.status == 401
        assert (await get_collection(gw, created["id"]))["status"] == "submitted"

        signed = {"Content-Type": "application/json", "Acquirer-Signature": sign_payload(WEBHOOK_SECRET.encode(), body)}
        async with gw.session.post(url, data=body, headers=signed) as resp:
            assert resp.status == 200, await resp.text()
        late = _charge_event(created["id"], "charge.succeeded", "succeeded")
        headers = {
            "Content-Type": "application/json",
            "Acquirer-Signature": sign_payload(WEBHOOK_SECRET.encode(), late),
        }
        async with gw.session.post(url, data=late, headers=headers) as resp:
            assert (await resp.json()) == {"applied": 0, "ignored": 1, "unknown": 0}

        view = await get_collection(gw, created["id"])
        assert [(e["status"], e["outcome"]) for e in view["events"][-3:]] == [
            ("collected", "applied"),  # implied by the chargeback
            ("charged_back", "applied"),
            ("collected", "stale"),  # the late capture report: recorded, ignored
        ]
        assert view["events"][-2]["reason_code"] == "4853"
        assert sum((await trial_balance(gw)).values()) == 0
    finally:
        await stop_gateway(gw)
