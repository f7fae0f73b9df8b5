"""Fixtures for simulator tests: the ISO 20022 bank on loopback, and signed pain.001 bodies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.domain.accounts import Agent, IbanAccount, Party
from gateway.domain.money import Money
from gateway.partners.adapter import PaymentOrder
from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.pain001 import build_pain001, build_pain001_many
from gateway_simulators.iso20022_bank import create_app

SECRETS = {"request_secret": "bank-request-secret", "callback_secret": "bank-callback-secret"}


def sample_order(
    *,
    id: str = "ins_sim_0001",
    reference: str = "INV-7",
    amount: str = "250.00",
    creditor_name: str = "Nordic Parts AB",
) -> PaymentOrder:
    return PaymentOrder(
        id=id,
        business_unit="retail",
        reference=reference,
        type="credit_transfer",
        money=Money(amount, "EUR"),
        debtor=Party("ACME Retail GmbH", IbanAccount.parse("DE89370400440532013000", "/d"), None),
        creditor=Party(
            creditor_name,
            IbanAccount.parse("FR1420041010050500013M02606", "/c"),
            Agent.parse("BNPAFRPPXXX", "/c/agent"),
        ),
        remittance_information="Invoice 7",
    )


@pytest.fixture
def pain001() -> Callable[..., bytes]:
    """Factory: a valid pain.001.001.09 body; ``created_at`` varies it without changing the payment."""

    def build(created_at: datetime | None = None, **order: Any) -> bytes:
        return build_pain001(
            sample_order(**order),
            created_at=created_at or datetime(2024, 5, 6, 10, 0, tzinfo=UTC),
            execution_date=date(2024, 5, 7),
        )

    return build


@pytest.fixture
def pain001_many() -> Callable[..., bytes]:
    """Factory: a valid bulk pain.001.001.09 body, one payment per instruction id (MsgId: ``MSG-<first id>``)."""

    def build(*ids: str) -> bytes:
        orders = [(sample_order(id=i, reference=f"INV-{i[-6:]}"), date(2024, 5, 7)) for i in ids]
        return build_pain001_many(
            orders, message_id=f"MSG-{ids[0]}", created_at=datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
        )

    return build


def signed(body: bytes, *, key: str | None = "ins_sim_0001", callback_url: str | None = None) -> dict[str, str]:
    """Headers the bank expects on a submission."""
    headers = {
        "Content-Type": "application/xml",
        "X-Signature": sign_payload(SECRETS["request_secret"].encode(), body),
    }
    if key is not None:
        headers["Idempotency-Key"] = key
    if callback_url is not None:
        headers["X-Callback-Url"] = callback_url
    return headers


@pytest.fixture
def sign() -> Callable[..., dict[str, str]]:
    """Factory: signed submission headers (see ``signed``)."""
    return signed


@pytest.fixture
def bank_client(aiohttp_client: Any) -> Callable[..., Awaitable[TestClient]]:
    """Factory: a test client on a fresh simulator with fast timings and ``overrides``."""

    async def start(**overrides: Any) -> TestClient:
        settings = {**SECRETS, "callback_delay": 0.01, "settle_delay": 0.01, "callback_backoff": 0.01, **overrides}
        return await aiohttp_client(create_app(settings))

    return start


@pytest.fixture
def receiver(aiohttp_server: Any) -> Callable[..., Awaitable[Any]]:
    """Factory: a callback receiver answering ``statuses`` in turn (then 204); returns (server, log)."""

    async def start(*statuses: int) -> tuple[Any, list[bytes]]:
        replies = list(statuses)
        log: list[bytes] = []

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            status = replies.pop(0) if replies else 204
            if status < 300:
                log.append(body)
            return web.Response(status=status)

        app = web.Application()
        app.router.add_post("/callbacks", handle)
        return await aiohttp_server(app), log

    return start
