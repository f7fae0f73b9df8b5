"""Wallet payouts end to end: gateway + card acquirer simulator on loopback (signed webhooks, polling, codes).

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from gateway.contracts.registry import contracts
from gateway_simulators.card_acquirer import ACQUIRER, signed_webhook
from gateway_simulators.core import Simulator
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

API_KEY = "sk_test_e2e_0123456789abcdef"
WEBHOOK_SECRET = "whsec_e2e_webhook_secret"
SIM = {
    "api_key": API_KEY,
    "webhook_secret": WEBHOOK_SECRET,
    "callback_delay": 0.02,
    "settle_delay": 0.05,
    "callback_backoff": 0.02,
}
ADAPTER = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, "timeout_seconds": 2}


async def start(database: Database, sim: dict[str, Any] | None = None, **overrides: Any) -> LiveGateway:
    return await start_gateway(
        database,
        extra_simulators={"card_acquirer": {**SIM, **(sim or {})}},
        partners__card_acquirer=ADAPTER,
        dispatch__backoff_base_seconds=0.05,
        dispatch__backoff_max_seconds=0.2,
        **overrides,
    )


def acquirer_of(gw: LiveGateway) -> Simulator:
    return gw.simulators["card_acquirer"].runner.app[ACQUIRER]


async def pay_out(gw: LiveGateway, creditor_name: str = "Nordic Parts AB", **changes: Any) -> str:
    body = example_instruction(
        type="payout",
        amount="250.00",
        creditor={"name": creditor_name, "account": {"wallet": "wal_nordic_parts_01"}},
        **changes,
    )
    resp = await gw.post_instruction(body)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_wallet_payout_settles_through_signed_webhooks_with_one_payout_at_the_acquirer(
    database: Database,
) -> None:
    gw = await start(database)
    try:
        instruction_id = await pay_out(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)

        assert view["status"] == "settled" and view["adapter"] == "card_acquirer"
        assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
        settled = view["events"][-1]
        assert (settled["source"], settled["partner_status"]) == ("callback", "paid")
        assert view["partner_reference"].startswith("po_")
        assert [contracts().errors("status-event", e) for e in view["events"]] == [[]] * len(view["events"])
        (payment,) = acquirer_of(gw).describe()
        assert (payment["instruction_id"], payment["submissions"], payment["status"]) == (instruction_id, 1, "settled")
        assert (payment["amount"], payment["currency"]) == ("250.00", "EUR")
    finally:
        await stop_gateway(gw)


async def test_declined_payout_is_rejected_with_the_mapped_reason_code(database: Database) -> None:
    gw = await start(database)
    try:
        at_submit = await pay_out(gw, "Nordic Parts REJECTNOW-AM04")
        by_webhook = await pay_out(gw, "Nordic Parts REJECT-AC04")
        first = await gw.wait_for(at_submit, lambda v: v["status"] in FINAL)
        second = await gw.wait_for(by_webhook, lambda v: v["status"] in FINAL)

        assert (first["status"], first["events"][-1]["reason_code"]) == ("rejected", "AM04")
        assert (second["status"], second["events"][-1]["reason_code"]) == ("rejected", "AC04")
        assert second["events"][-1]["source"] == "callback"
    finally:
        await stop_gateway(gw)


async def test_processing_unavailable_sends_the_payout_back_to_routing(database: Database) -> None:
    gw = await start(database)
    try:
        instruction_id = await pay_out(gw, "Nordic Parts REJECTNOW-PUNA")
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)

        # the acquirer asked for another rail; no other enabled adapter carries wallets, so routing gives up
        reroute = [e for e in view["events"] if e["reason_code"] == "REROUTE"]
        assert [(e["status"], e["adapter"], e["applied"]) for e in reroute] == [("accepted", "card_acquirer", True)]
        assert (view["status"], view["events"][-1]["reason_code"]) == ("rejected", "NO_ROUTE")
        assert len(acquirer_of(gw).payments) == 1  # refused once, never paid
    finally:
        await stop_gateway(gw)


async def test_transient_outage_is_retried_with_the_same_key_then_settles(database: Database) -> None:
    gw = await start(database, {"unavailable_for": 2, "retry_after": 0})
    try:
        instruction_id = await pay_out(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)

        assert view["status"] == "settled"
        submits = acquirer_of(gw).journal.select({"kind": "submit"})
        assert [e.http_status for e in submits] == [503, 503, 202]
        assert [e.outcome for e in submits][-1] == "created"
    finally:
        await stop_gateway(gw)


async def test_status_found_by_polling_when_webhooks_are_off(database: Database) -> None:
    gw = await start(
        database,
        {"send_callbacks": False},
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0,
    )
    try:
        instruction_id = await pay_out(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)

        assert view["status"] == "settled"
        assert (view["events"][-1]["source"], view["events"][-1]["partner_status"]) == ("poll", "paid")
        assert acquirer_of(gw).describe()[0]["callbacks_sent"] == 0
    finally:
        await stop_gateway(gw)


async def test_forged_and_replayed_webhooks_are_refused_and_change_nothing(database: Database) -> None:
    gw = await start(database, {"send_callbacks": False}, poll=False)
    try:
        instruction_id = await pay_out(gw)
        await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
        url = f"{gw.url}/v1/partners/card_acquirer/callbacks"
        forged = signed_webhook({"webhook_secret": "whsec_not_the_acquirer"}, instruction_id, "settled")
        replayed = signed_webhook(
            {"webhook_secret": WEBHOOK_SECRET}, instruction_id, "settled", timestamp=int(time.time()) - 3600
        )

        answers = []
        for body, headers in (forged, replayed):
            async with gw.session.post(url, data=body, headers=headers) as resp:
                answers.append((resp.status, (await resp.json())["type"].rsplit("/", 1)[-1]))
        view = await gw.get_instruction(instruction_id)

        assert answers == [(401, "invalid-signature"), (401, "invalid-signature")]
        assert view["status"] == "submitted"
        assert applied(view) == ["received", "accepted", "routed", "submitted"]
    finally:
        await stop_gateway(gw)


async def test_genuine_webhook_settles_the_payout(database: Database) -> None:
    gw = await start(database, {"send_callbacks": False}, poll=False)
    try:
        instruction_id = await pay_out(gw)
        view = await gw.wait_for(instruction_id, lambda v: v["status"] == "submitted")
        body, headers = signed_webhook(
            {"webhook_secret": WEBHOOK_SECRET},
            instruction_id,
            "settled",
            amount=Decimal("250.00"),
            partner_reference=view["partner_reference"].removeprefix("po_"),
        )

        async with gw.session.post(f"{gw.url}/v1/partners/card_acquirer/callbacks", data=body, headers=headers) as resp:
            status = resp.status
        view = await gw.get_instruction(instruction_id)

        assert status == 200 and view["status"] == "settled"
        assert view["events"][-1]["source"] == "callback"
    finally:
        await stop_gateway(gw)


FAULTS = {
    "RSTA": [{"kind": "reset", "after": True}],
    "E429": [{"kind": "http_error", "status": 429, "retry_after": 0}],
    "TRUNC": [{"kind": "truncated_body"}],
    "CTYPE": [{"kind": "wrong_content_type"}],
    "UNK": [{"kind": "unknown_status", "code": "ZZZZ", "exchange": "submit"}],
    "AMT": [{"kind": "wrong_amount", "amount_delta": "5.00", "exchange": "submit"}],
}


async def test_transport_and_payload_faults_are_survived_with_one_payout_each(database: Database) -> None:
    rules = [
        {"name": tag, "match": {"reference": f"^{tag}-"}, "outcome": "settle", "faults": faults}
        for tag, faults in FAULTS.items()
    ]
    scenario = {"name": "card-faults", "defaults": {"delays": {"ack": 0.05, "settle": 0.1}}, "rules": rules}
    gw = await start(database, {"scenario": scenario, "seed": 1}, partners__card_acquirer__timeout_seconds=1)
    try:
        ids = {tag: await pay_out(gw, reference=f"{tag}-{time.time_ns()}") for tag in FAULTS}
        views = {tag: await gw.wait_for(i, lambda v: v["status"] in FINAL, timeout=20) for tag, i in ids.items()}

        assert {tag: v["status"] for tag, v in views.items()} == dict.fromkeys(FAULTS, "settled")
        created = [e.instruction_id for e in acquirer_of(gw).journal.select({"kind": "submit", "outcome": "created"})]
        assert sorted(created) == sorted(ids.values())  # each payout booked exactly once
        injected = {f for e in acquirer_of(gw).journal.entries for f in e.faults}
        assert {
            "reset",
            "http_error",
            "truncated_body",
            "wrong_content_type",
            "unknown_status",
            "wrong_amount",
        } <= injected
    finally:
        await stop_gateway(gw)
