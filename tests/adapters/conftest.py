"""Fixtures for adapter tests: payment orders, and the ISO 20022 bank simulator on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.domain.accounts import Agent, IbanAccount, Party
from gateway.domain.money import Money
from gateway.partners.adapter import AdapterContext, PaymentOrder
from gateway_adapters.iso20022_bank import Iso20022BankAdapter
from gateway_simulators.iso20022_bank import BANK, Bank, create_app

DEBTOR_IBAN = "DE89370400440532013000"
CREDITOR_IBAN = "FR1420041010050500013M02606"
REQUEST_SECRET = "request-secret-for-tests"
CALLBACK_SECRET = "callback-secret-for-tests"


def make_order(
    *,
    id: str = "ins_01J0000000000000000000001",
    reference: str = "INV-2024-0001",
    amount: str = "1250.00",
    currency: str = "EUR",
    creditor_name: str = "Nordic Parts AB",
    creditor_bic: str | None = "BNPAFRPPXXX",
    debtor_bic: str | None = "COBADEFFXXX",
    remittance: str | None = "Invoice 2024-0001",
    execution_date: date | None = None,
) -> PaymentOrder:
    """A valid EUR credit transfer; override what the test is about."""
    return PaymentOrder(
        id=id,
        business_unit="retail",
        reference=reference,
        type="credit_transfer",
        money=Money(amount, currency),
        debtor=Party(
            "ACME Retail GmbH",
            IbanAccount.parse(DEBTOR_IBAN, "/debtor/account/iban"),
            Agent.parse(debtor_bic, "/debtor/agent/bic") if debtor_bic else None,
        ),
        creditor=Party(
            creditor_name,
            IbanAccount.parse(CREDITOR_IBAN, "/creditor/account/iban"),
            Agent.parse(creditor_bic, "/creditor/agent/bic") if creditor_bic else None,
        ),
        remittance_information=remittance,
        requested_execution_date=execution_date,
    )


@dataclass
class CallbackInbox:
    """A tiny stand-in for the gateway's callback endpoint: keeps what the bank posts."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_next: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: seconds each answer takes (a busy gateway), and the most requests seen in flight at once
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503)
        self.received.append((dict(request.headers), await request.read()))
        self.arrived.set()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return web.Response(status=204)


@dataclass
class BankRig:
    """Simulator + callback receiver + adapter, all on loopback."""

    adapter: Iso20022BankAdapter
    bank: Bank
    inbox: CallbackInbox
    settings: dict[str, Any]


RigFactory = Callable[..., Awaitable[BankRig]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def adapter_for(
    base_url: str,
    callback_url: str = "http://127.0.0.1:9/callbacks",
    *,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> Iso20022BankAdapter:
    """An adapter with the test secrets; ``overrides`` are settings."""
    settings = {
        "base_url": base_url,
        "request_secret": REQUEST_SECRET,
        "callback_secret": CALLBACK_SECRET,
        "timeout_seconds": 2,
        **overrides,
    }
    context = AdapterContext(callback_url=callback_url)
    if clock is not None:
        context = AdapterContext(callback_url=callback_url, clock=clock)
    return Iso20022BankAdapter.from_settings(settings, context)


@pytest.fixture
async def bank_rig() -> AsyncIterator[RigFactory]:
    """Factory: start a simulator (with settings overrides) and an adapter pointed at it."""
    servers: list[TestServer] = []
    adapters: list[Iso20022BankAdapter] = []

    async def start(adapter_settings: dict[str, Any] | None = None, **sim: Any) -> BankRig:
        settings = {
            "request_secret": REQUEST_SECRET,
            "callback_secret": CALLBACK_SECRET,
            "callback_delay": 0.01,
            "settle_delay": 0.02,
            "callback_backoff": 0.01,
            **sim,
        }
        inbox = CallbackInbox()
        receiver = web.Application()
        receiver.router.add_post("/callbacks", inbox.handle)
        app = create_app(settings)
        for server in (TestServer(receiver), TestServer(app)):
            await server.start_server()
            servers.append(server)
        adapter = adapter_for(
            str(servers[-1].make_url("")),
            str(servers[-2].make_url("/callbacks")),
            **(adapter_settings or {}),
        )
        adapters.append(adapter)
        return BankRig(adapter=adapter, bank=app[BANK], inbox=inbox, settings=settings)

    yield start
    for adapter in adapters:
        await adapter.close()
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def make_adapter() -> AsyncIterator[Callable[..., Iso20022BankAdapter]]:
    """Factory for adapters pointed anywhere (closed afterwards); see ``adapter_for``."""
    made: list[Iso20022BankAdapter] = []

    def make(*args: Any, **kwargs: Any) -> Iso20022BankAdapter:
        made.append(adapter_for(*args, **kwargs))
        return made[-1]

    yield make
    for adapter in made:
        await adapter.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[TestServer]]]:
    """Factory: serve one handler for every path on loopback (a stand-in bank)."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> TestServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        servers.append(TestServer(app))
        await servers[-1].start_server()
        return servers[-1]

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
def new_order() -> Callable[..., PaymentOrder]:
    """Factory for valid orders (see ``make_order`` for the knobs)."""
    return make_order
