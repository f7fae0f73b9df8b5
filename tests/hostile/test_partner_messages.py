"""Issue 11, reproductions 4 and 6: validly signed but hostile partner messages are a 4xx, counted, logged once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.config import load_settings
from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_simulators.card_acquirer.app import signed_webhook
from tests.hostile.signing import CALLBACK_SIGNING
from tests.support import LiveGateway


async def _callback(gw: LiveGateway, adapter: str, body: bytes, content_type: str = "application/json") -> Any:
    header, secret = CALLBACK_SIGNING[adapter]
    headers = {"Content-Type": content_type, header: sign_payload(secret.encode(), body)}
    return await gw.session.post(f"{gw.url}/v1/partners/{adapter}/callbacks", data=body, headers=headers)


def _counted(gw: LiveGateway, adapter: str, result: str) -> float:
    value = gw.runtime.metrics.registry.get_sample_value(
        "gateway_partner_callbacks_total", {"adapter": adapter, "result": result}
    )
    return value or 0.0


def _card_event(**changes: Any) -> bytes:
    body, _ = signed_webhook({"webhook_secret": "x" * 8}, "ins_00000000000000000000000000", "settled")
    event = json.loads(body)
    event.update(changes)
    return json.dumps(event).encode()


def _instant_report(**changes: Any) -> bytes:
    report = {
        "message_id": "MSG-1",
        "created_at": "2026-03-01T10:00:00Z",
        "original_message_id": "REQ-1",
        "instruction_id": "ins_00000000000000000000000000",
        "end_to_end_id": "E2E-1",
        "transaction_id": "TX-1",
        "status": "ACSC",
        "amount": "10.00",
        "currency": "USD",
        **changes,
    }
    return json.dumps(report).encode()


@pytest.mark.parametrize(
    ("adapter", "body"),
    [
        pytest.param("card_acquirer", _card_event(created=100000000000000000000), id="card-created-1e20"),
        pytest.param("card_acquirer", _card_event(created=-1), id="card-created-negative"),
        pytest.param("card_acquirer", b"[" * 10_000 + b"]" * 10_000, id="card-10k-deep"),
        pytest.param("card_acquirer", b'{"id": "evt_1", "id": "evt_2"}', id="card-duplicate-key"),
        pytest.param("instant_rtp", _instant_report(created_at="garbage"), id="instant-created-garbage"),
        pytest.param("instant_rtp", _instant_report(created_at="2026-03-01T10:00:00"), id="instant-no-offset"),
        pytest.param("instant_rtp", _instant_report(created_at="2026-03-01T23:58:60Z"), id="instant-bad-leap"),
        pytest.param("instant_rtp", b"[" * 10_000 + b"]" * 10_000, id="instant-10k-deep"),
        pytest.param("instant_rtp", b'{"amount": 1' + b"0" * 5000 + b"}", id="instant-huge-integer"),
    ],
)
async def test_signed_hostile_partner_message_is_422_and_counted(
    gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture, adapter: str, body: bytes
) -> None:
    before = _counted(gateway, adapter, "contract-violation")
    resp = await _callback(gateway, adapter, body)
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert _counted(gateway, adapter, "contract-violation") == before + 1


async def test_a_leap_second_is_read_not_refused(gateway: LiveGateway, no_errors_logged: Any) -> None:
    resp = await _callback(gateway, "instant_rtp", _instant_report(created_at="2026-12-31T23:59:60Z"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"applied": 0, "ignored": 0, "unknown": 1}
    assert _counted(gateway, "instant_rtp", "accepted") == 1


async def test_unsigned_callbacks_are_counted(gateway: LiveGateway) -> None:
    resp = await gateway.session.post(f"{gateway.url}/v1/partners/card_acquirer/callbacks", data=b"{}")
    assert resp.status == 401
    assert _counted(gateway, "card_acquirer", "invalid-signature") == 1


async def test_a_report_about_601_unknown_payments_logs_one_warning_naming_them(
    gateway: LiveGateway, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    transactions = tuple(TransactionStatus(status="ACSC", instruction_id=f"ins_unknown_{i:04d}") for i in range(601))
    report = StatusReport(
        message_id="MSG601",
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
        original_message_id="ORIG601",
        payments=(PaymentInformationStatus("PMT1", transactions=transactions),),
    )
    resp = await _callback(gateway, "iso20022_bank", build_pain002(report), "application/xml")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["unknown"] == 601
    warnings = [r for r in no_errors_logged.records if "did not route" in r.getMessage()]
    assert len(warnings) == 1
    assert "601" in warnings[0].getMessage() and "ins_unknown_0000" in warnings[0].getMessage()


async def test_a_callback_that_fails_inside_the_gateway_is_counted_and_answered_as_problem(database: Any) -> None:
    from tests.plugins import crashing_callback
    from tests.support import start_gateway, stop_gateway

    card = load_settings(env={}).section("partners")["card_acquirer"]
    gw = await start_gateway(
        database,
        simulators=False,
        dispatch=False,
        poll=False,
        extra_plugins=(crashing_callback,),
        partners__crashing_callbacks=dict(card),
    )
    try:
        resp = await gw.session.post(f"{gw.url}/v1/partners/crashing_callbacks/callbacks", data=b"{}")
        assert resp.status == 500
        assert resp.content_type == "application/problem+json"
        assert "Traceback" not in await resp.text()
        assert _counted(gw, "crashing_callbacks", "internal") == 1
    finally:
        await stop_gateway(gw)
