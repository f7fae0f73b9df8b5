"""Collections end to end: gateway + card acquirer simulator on loopback (charges, chargebacks, refunds).

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import select

from gateway.store.tables import webhook_deliveries
from tests.collections.support import (
    acquirer_of,
    card_charge,
    post_collection,
    start,
    trial_balance,
    wait_for_collection,
)
from tests.support import Database, stop_gateway


def applied(view: dict) -> list[str]:
    return [e["status"] for e in view["events"] if e["applied"]]


async def test_card_charge_is_collected_then_charged_back_with_balanced_books_and_webhooks(database: Database) -> None:
    gw = await start(database, sim={"scenario": "card-chargebacks"})
    try:
        async with gw.session.post(
            f"{gw.url}/v1/webhook-endpoints",
            json={"url": "https://hooks.example.com/gateway", "events": ["*"]},
            headers=gw.headers(),
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
    finally:
        await stop_gateway(gw)
