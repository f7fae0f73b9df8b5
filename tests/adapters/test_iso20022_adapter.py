"""The ISO 20022 bank adapter against its simulator on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.domain.status import Status
from gateway.errors import OutcomeUnknownError, PermanentPartnerError, SignatureError, TransientPartnerError
from gateway.partners.adapter import AdapterContext, PaymentOrder, StatusUpdate
from gateway.plugins.manager import Plugins
from gateway_adapters.iso20022_bank import Iso20022BankAdapter
from gateway_adapters.iso20022_bank.pain002 import StatusReport, build_pain002
from gateway_simulators.iso20022_bank import signed_status_report

OrderFactory = Callable[..., PaymentOrder]
#: ``bank_rig`` (tests/adapters/conftest.py) returns a rig: .adapter, .bank, .inbox, .settings
RigFactory = Callable[..., Awaitable[Any]]
AdapterFactory = Callable[..., Iso20022BankAdapter]
Serve = Callable[[Callable[[web.Request], Awaitable[web.Response]]], Awaitable[TestServer]]


async def settle(rig: Any) -> list[StatusUpdate]:
    """Let the bank finish its timeline; return every callback, parsed by the adapter."""
    await rig.bank.idle()
    updates: list[StatusUpdate] = []
    for headers, body in rig.inbox.received:
        updates.extend(rig.adapter.parse_callback(headers, body))
    return updates


# -- plugin registration and settings ------------------------------------------------


def test_plugin_registers_adapter_and_simulator_through_entry_point() -> None:
    plugins = Plugins()

    assert plugins.adapter_classes()["iso20022_bank"] is Iso20022BankAdapter
    assert plugins.simulator_factories()["iso20022_bank"] is not None


def test_settings_schema_fills_defaults_and_refuses_unknown_keys() -> None:
    schema = Iso20022BankAdapter.settings_schema
    validator = jsonschema.Draft202012Validator(schema)
    good = {"base_url": "https://bank.example", "request_secret": "x" * 16, "callback_secret": "y" * 16}

    assert list(validator.iter_errors(good)) == []
    assert [e.validator for e in validator.iter_errors({**good, "colour": "red"})] == ["additionalProperties"]
    assert {e.path[0] if e.path else e.message for e in validator.iter_errors({})} == {
        "'base_url' is a required property",
        "'request_secret' is a required property",
        "'callback_secret' is a required property",
    }
    assert schema["properties"]["timeout_seconds"]["default"] == 10
    assert schema["properties"]["signature_tolerance_seconds"]["default"] == 300


def test_capabilities_come_from_settings(new_order: OrderFactory) -> None:
    adapter = Iso20022BankAdapter.from_settings(
        {
            "base_url": "https://bank.example/",
            "request_secret": "x" * 16,
            "callback_secret": "y" * 16,
            "currencies": ["EUR", "SEK"],
            "max_amount": "5000.00",
        },
        AdapterContext(callback_url="https://gw.example/cb"),
    )

    assert adapter.capabilities.currencies == {"EUR", "SEK"}
    assert adapter.capabilities.account_kinds == {"iban"}
    assert adapter.capabilities.instant is False
    assert adapter.capabilities.refusal(new_order(amount="5000.01")) == "amount above 5000.00"
    assert adapter.capabilities.refusal(new_order(amount="4999.99")) is None
    assert adapter.capabilities.refusal(new_order(amount="10", currency="USD")) is not None
    assert "secret" not in repr(adapter)
    assert Path_exists(Iso20022BankAdapter.partner_contracts["pain.001.001.09"])


def Path_exists(path: str) -> bool:

    return Path(path).is_file()


# -- the happy path ---------------------------------------------------------------


async def test_submit_settles_through_signed_callbacks(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig()
    order = new_order()

    result = await rig.adapter.submit(order)
    updates = await settle(rig)

    assert result.status is Status.SUBMITTED
    assert result.partner_status == "ACTC"
    assert result.partner_reference.startswith("SIMB")
    assert [u.partner_status for u in updates] == ["ACSP", "ACSC"]
    assert [u.status for u in updates] == [None, Status.SETTLED]
    assert {u.instruction_id for u in updates} == {order.id}
    assert {u.partner_reference for u in updates} == {result.partner_reference}


async def test_submitting_the_same_order_twice_makes_one_payment(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig()
    order = new_order()

    first = await rig.adapter.submit(order)
    second = await rig.adapter.submit(order)  # a retry: new CreDtTm, same payment

    (payment,) = rig.bank.describe()
    assert payment["submissions"] == 2
    assert second.partner_reference == first.partner_reference
    assert second.status is first.status is Status.SUBMITTED


async def test_reject_rule_rejects_with_reason_code_in_callback(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rule = {"match": {"creditor_name": "Nordic"}, "outcome": "reject", "reason_code": "AC01"}
    rig = await bank_rig(rules=[rule])

    result = await rig.adapter.submit(new_order())
    final = (await settle(rig))[-1]

    assert result.status is Status.SUBMITTED
    assert final.status is Status.REJECTED
    assert final.reason_code == "AC01"
    assert final.partner_status == "RJCT"


async def test_builtin_demo_rule_rejects_creditor_named_reject_code(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    rig = await bank_rig()

    await rig.adapter.submit(new_order(creditor_name="Nordic Parts REJECT-AM04"))
    final = (await settle(rig))[-1]

    assert final.status is Status.REJECTED
    assert final.reason_code == "AM04"


async def test_reject_at_submit_is_a_rejected_submit_result(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rule = {"match": {"amount_min": "1000"}, "outcome": "reject", "reason_code": "AM04", "at": "submit"}
    rig = await bank_rig(rules=[rule])

    result = await rig.adapter.submit(new_order(amount="1250.00"))
    await rig.bank.idle()

    assert result.status is Status.REJECTED
    assert result.reason_code == "AM04"
    assert result.partner_status == "RJCT"
    assert result.partner_reference.startswith("SIMB")
    assert rig.inbox.received == []  # the answer was final: no callbacks follow


# -- callbacks: signatures, duplicates, order ---------------------------------------


async def test_forged_callback_signature_is_refused(bank_rig: RigFactory) -> None:
    rig = await bank_rig()
    body, headers = signed_status_report({"callback_secret": "not-the-bank"}, "ins_1", "INV-1", "ACSC")

    with pytest.raises(SignatureError, match="does not match"):
        rig.adapter.parse_callback(headers, body)


async def test_stale_callback_signature_is_refused(bank_rig: RigFactory) -> None:
    rig = await bank_rig()
    body, headers = signed_status_report(rig.settings, "ins_1", "INV-1", "ACSC", timestamp=int(time.time()) - 3600)

    with pytest.raises(SignatureError, match="tolerance"):
        rig.adapter.parse_callback(headers, body)


async def test_callback_without_signature_is_refused(bank_rig: RigFactory) -> None:
    rig = await bank_rig()
    body, _ = signed_status_report(rig.settings, "ins_1", "INV-1", "ACSC")

    with pytest.raises(SignatureError, match="missing"):
        rig.adapter.parse_callback({"Content-Type": "application/xml"}, body)


async def test_tampered_callback_body_is_refused_before_parsing(bank_rig: RigFactory) -> None:
    rig = await bank_rig()
    body, headers = signed_status_report(rig.settings, "ins_1", "INV-1", "RJCT", "AC01")

    with pytest.raises(SignatureError):
        rig.adapter.parse_callback(headers, body.replace(b"RJCT", b"ACSC"))


async def test_callback_signature_is_checked_against_the_gateway_clock(
    bank_rig: RigFactory, make_adapter: AdapterFactory
) -> None:
    rig = await bank_rig()
    body, headers = signed_status_report(rig.settings, "ins_1", "INV-1", "ACSC")
    an_hour_later = datetime.fromtimestamp(time.time() + 3600, UTC)
    moved = make_adapter("http://127.0.0.1:9", clock=lambda: an_hour_later)

    assert rig.adapter.parse_callback(headers, body)[0].status is Status.SETTLED
    with pytest.raises(SignatureError, match="tolerance"):
        moved.parse_callback(headers, body)


async def test_duplicate_and_out_of_order_callbacks_parse_to_the_same_facts(
    bank_rig: RigFactory,
) -> None:
    rig = await bank_rig()
    settled = signed_status_report(rig.settings, "ins_1", "INV-1", "ACSC", account_servicer_reference="B1")
    late_ack = signed_status_report(rig.settings, "ins_1", "INV-1", "ACSP", account_servicer_reference="B1")

    first = rig.adapter.parse_callback(settled[1], settled[0])
    again = rig.adapter.parse_callback(settled[1], settled[0])
    late = rig.adapter.parse_callback(late_ack[1], late_ack[0])

    assert first == again  # a duplicate is the same update; the state machine drops it
    assert late[0].status is None  # a late acknowledgement can never move a payment back
    assert late[0].instruction_id == "ins_1"


# -- polling ---------------------------------------------------------------------


async def test_poll_agrees_with_callbacks(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig(rules=[{"match": {}, "outcome": "reject", "reason_code": "MS03"}])
    order = new_order()
    result = await rig.adapter.submit(order)

    before = await rig.adapter.poll(order)
    callbacks = await settle(rig)
    after = await rig.adapter.poll(order)

    assert before is not None and before.partner_status == "ACTC"
    assert after is not None
    assert (
        (after.status, after.reason_code, after.partner_status)
        == (
            callbacks[-1].status,
            callbacks[-1].reason_code,
            callbacks[-1].partner_status,
        )
        == (Status.REJECTED, "MS03", "RJCT")
    )
    assert after.partner_reference == result.partner_reference


async def test_poll_alone_learns_the_outcome_when_callbacks_are_off(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    rig = await bank_rig(send_callbacks=False)
    order = new_order()
    await rig.adapter.submit(order)

    await rig.bank.idle()
    update = await rig.adapter.poll(order)

    assert rig.inbox.received == []
    assert update is not None and update.status is Status.SETTLED


async def test_poll_of_unknown_payment_is_none(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig()

    assert await rig.adapter.poll(new_order(id="ins_never_sent")) is None


# -- failures --------------------------------------------------------------------


async def test_unavailable_bank_is_transient_with_retry_after(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig(unavailable_for=1, retry_after=7)
    order = new_order()

    with pytest.raises(TransientPartnerError) as caught:
        await rig.adapter.submit(order)
    retried = await rig.adapter.submit(order)

    assert caught.value.retry_after == 7
    assert caught.value.reason_code == "HTTP503"
    assert retried.status is Status.SUBMITTED
    assert len(rig.bank.describe()) == 1


async def test_refused_connection_is_transient(new_order: OrderFactory, make_adapter: AdapterFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        adapter = make_adapter(f"http://127.0.0.1:{port}")

        with pytest.raises(TransientPartnerError, match="unreachable"):
            await adapter.submit(new_order())


async def test_wrong_request_secret_is_permanent_with_bank_code(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig(request_secret="the-bank-expects-another")

    with pytest.raises(PermanentPartnerError) as caught:
        await rig.adapter.submit(new_order())

    assert caught.value.reason_code == "SIGNATURE_INVALID"
    assert rig.bank.describe() == []


async def test_order_the_schema_cannot_carry_never_leaves(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig()

    with pytest.raises(PermanentPartnerError) as caught:
        await rig.adapter.submit(new_order(reference="R" * 40))

    assert caught.value.reason_code == "FF01"
    assert "EndToEndId" in caught.value.message
    assert rig.bank.describe() == []


@pytest.mark.parametrize("signature", [None, "t=1,v1=deadbeef"], ids=["unsigned", "forged"])
async def test_untrusted_synchronous_answer_is_transient(
    new_order: OrderFactory, make_adapter: AdapterFactory, serve: Serve, signature: str | None
) -> None:
    order = new_order()
    report = StatusReport(message_id="M", created_at=datetime.now(UTC), original_message_id=order.id)
    body = build_pain002(report)

    async def impostor(request: web.Request) -> web.Response:
        headers = {"X-Signature": signature} if signature else {}
        return web.Response(status=202, body=body, content_type="application/xml", headers=headers)

    adapter = make_adapter(str((await serve(impostor)).make_url("")))

    with pytest.raises(TransientPartnerError, match="signature"):
        await adapter.submit(order)


async def test_bank_timeout_is_transient(new_order: OrderFactory, make_adapter: AdapterFactory, serve: Serve) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(status=202)

    adapter = make_adapter(str((await serve(slow)).make_url("")), timeout_seconds=0.1)

    with pytest.raises(OutcomeUnknownError, match=r"did not answer POST within 0\.1s"):
        await adapter.submit(new_order())  # the bank may have it: unknown, never a failure


async def test_no_full_iban_in_logs_or_errors(
    bank_rig: RigFactory, new_order: OrderFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig = await bank_rig(request_secret="the-bank-expects-another")
    order = new_order()
    ibans = {order.debtor.account.iban, order.creditor.account.iban}

    with pytest.raises(PermanentPartnerError) as caught:
        await rig.adapter.submit(order)
    rig_ok = await bank_rig()
    await rig_ok.adapter.submit(order)
    listing = str(rig_ok.bank.describe())

    for iban in ibans:
        assert iban not in caplog.text
        assert iban not in str(caught.value)
        assert iban not in listing
        assert iban[-4:] in listing  # masked, not dropped


async def test_a_failed_camt054_fetch_is_remembered_for_the_cache_window(
    make_adapter: AdapterFactory, serve: Serve
) -> None:
    asked: list[str] = []

    async def down(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(status=503)

    adapter = make_adapter(str((await serve(down)).make_url("")), notifications_cache_seconds=60)

    for _ in range(3):
        with pytest.raises(TransientPartnerError, match="HTTP 503"):
            await adapter.notifications()

    assert asked == ["/camt054"]


# -- bulk: many payments in one pain.001, one status report for many ---------------------------


#: bulk messages are the adapter's opt-in (``bulk_submit``), pooled reports the simulator's (``callback_batch_max``)
BULK = {"bulk_submit": True}


def _orders(new_order: OrderFactory, n: int, *, first: int = 1) -> list[PaymentOrder]:
    return [
        new_order(id=f"ins_01J00000000000000000000{i:02d}", reference=f"INV-BULK-{i:02d}")
        for i in range(first, first + n)
    ]


async def test_submit_many_sends_one_pain001_and_books_each_payment_once(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    rig = await bank_rig(BULK)
    orders = _orders(new_order, 5)

    results = await rig.adapter.submit_many(orders)

    submits = rig.bank.journal.select({"kind": "submit"})
    assert len(submits) == 1  # one message for the five payments
    assert [r.status for r in results] == [Status.SUBMITTED] * 5
    assert len({r.partner_reference for r in results}) == 5
    assert sorted(rig.bank.payments) == sorted(o.id for o in orders)


async def test_a_payment_sent_again_in_another_bulk_message_is_not_booked_twice(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    rig = await bank_rig(BULK)
    first = await rig.adapter.submit_many(_orders(new_order, 3))  # payments 1-3
    again = await rig.adapter.submit_many(_orders(new_order, 4, first=2))  # 2-3 again, with 4 and 5

    assert all(not isinstance(r, Exception) for r in again)
    assert len(rig.bank.payments) == 5  # 2 and 3 were recognised by their InstrId, not taken again
    assert again[0].partner_reference == first[1].partner_reference  # type: ignore[union-attr]
    assert again[1].partner_reference == first[2].partner_reference  # type: ignore[union-attr]
    assert all(p["submissions"] == 1 for p in rig.bank.describe())
    await rig.bank.idle()  # settled meanwhile: a resend is still answered as the first time (ACTC), never
    late = await rig.adapter.submit_many(_orders(new_order, 2, first=1))  # "settled" for a payment just routed
    assert [r.partner_status for r in late] == ["ACTC", "ACTC"]  # type: ignore[union-attr]


async def test_a_bulk_message_the_bank_refuses_falls_back_to_one_payment_at_a_time(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    rig = await bank_rig(BULK)
    await rig.adapter.submit(new_order(id="ins_01J0000000000000000000099", reference="INV-BULK-99", amount="7.00"))
    changed = new_order(id="ins_01J0000000000000000000099", reference="INV-BULK-99", amount="8.00")
    orders = [*_orders(new_order, 2), changed]  # the third is a known InstrId with other content: 409

    results = await rig.adapter.submit_many(orders)

    assert [r.status for r in results[:2]] == [Status.SUBMITTED] * 2  # type: ignore[union-attr]
    assert isinstance(results[2], PermanentPartnerError)
    assert rig.bank.payments["ins_01J0000000000000000000099"].tx.amount == Decimal("7.00")


async def test_the_bank_reports_many_payments_in_one_callback(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    rig = await bank_rig(BULK, callback_batch_window=0.05, callback_batch_max=500)
    orders = _orders(new_order, 4)
    await rig.adapter.submit_many(orders)

    updates = await settle(rig)

    settled = [u.instruction_id for u in updates if u.status is Status.SETTLED]
    assert sorted(settled) == sorted(o.id for o in orders)  # every payment settled exactly once
    assert len(rig.inbox.received) < 2 * len(orders)  # fewer reports than payments times steps


async def test_pooled_reports_travel_a_few_at_a_time_to_a_slow_gateway_and_keep_each_payments_order(
    bank_rig: RigFactory, new_order: OrderFactory
) -> None:
    # one report at a time made the gateway's answer time the bound on payments reported per second
    rig = await bank_rig(BULK, callback_batch_window=0.01, callback_batch_max=2, callback_batch_concurrency=3)
    rig.inbox.delay = 0.2
    orders = _orders(new_order, 12)
    await rig.adapter.submit_many(orders)

    updates = await settle(rig)

    assert rig.inbox.most_in_flight == 3  # more than one, never more than the setting
    assert all(len(rig.adapter.parse_callback(h, b)) <= 2 for h, b in rig.inbox.received)
    settled = [u.instruction_id for u in updates if u.status is Status.SETTLED]
    assert sorted(settled) == sorted(o.id for o in orders)  # each payment settled exactly once
    for order in orders:  # and reported in its own order: nothing after its final status
        statuses = [u.status for u in updates if u.instruction_id == order.id]
        assert statuses[-1] is Status.SETTLED and statuses.count(Status.SETTLED) == 1


WRONG_AMOUNT = {"kind": "wrong_amount", "amount_delta": "1.00"}
BUSY = {"kind": "http_error", "status": 503, "retry_after": 0}


async def test_faults_apply_per_payment_inside_a_bulk_message(bank_rig: RigFactory, new_order: OrderFactory) -> None:
    """A payload fault one payment drew spoils only its own answer; a transport fault one payment drew hits
    the request (so all its payments), once, and a resend of the same payments gets through."""
    rules = [
        {"name": "amt", "match": {"reference": "^INV-BULK-02$"}, "outcome": "settle", "faults": [WRONG_AMOUNT]},
        {"name": "busy", "match": {"reference": "^INV-BULK-04$"}, "outcome": "settle", "faults": [BUSY]},
    ]
    rig = await bank_rig(BULK, scenario={"name": "bulk-faults", "rules": rules})
    orders = _orders(new_order, 4)

    refused = await rig.adapter.submit_many(orders)  # payment 4 drew a 503: the whole message is refused
    assert all(isinstance(r, TransientPartnerError) for r in refused) and not rig.bank.payments
    again = await rig.adapter.submit_many(orders)  # payment 2 drew a wrong amount in the answer: only its line

    assert [type(r).__name__ for r in again] == ["SubmitResult", "TransientPartnerError"] + ["SubmitResult"] * 2
    assert sorted(rig.bank.payments) == sorted(o.id for o in orders)  # each payment booked once
    submits = rig.bank.journal.select({"kind": "submit"})
    assert [e.faults for e in submits] == [["http_error"], ["wrong_amount"]]  # each kind once per request
    third = await rig.adapter.submit_many(orders)  # each payment's fault struck its ``times`` (1): all clean
    assert all(not isinstance(r, Exception) for r in third)
