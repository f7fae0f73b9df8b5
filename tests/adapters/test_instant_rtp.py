"""The instant payments adapter against its simulator on loopback (no mocks)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp.test_utils import TestServer

from gateway.domain.accounts import Agent, IbanAccount, Party, UsAccount
from gateway.domain.money import Money
from gateway.domain.statements import StatementFetch
from gateway.domain.status import Status
from gateway.errors import (
    ContractError,
    OutcomeUnknownError,
    PermanentPartnerError,
    SignatureError,
    TransientPartnerError,
)
from gateway.partners.adapter import AdapterContext, PaymentOrder
from gateway.partners.signing import sign_payload
from gateway.plugins.manager import Plugins
from gateway.recon.imports import detect_format
from gateway_adapters.instant_rtp import InstantRtpAdapter
from gateway_adapters.instant_rtp.adapter import NOT_FOUND, never_executed
from gateway_adapters.instant_rtp.messages import REQUEST, read_error, validate
from gateway_adapters.instant_rtp.reasons import REASON_CODES
from gateway_adapters.instant_rtp.statements import RTP_CAMT053
from gateway_adapters.iso20022_bank.camt053 import build_camt053
from gateway_simulators.core import Simulator
from gateway_simulators.instant_rtp import SIMULATOR, create_app

REQUEST_SECRET = "rtp-request-secret-for-tests"
RESPONSE_SECRET = "rtp-response-secret-for-tests"


def make_order(
    *,
    id: str = "ins_01J0000000000000000000RTP1",
    reference: str = "INV-RTP-0001",
    amount: str = "2500.00",
    creditor_name: str = "Acme Supplies Inc",
) -> PaymentOrder:
    return PaymentOrder(
        id=id,
        business_unit="retail-us",
        reference=reference,
        type="credit_transfer",
        money=Money(amount, "USD"),
        debtor=Party("HE Appliances US LLC", UsAccount.parse("123456789", "021000021", "/debtor/account")),
        creditor=Party(creditor_name, UsAccount.parse("987654321", "011000015", "/creditor/account")),
        remittance_information="Invoice 77",
        urgency="instant",
    )


@dataclass
class Rig:
    adapter: InstantRtpAdapter
    sim: Simulator
    url: str


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rtp_rig() -> AsyncIterator[RigFactory]:
    """Factory: a simulator (settings overrides) and an adapter (settings overrides) pointed at it."""
    servers: list[TestServer] = []
    adapters: list[InstantRtpAdapter] = []

    async def start(adapter_settings: dict[str, Any] | None = None, **sim: Any) -> Rig:
        app = create_app({"request_secret": REQUEST_SECRET, "callback_secret": RESPONSE_SECRET, **sim})
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        url = str(server.make_url("")).rstrip("/")
        settings = {
            "base_url": url,
            "request_secret": REQUEST_SECRET,
            "response_secret": RESPONSE_SECRET,
            "timeout_seconds": 2,
            **(adapter_settings or {}),
        }
        adapter = InstantRtpAdapter.from_settings(settings, AdapterContext(callback_url="http://127.0.0.1:9/cb"))
        adapters.append(adapter)
        return Rig(adapter, app[SIMULATOR], url)

    yield start
    for adapter in adapters:
        await adapter.close()
    for server in servers:
        await server.close()


def scenario(*faults: dict[str, Any]) -> dict[str, Any]:
    return {"name": "instant-faults", "seed": 1, "faults": list(faults)}


# -- registration, settings, capabilities ------------------------------------------------


def test_plugin_registers_adapter_and_simulator_through_entry_point() -> None:
    plugins = Plugins()

    assert plugins.adapter_classes()["instant_rtp"] is InstantRtpAdapter
    assert plugins.simulator_factories()["instant_rtp"] is not None


def test_settings_schema_requires_secrets_and_defaults_to_a_five_second_timeout() -> None:
    schema = InstantRtpAdapter.settings_schema
    validator = jsonschema.Draft202012Validator(schema)
    good = {"base_url": "https://rtp.example", "request_secret": "x" * 16, "response_secret": "y" * 16}

    assert list(validator.iter_errors(good)) == []
    assert [e.validator for e in validator.iter_errors({**good, "colour": "red"})] == ["additionalProperties"]
    assert schema["properties"]["timeout_seconds"]["default"] == 5
    assert schema["properties"]["max_amount"]["default"] == "1000000.00"


def test_capabilities_are_instant_us_accounts_with_limit_from_settings() -> None:
    adapter = InstantRtpAdapter.from_settings(
        {
            "base_url": "https://rtp.example",
            "request_secret": "x" * 16,
            "response_secret": "y" * 16,
            "max_amount": "5000.00",
        },
        AdapterContext(callback_url="https://gw.example/cb"),
    )

    caps = adapter.capabilities
    assert caps.instant is True and caps.account_kinds == {"us"} and caps.currencies == {"USD"}
    assert caps.refusal(make_order()) is None
    assert caps.refusal(make_order(amount="5000.01")) == "amount above 5000.00"
    iban_order = replace(
        make_order(),
        creditor=Party(
            "Nordic Parts AB",
            IbanAccount.parse("SE4550000000058398257466", "/creditor/account/iban"),
            Agent.parse("ESSESESS", "/creditor/agent/bic"),
        ),
    )
    assert caps.refusal(iban_order) == "iban accounts not supported"


def test_reason_table_knows_the_instant_rail_codes() -> None:
    assert REASON_CODES["AC03"].description == "invalid creditor account number"
    assert "limit" in REASON_CODES["AM02"].description
    assert REASON_CODES["AB05"].creditor_unavailable and not REASON_CODES["AC03"].creditor_unavailable


# -- outcomes --------------------------------------------------------------------------------


async def test_accepted_payment_settles_synchronously(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()

    result = await rig.adapter.submit(make_order())

    assert result.status is Status.SETTLED and result.partner_status == "ACSC"
    assert result.partner_reference.startswith("SIMB")
    payments = rig.sim.describe()
    assert [(p["status"], p["submissions"], p["amount"]) for p in payments] == [("settled", 1, "2500.00")]
    assert rig.sim.pending_tasks == 0  # synchronous: no timeline, no callbacks


async def test_rejection_carries_the_partner_reason_code(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()

    result = await rig.adapter.submit(make_order(creditor_name="Acme Supplies REJECT-AC03"))

    assert result.status is Status.REJECTED
    assert result.reason_code == "AC03" and result.partner_status == "RJCT"
    assert result.reason


async def test_resubmit_with_same_key_returns_the_original_answer_without_paying_twice(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()
    order = make_order()

    first = await rig.adapter.submit(order)
    second = await rig.adapter.submit(order)

    assert second == first
    assert [(p["submissions"], p["status"]) for p in rig.sim.describe()] == [(2, "settled")]


async def test_same_key_with_a_different_payment_is_refused_with_409(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()
    await rig.adapter.submit(make_order())

    with pytest.raises(PermanentPartnerError) as caught:
        await rig.adapter.submit(make_order(amount="2600.00"))

    assert caught.value.reason_code == "IDEMPOTENCY_CONFLICT"
    assert [p["amount"] for p in rig.sim.describe()] == ["2500.00"]


# -- unknown outcomes -------------------------------------------------------------------------


async def test_hang_past_timeout_is_unknown_then_poll_and_resubmit_find_one_settled_payment(
    rtp_rig: RigFactory,
) -> None:
    rig = await rtp_rig({"timeout_seconds": 0.3}, scenario=scenario({"kind": "hang", "after": True, "seconds": 1}))
    order = make_order()

    with pytest.raises(OutcomeUnknownError) as caught:
        await rig.adapter.submit(order)
    update = await rig.adapter.poll(order)
    again = await rig.adapter.submit(order)

    assert isinstance(caught.value, TransientPartnerError) and caught.value.reason_code == "OUTCOME_UNKNOWN"
    assert update.status is Status.SETTLED and update.instruction_id == order.id
    assert again.status is Status.SETTLED and again.partner_reference == update.partner_reference
    assert [(p["submissions"], p["status"]) for p in rig.sim.describe()] == [(2, "settled")]


async def test_reset_after_processing_is_unknown_and_resolved_by_retry_with_one_payment(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig(scenario=scenario({"kind": "reset", "after": True}))
    order = make_order()

    with pytest.raises(OutcomeUnknownError):
        await rig.adapter.submit(order)
    result = await rig.adapter.submit(order)

    assert result.status is Status.SETTLED
    assert [(p["submissions"], p["status"]) for p in rig.sim.describe()] == [(2, "settled")]


async def test_hang_before_processing_leaves_nothing_and_poll_confirms_never_executed(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig({"timeout_seconds": 0.3}, scenario=scenario({"kind": "hang", "seconds": 0.6}))
    order = make_order()

    with pytest.raises(OutcomeUnknownError):
        await rig.adapter.submit(order)
    update = await rig.adapter.poll(order)

    assert update.status is None and update.partner_status == NOT_FOUND
    assert never_executed(update)
    assert rig.sim.describe() == []


async def test_tampered_answer_is_unknown_not_a_result(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig(scenario=scenario({"kind": "wrong_amount", "amount_delta": "10.00"}))
    order = make_order()

    with pytest.raises(OutcomeUnknownError, match=r"names 2510\.00 USD"):
        await rig.adapter.submit(order)
    result = await rig.adapter.submit(order)

    assert result.status is Status.SETTLED


async def test_partner_503_is_unknown_and_429_is_a_plain_retry(rtp_rig: RigFactory) -> None:
    def rule(reference: str, status: int) -> dict[str, Any]:
        fault = {"kind": "http_error", "status": status, "retry_after": 2}
        return {"name": f"http-{status}", "match": {"reference": reference}, "outcome": "settle", "faults": [fault]}

    rig = await rtp_rig(scenario={"name": "http-errors", "rules": [rule("DOWN", 503), rule("BUSY", 429)]})

    with pytest.raises(OutcomeUnknownError) as unavailable:
        await rig.adapter.submit(make_order(reference="INV-DOWN-1"))
    with pytest.raises(TransientPartnerError) as throttled:
        await rig.adapter.submit(make_order(id="ins_01J0000000000000000000RTP2", reference="INV-BUSY-1"))

    assert unavailable.value.retry_after == 2
    assert not isinstance(throttled.value, OutcomeUnknownError) and throttled.value.reason_code == "HTTP429"
    assert throttled.value.retry_after == 2


async def test_unreachable_partner_is_a_plain_transient_error() -> None:
    sock_port = 9  # discard port on loopback: nothing listens
    adapter = InstantRtpAdapter.from_settings(
        {
            "base_url": f"http://127.0.0.1:{sock_port}",
            "request_secret": REQUEST_SECRET,
            "response_secret": RESPONSE_SECRET,
        },
        AdapterContext(callback_url="http://127.0.0.1:9/cb"),
    )
    try:
        with pytest.raises(TransientPartnerError) as caught:
            await adapter.submit(make_order())
    finally:
        await adapter.close()

    assert not isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.reason_code == "PARTNER_UNREACHABLE"


async def test_poll_of_a_payment_the_partner_never_saw_is_not_found(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()

    update = await rig.adapter.poll(make_order())

    assert never_executed(update) and update.instruction_id == make_order().id


async def test_poll_reports_a_rejection_with_its_code(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()
    order = make_order(creditor_name="Acme REJECT-AM02")
    await rig.adapter.submit(order)

    update = await rig.adapter.poll(order)

    assert update.status is Status.REJECTED and update.reason_code == "AM02"
    assert not never_executed(update)


# -- signatures and contracts ----------------------------------------------------------------


async def test_simulator_refuses_a_request_signed_with_the_wrong_secret(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig({"request_secret": "not-the-partner-secret"})

    with pytest.raises(PermanentPartnerError) as caught:
        await rig.adapter.submit(make_order())

    assert caught.value.reason_code == "SIGNATURE_INVALID"
    assert rig.sim.describe() == []


async def test_answer_signed_with_another_secret_is_never_trusted(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig({"response_secret": "not-the-partner-response-secret"})
    order = make_order()

    with pytest.raises(OutcomeUnknownError, match="signature"):
        await rig.adapter.submit(order)

    assert [p["status"] for p in rig.sim.describe()] == ["settled"]  # executed: hence unknown, not failed


# -- statements ------------------------------------------------------------------------------------


async def test_fetch_statements_asks_each_closed_day_for_the_accounts_camt053(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()
    order = make_order()
    result = await rig.adapter.submit(order)
    today = datetime.now(UTC).date()

    files = await rig.adapter.fetch_statements(StatementFetch(today=today + timedelta(days=1), days=2))

    assert InstantRtpAdapter.statement_sources == frozenset({"rtp.camt.053"})
    assert [(f.format, f.name) for f in files] == [
        ("rtp.camt.053", f"rtp camt.053 {today - timedelta(days=1)}"),
        ("rtp.camt.053", f"rtp camt.053 {today}"),
    ]
    assert RTP_CAMT053.read(files[0].body) == []  # a day without payments: no statement
    (statement,) = RTP_CAMT053.read(files[1].body)
    (line,) = statement.lines
    assert (statement.source, line.partner_reference, line.servicer_reference) == (
        "instant_rtp",
        order.id,
        result.partner_reference,
    )
    assert (line.amount_minor, line.credit, line.end_to_end_id) == (250000, False, order.reference)


async def test_a_statement_answer_the_partner_did_not_sign_is_never_imported(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig({"response_secret": "not-the-partner-response-secret"})
    request = StatementFetch(today=datetime.now(UTC).date(), days=1)

    with pytest.raises(TransientPartnerError, match="signature"):
        await rig.adapter.fetch_statements(request)
    assert InstantRtpAdapter.settings_schema["properties"]["statements_path"]["default"] == "/v1/statements"


def test_auto_reads_a_camt053_as_the_banks_and_the_named_format_as_the_instant_rails() -> None:
    formats = Plugins().statement_formats()
    body = build_camt053([], message_id="MSG1", created_at=datetime.now(UTC))

    assert formats["rtp.camt.053"] is RTP_CAMT053 and RTP_CAMT053.source == "instant_rtp"
    assert detect_format(formats, body).name == "camt.053"  # a camt.053 does not say whose it is
    assert detect_format(formats, body, "rtp.camt.053") is RTP_CAMT053


def test_pushed_report_is_verified_before_it_is_read() -> None:
    adapter = InstantRtpAdapter.from_settings(
        {"base_url": "https://rtp.example", "request_secret": "x" * 16, "response_secret": RESPONSE_SECRET},
        AdapterContext(callback_url="https://gw.example/cb"),
    )

    with pytest.raises(SignatureError):
        adapter.parse_callback({"X-Signature": sign_payload(b"wrong-secret", b"{}")}, b"{}")


async def test_simulator_refuses_what_the_contract_refuses_in_its_own_format(rtp_rig: RigFactory) -> None:
    rig = await rtp_rig()
    body = json.dumps({"message_id": "M1", "instruction_id": "ins_1", "amount": "1.5.0"}).encode()
    headers = {
        "X-Signature": sign_payload(REQUEST_SECRET.encode(), body),
        "Idempotency-Key": "ins_1",
        "Content-Type": "application/json",
    }

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{rig.url}/v1/payments", data=body, headers=headers) as resp,
    ):
        status, raw = resp.status, await resp.read()

    assert status == 400
    code, description = read_error(raw)
    assert code == "FF01" and "payment-request" in description
    pointers = {e["pointer"] for e in json.loads(raw)["field_errors"]}
    assert "/amount" in pointers
    assert rig.sim.describe() == []


def test_request_contract_names_every_failing_field_best_match_first() -> None:
    with pytest.raises(ContractError) as caught:
        validate(REQUEST, {"message_id": "M1", "amount": 12.5})

    pointers = [e.pointer for e in caught.value.errors]
    assert caught.value.message.startswith("not a valid payment-request")
    assert "/amount" in pointers and "" in pointers  # a wrong type, and the missing required fields
