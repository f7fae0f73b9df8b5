"""Helpers of the money-in tests: requests through the live gateway, balances read from the ledger."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.tables import ledger_balances
from tests.support import LiveGateway


async def call(
    gw: LiveGateway,
    method: str,
    path: str,
    key: str,
    *,
    status: int,
    json: Any = None,
    data: bytes | None = None,
    idempotency_key: str | None = None,
) -> Any:
    headers = gw.headers(key)
    if method == "POST" and path.startswith(("/v1/receivables", "/v1/credit-lines")):
        headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
    async with gw.session.request(method, f"{gw.url}{path}", json=json, data=data, headers=headers) as resp:
        assert resp.status == status, f"{method} {path}: {resp.status} {await resp.text()}"
        return await resp.json(content_type=None)


def receivable(invoice: str, amount: str, *, distributor: str = "nord", due: str = "2026-12-31", **extra: Any) -> dict:
    return {
        "invoice_number": invoice,
        "distributor": distributor,
        "amount": {"value": amount, "currency": "EUR"},
        "due_date": due,
        **extra,
    }


async def balances(engine: AsyncEngine) -> dict[str, int]:
    """Every ledger account's balance in EUR minor units (debit positive)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(ledger_balances).where(ledger_balances.c.currency == "EUR"))
        return {r.account: r.debits - r.credits for r in rows}
