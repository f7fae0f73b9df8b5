"""The card/wallet acquirer adapter against its simulator on loopback (no mocks)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from gateway.domain.accounts import IbanAccount, Party, WalletAccount
from gateway.domain.money import Money
from gateway.domain.status import Status
from gateway.errors import ConfigError, ContractError, PermanentPartnerError, SignatureError, TransientPartnerError
from gateway.partners.adapter import AdapterContext, PaymentOrder, StatusUpdate
from gateway.partners.signing import sign_payload
from gateway.plugins.manager import Plugins
from gateway_adapters.card_acquirer import CardAcquirerAdapter
from gateway_adapters.card_acquirer.codes import ERROR_CODES, REROUTE
from gateway_adapters.card_acquirer.contracts import partner_contracts
from gateway_simulators.card_acquirer import ACQUIRER, create_app, signed_webhook
from gateway_simulators.core import Simulator

API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
WEBHOOK_SECRET = "whsec_test_secret_for_tests"
WALLET = "wal_nordic_parts_01"


def make_order(
    *,
    id: str = "ins_01J0000000000000000000001",
    reference: str = "PO-2026-0001",
    amount: str = "125.50",
    currency: str = "EUR",
    creditor_name: str = "Nordic Parts AB",
    type: str = "payout",
    wallet: str | None = WALLET,
) -> PaymentOrder:
    account = WalletAccount.parse(wallet, "/creditor/account/wallet") if wallet else None
    return PaymentOrder(
        id=id,
        business_unit="retail",
        reference=reference,
        type=type,
        money=Money(amount, currency),
        debtor=Party("ACME Retail GmbH", IbanAccount.parse("DE89370400440532013000", "/debtor/account/iban")),
        creditor=Party(creditor_name, account or IbanAccount.parse("FR1420041010050500013M02606", "/x")),
        remittance_information="Payout for order SO-1",
    )


@dataclass
class Inbox:
    """The gateway's webhook endpoint, reduced to keeping what the acquirer posts."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


@dataclass
class Rig:
    adapter: CardAcquirerAdapter
    acquirer: Simulator
    inbox: Inbox
    url: str

    async def webhooks(self) -> list[StatusUpdate]:
        """Let the acquirer finish its timeline; every webhook, parsed by the adapter."""
        await self.acquirer.idle()
        return [u for headers, body in self.inbox.received for u in self.adapter.parse_callback(headers, body)]


RigFactory = Callable[..., Awaitable[Rig]]


def adapter_for(base_url: str, callback_url: str = "http://127.0.0.1:9/cb", **overrides: Any) -> CardAcquirerAdapter:
    settings = {"base_url": base_url, "api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, "timeout_seconds": 2}
    return CardAcquirerAdapter.from_settings({**settings, **overrides}, AdapterContext(callback_url=callback_url))


@pytest.fixture
async def rig() -> AsyncIterator[RigFactory]:
    """Factory: the acquirer simulator (settings overrides), a webhook inbox and an adapter, on loopback."""
    servers: list[TestServer] = []
    adapters: list[CardAcquirerAdapter] = []

    async def start(adapter_settings: dict[str, Any] | None = None, **sim: Any) -> Rig:
        settings = {
            "api_key": API_KEY,
            "webhook_secret": WEBHOOK_SECRET,
            "callback_delay": 0.01,
            "settle_delay": 0.02,
            "callback_backoff": 0.01,
            **sim,
        }
        inbox = Inbox()
        receiver = web.Application()
        receiver.router.add_post("/cb", inbox.handle)
        app = create_app(settings)
        for server in (TestServer(receiver), TestServer(app)):
            await server.start_server()
            servers.append(server)
        url = str(servers[-1].make_url("")).rstrip("/")
        adapter = adapter_for(url, str(servers[-2].make_url("/cb")), **(adapter_settings or {}))
        adapters.append(adapter)
        return Rig(adapter, app[ACQUIRER], inbox, url)

    yield start
    for adapter in adapters:
        await adapter.close()
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def stand_in() -> AsyncIterator[Callable[[int, dict[str, Any]], Awaitable[str]]]:
    """Factory: a stand-in acquirer answering every request with one status and JSON body."""
    servers: list[TestServer] = []

    async def start(status: int, body: dict[str, Any]) -> str:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(body, status=status, headers={"Retry-After": "3"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        servers.append(TestServer(app))
        await servers[-1].start_server()
        return str(servers[-1].make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


def error_schema_errors(body: Any) -> list[Any]:
    return partner_contracts().errors("error", body)


# -- plugin, settings, capabilities ----------------------------------------------------


def test_plugin_registers_card_acquirer_adapter_and_simulator() -> None:
    plugins = Plugins()

    assert plugins.adapter_classes()["card_acquirer"] is CardAcquirerAdapter
    assert plugins.simulator_factories()["card_acquirer"] is not None


def test_settings_schema_requires_key_and_secret_and_refuses_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(CardAcquirerAdapter.settings_schema)
    good = {"base_url": "https://acquirer.example", "api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}

    assert list(validator.iter_errors(good)) == []
    assert [e.validator for e in validator.iter_errors({**good, "colour": "red"})] == ["additionalProperties"]
    assert [e.validator for e in validator.iter_errors({**good, "api_key": "hunter2"})] == ["pattern"]
    assert {e.message for e in validator.iter_errors({})} == {
        "'base_url' is a required property",
        "'api_key' is a required property",
        "'webhook_secret' is a required property",
    }


def test_capabilities_come_from_settings_and_carry_only_wallet_payouts_and_refunds() -> None:
    adapter = adapter_for("https://acquirer.example", currencies=["EUR", "SEK"], max_amount="500.00")

    caps = adapter.capabilities
    assert caps.currencies == {"EUR", "SEK"} and caps.account_kinds == {"wallet"}
    assert caps.types == {"payout", "refund"} and caps.instant is False
    assert caps.refusal(make_order()) is None
    assert caps.refusal(make_order(type="refund", currency="SEK")) is None
    assert caps.refusal(make_order(amount="500.01")) == "amount above 500.00"
    assert caps.refusal(make_order(currency="USD")) == "currency USD not supported"
    assert caps.refusal(make_order(wallet=None)) == "iban accounts not supported"
    assert caps.refusal(make_order(type="credit_transfer")) == "type credit_transfer not supported"
    assert API_KEY not in repr(adapter) and WEBHOOK_SECRET not in repr(adapter)


def test_default_capabilities_are_eur_usd_gbp() -> None:
    assert adapter_for("https://acquirer.example").capabilities.currencies == {"EUR", "USD", "GBP"}


def test_payout_request_satisfies_the_contract_in_minor_units() -> None:
    body = adapter_for("https://acquirer.example").payout_request(make_order(amount="125.50"))

    assert partner_contracts().errors("payout-create", body) == []
    assert (body["amount"], body["currency"], body["type"]) == (12550, "eur", "payout")
    assert body["destination"] == {"wallet": WALLET, "name": "Nordic Parts AB"}
    assert body["metadata"]["instruction_id"] == "ins_01J0000000000000000000001"


def test_simulator_settings_need_the_api_key_and_webhook_secret() -> None:
    with pytest.raises(ConfigError, match="api_key is required"):
        create_app({"webhook_secret": WEBHOOK_SECRET})
    with pytest.raises(ConfigError, match="currencies must be a list"):
        create_app({"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET, "currencies": "EUR"})


# -- submit, idempotency, webhooks --------------------------------------------------------


async def test_submit_twice_books_one_payout_at_the_acquirer(rig: RigFactory) -> None:
    r = await rig()

    first = await r.adapter.submit(make_order())
    second = await r.adapter.submit(make_order())

    assert first.status is Status.SUBMITTED and first.partner_status == "pending"
    assert first.partner_reference.startswith("po_") and second == first
    (payment,) = r.acquirer.describe()
    assert payment["submissions"] == 2
    outcomes = [e.outcome for e in r.acquirer.journal.select({"kind": "submit"})]
    assert outcomes == ["created", "replayed"]


async def test_same_idempotency_key_with_another_body_is_a_409_in_the_acquirer_format(rig: RigFactory) -> None:
    r = await rig()
    await r.adapter.submit(make_order())
    other = r.adapter.payout_request(make_order(amount="99.00"))

    async with ClientSession() as http:
        headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "ins_01J0000000000000000000001"}
        async with http.post(f"{r.url}/v1/payouts", json=other, headers=headers) as resp:
            status, body = resp.status, await resp.json()

    assert status == 409
    assert body["error"]["type"] == "idempotency_error" and body["error"]["code"] == "idempotency_key_in_use"
    assert error_schema_errors(body) == []
    assert len(r.acquirer.payments) == 1


async def test_webhooks_report_in_transit_then_settle(rig: RigFactory) -> None:
    r = await rig()
    result = await r.adapter.submit(make_order())

    updates = await r.webhooks()

    assert [(u.status, u.partner_status) for u in updates] == [(None, "in_transit"), (Status.SETTLED, "paid")]
    assert {u.partner_reference for u in updates} == {result.partner_reference}
    assert {u.instruction_id for u in updates} == {"ins_01J0000000000000000000001"}
    assert all(u.occurred_at is not None for u in updates)
    headers = r.inbox.received[-1][0]
    assert headers["Acquirer-Signature"].startswith("t=") and ",v1=" in headers["Acquirer-Signature"]


async def test_forged_webhook_is_refused(rig: RigFactory) -> None:
    r = await rig()
    body, headers = signed_webhook({"webhook_secret": "whsec_someone_else"}, "ins_1", "settled")

    with pytest.raises(SignatureError, match="does not match"):
        r.adapter.parse_callback(headers, body)
    with pytest.raises(SignatureError, match="missing"):
        r.adapter.parse_callback({"Content-Type": "application/json"}, body)


async def test_replayed_webhook_with_an_old_timestamp_is_refused(rig: RigFactory) -> None:
    r = await rig()
    body, headers = signed_webhook(
        {"webhook_secret": WEBHOOK_SECRET}, "ins_1", "settled", timestamp=int(time.time()) - 3600
    )

    with pytest.raises(SignatureError, match="outside the tolerance"):
        r.adapter.parse_callback(headers, body)


async def test_signed_webhook_off_contract_is_a_contract_error(rig: RigFactory) -> None:
    r = await rig()
    body = json.dumps({"id": "evt_1234", "object": "event", "type": "payout.exploded", "created": 1, "data": {}})

    with pytest.raises(ContractError):
        r.adapter.parse_callback(
            {"Acquirer-Signature": sign_payload(WEBHOOK_SECRET.encode(), body.encode())}, body.encode()
        )


async def test_returned_webhook_maps_to_returned_with_reason(rig: RigFactory) -> None:
    r = await rig()
    body, headers = signed_webhook({"webhook_secret": WEBHOOK_SECRET}, "ins_1", "returned", reason_code="AC04")

    (update,) = r.adapter.parse_callback(headers, body)

    assert (update.status, update.reason_code, update.partner_status) == (Status.RETURNED, "AC04", "returned")


# -- status query ---------------------------------------------------------------------------


async def test_poll_agrees_with_webhooks_when_the_acquirer_sends_none(rig: RigFactory) -> None:
    r = await rig(send_callbacks=False)
    order = make_order()
    result = await r.adapter.submit(order)

    polled = await r.adapter.poll(order)
    await r.acquirer.idle()
    final = await r.adapter.poll(order)

    assert polled is not None and polled.status is None and polled.partner_status in ("pending", "in_transit")
    assert final is not None and (final.status, final.partner_status) == (Status.SETTLED, "paid")
    assert final.partner_reference == result.partner_reference
    assert r.inbox.received == []


async def test_poll_of_a_payout_the_acquirer_does_not_know_is_none(rig: RigFactory) -> None:
    r = await rig()

    assert await r.adapter.poll(make_order(id="ins_unknown")) is None


# -- code classes ----------------------------------------------------------------------------


async def test_decline_at_submit_is_a_rejection_with_the_mapped_reason_code(rig: RigFactory) -> None:
    r = await rig()

    result = await r.adapter.submit(make_order(creditor_name="Nordic Parts REJECTNOW-AM04"))

    assert (result.status, result.reason_code, result.partner_status) == (Status.REJECTED, "AM04", "failed")
    assert result.reason


async def test_decline_by_webhook_is_a_rejection_with_the_mapped_reason_code(rig: RigFactory) -> None:
    r = await rig()
    await r.adapter.submit(make_order(creditor_name="Nordic Parts REJECT-AC04"))

    updates = await r.webhooks()

    assert (updates[-1].status, updates[-1].reason_code) == (Status.REJECTED, "AC04")
    assert updates[-1].partner_status == "failed"


async def test_processing_unavailable_is_permanent_with_reroute(rig: RigFactory) -> None:
    r = await rig()

    with pytest.raises(PermanentPartnerError) as caught:
        await r.adapter.submit(make_order(creditor_name="Nordic Parts REJECTNOW-PUNA"))

    assert caught.value.reason_code == REROUTE


async def test_processing_unavailable_by_webhook_fails_with_reroute(rig: RigFactory) -> None:
    r = await rig()
    await r.adapter.submit(make_order(creditor_name="Nordic Parts REJECT-PUNA"))

    updates = await r.webhooks()

    assert (updates[-1].status, updates[-1].reason_code) == (Status.FAILED, REROUTE)


async def test_currency_the_acquirer_does_not_pay_out_is_permanent_with_reroute(rig: RigFactory) -> None:
    r = await rig(currencies=["EUR"])

    with pytest.raises(PermanentPartnerError) as caught:
        await r.adapter.submit(make_order(currency="USD"))

    assert caught.value.reason_code == REROUTE
    assert r.acquirer.payments == {}


async def test_outage_is_transient_with_retry_after_then_the_retry_is_taken(rig: RigFactory) -> None:
    r = await rig(unavailable_for=1, retry_after=2)

    with pytest.raises(TransientPartnerError) as caught:
        await r.adapter.submit(make_order())
    result = await r.adapter.submit(make_order())

    assert (caught.value.reason_code, caught.value.retry_after) == ("PARTNER_API_ERROR", 2.0)
    assert result.status is Status.SUBMITTED
    assert len(r.acquirer.payments) == 1


async def test_rate_limit_is_transient_with_retry_after(rig: RigFactory) -> None:
    fault = {"kind": "http_error", "status": 429, "retry_after": 5, "times": 1}
    r = await rig(scenario={"name": "limits", "faults": [fault]})

    with pytest.raises(TransientPartnerError) as caught:
        await r.adapter.submit(make_order())
    result = await r.adapter.submit(make_order())

    assert (caught.value.reason_code, caught.value.retry_after) == ("RATE_LIMITED", 5.0)
    assert result.status is Status.SUBMITTED


async def test_wrong_api_key_is_refused_by_the_acquirer_and_retried_slowly(rig: RigFactory) -> None:
    r = await rig(adapter_settings={"api_key": "sk_test_not_the_right_key"})

    with pytest.raises(TransientPartnerError) as caught:
        await r.adapter.submit(make_order())

    assert (caught.value.reason_code, caught.value.retry_after) == ("PARTNER_AUTH", 60.0)
    assert r.acquirer.payments == {}


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
async def test_every_error_code_maps_to_its_outcome(code: str, stand_in: Any) -> None:
    rule = ERROR_CODES[code]
    url = await stand_in(402, {"error": {"type": "card_error", "code": code, "message": f"simulated {code}"}})
    adapter = adapter_for(url)
    try:
        if rule.outcome == "reject":
            result = await adapter.submit(make_order())
            assert (result.status, result.reason_code, result.partner_status) == (
                Status.REJECTED,
                rule.reason_code,
                code,
            )
        else:
            expected = TransientPartnerError if rule.outcome == "retry" else PermanentPartnerError
            with pytest.raises(expected) as caught:
                await adapter.submit(make_order())
            assert caught.value.reason_code == rule.reason_code
            if rule.outcome == "reroute":
                assert caught.value.reason_code == REROUTE
            if rule.outcome == "retry":
                assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]
    finally:
        await adapter.close()


async def test_unreadable_5xx_is_transient_and_unreadable_4xx_is_permanent(stand_in: Any) -> None:
    transient, permanent = adapter_for(await stand_in(502, {"oops": 1})), adapter_for(await stand_in(400, {"oops": 1}))
    try:
        with pytest.raises(TransientPartnerError):
            await transient.submit(make_order())
        with pytest.raises(PermanentPartnerError) as caught:
            await permanent.submit(make_order())
        assert caught.value.reason_code == "HTTP400"
    finally:
        await transient.close()
        await permanent.close()


async def test_answer_naming_another_amount_is_not_acted_on(rig: RigFactory) -> None:
    fault = {"kind": "wrong_amount", "amount_delta": "5.00", "exchange": "submit", "times": 1}
    r = await rig(scenario={"name": "echo", "faults": [fault]})

    with pytest.raises(TransientPartnerError, match="names"):
        await r.adapter.submit(make_order())
    retried = await r.adapter.submit(make_order())

    assert retried.status is Status.SUBMITTED and len(r.acquirer.payments) == 1


async def test_iban_order_never_leaves_and_asks_for_reroute(rig: RigFactory) -> None:
    r = await rig()

    with pytest.raises(PermanentPartnerError) as caught:
        await r.adapter.submit(make_order(wallet=None))

    assert caught.value.reason_code == REROUTE
    assert r.acquirer.journal.select({"kind": "submit"}) == []


# -- the simulator speaks the contract ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code", "param"),
    [
        (lambda b: b.pop("amount"), "parameter_missing", "/amount"),
        (lambda b: b.update(amount=12.5), "parameter_invalid", "/amount"),
        (lambda b: b.update(currency="EUR"), "parameter_invalid", "/currency"),
        (lambda b: b.update(colour="red"), "parameter_invalid", "/colour"),
        (lambda b: b["destination"].update(wallet="x"), "parameter_invalid", "/destination/wallet"),
    ],
)
async def test_simulator_rejects_contract_violations_in_its_own_format(
    rig: RigFactory, change: Callable[[dict[str, Any]], Any], code: str, param: str
) -> None:
    r = await rig()
    body = r.adapter.payout_request(make_order())
    change(body)

    async with ClientSession() as http:
        headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "ins_bad"}
        async with http.post(f"{r.url}/v1/payouts", json=body, headers=headers) as resp:
            status, answer = resp.status, await resp.json()

    assert status == 400 and error_schema_errors(answer) == []
    assert (answer["error"]["type"], answer["error"]["code"], answer["error"]["param"]) == (
        "invalid_request_error",
        code,
        param,
    )
    assert r.acquirer.payments == {}


async def test_simulator_refuses_requests_without_the_api_key(rig: RigFactory) -> None:
    r = await rig()

    async with ClientSession() as http, http.get(f"{r.url}/v1/payouts/ins_1") as resp:
        status, answer = resp.status, await resp.json()

    assert status == 401
    assert answer["error"]["type"] == "authentication_error" and error_schema_errors(answer) == []
