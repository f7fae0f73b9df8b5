"""The collection tests' support: a gateway with the card acquirer simulator on loopback, and API helpers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from sqlalchemy import select

from gateway.store.tables import ledger_balances
from gateway_simulators.card_acquirer import ACQUIRER
from gateway_simulators.core import Simulator
from tests.support import Database, LiveGateway, start_gateway

__all__ = [
    "API_KEY",
    "FINAL",
    "WEBHOOK_SECRET",
    "acquirer_of",
    "card_charge",
    "get_collection",
    "post_collection",
    "start",
    "trial_balance",
    "wait_for_collection",
]

API_KEY = "sk_test_collections_0123456789"
WEBHOOK_SECRET = "whsec_collections_secret"
SIM = {
    "api_key": API_KEY,
    "webhook_secret": WEBHOOK_SECRET,
    "callback_delay": 0.02,
    "settle_delay": 0.05,
    "callback_backoff": 0.02,
}
ADAPTER = {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, "timeout_seconds": 2}
FINAL = frozenset({"collected", "rejected", "failed", "cancelled", "returned", "charged_back"})


async def start(database: Database, sim: dict[str, Any] | None = None, **overrides: Any) -> LiveGateway:
    """A gateway whose only partner is the card acquirer simulator."""
    return await start_gateway(
        database,
        simulators=False,
        extra_simulators={"card_acquirer": {**SIM, **(sim or {})}},
        partners__card_acquirer=ADAPTER,
        dispatch__backoff_base_seconds=0.05,
        dispatch__backoff_max_seconds=0.2,
        **overrides,
    )


def acquirer_of(gw: LiveGateway) -> Simulator:
    return gw.simulators["card_acquirer"].runner.app[ACQUIRER]


def card_charge(payer_name: str = "Jonas Wik", amount: str = "129.90", **changes: Any) -> dict[str, Any]:
    """A card charge collection document (a fresh reference each call)."""
    body: dict[str, Any] = {
        "reference": f"ORD-{uuid.uuid4().hex[:12].upper()}",
        "kind": "card_charge",
        "amount": {"value": amount, "currency": "EUR"},
        "payer": {"name": payer_name, "card_token": "tok_visa_4242abcd"},
        "description": "Dishwasher DW-500",
    }
    body.update(changes)
    return body


async def post_collection(
    gw: LiveGateway, body: Any, *, idempotency_key: str | None = None, path: str = "/v1/collections"
) -> aiohttp.ClientResponse:
    headers = gw.headers(**{"Idempotency-Key": idempotency_key or uuid.uuid4().hex})
    return await gw.session.post(f"{gw.url}{path}", json=body, headers=headers)


async def get_collection(gw: LiveGateway, collection_id: str) -> dict[str, Any]:
    async with gw.session.get(f"{gw.url}/v1/collections/{collection_id}", headers=gw.headers()) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]


async def wait_for_collection(
    gw: LiveGateway, collection_id: str, status: str | None = None, timeout: float = 15
) -> dict[str, Any]:
    """Poll until the collection reaches ``status`` (default: any final one); fail with its history if stuck."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = await get_collection(gw, collection_id)
        if view["status"] == status or (status is None and view["status"] in FINAL):
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"collection stuck: {view['status']} {[e['status'] for e in view['events']]}")
        await asyncio.sleep(0.05)


async def trial_balance(gw: LiveGateway) -> dict[str, int]:
    """Every ledger account's balance (debits - credits) in minor units."""
    async with gw.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(ledger_balances))).all()
    return {r.account: r.debits - r.credits for r in rows}
