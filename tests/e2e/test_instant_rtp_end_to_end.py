"""Instant payments end to end: gateway + instant_rtp simulator on loopback ports.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway_simulators.core import Simulator
from gateway_simulators.instant_rtp import SIMULATOR
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

REQUEST_SECRET = "rtp-request-secret-e2e"
RESPONSE_SECRET = "rtp-response-secret-e2e"


def instant_instruction(**changes: Any) -> dict[str, Any]:
    """An instant USD payment between US accounts."""
    body = example_instruction(
        **{
            "urgency": "instant",
            "currency": "USD",
            "amount": "750.00",
            "debtor": {"name": "HE Appliances US LLC", "account": {"number": "123456789", "routing": "021000021"}},
            "creditor": {"name": "Acme Supplies Inc", "account": {"number": "987654321", "routing": "021000021"}},
            **changes,
        }
    )
    del body["requested_execution_date"]  # instant: now
    return body


async def start(
    database: Database, scenario: dict[str, Any] | None = None, adapter: dict[str, Any] | None = None, **overrides: Any
) -> LiveGateway:
    sim: dict[str, Any] = {"request_secret": REQUEST_SECRET, "callback_secret": RESPONSE_SECRET}
    if scenario is not None:
        sim["scenario"] = scenario
    return await start_gateway(
        database,
        extra_simulators={"instant_rtp": sim},
        partners__instant_rtp={"request_secret": REQUEST_SECRET, "response_secret": RESPONSE_SECRET, **(adapter or {})},
        **overrides,
    )


def partner_of(gw: LiveGateway) -> Simulator:
    return gw.simulators["instant_rtp"].runner.app[SIMULATOR]


async def post(gw: LiveGateway, body: dict[str, Any]) -> str:
    resp = await gw.post_instruction(body)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


@pytest.fixture
async def instant_gateway(database: Database) -> AsyncIterator[LiveGateway]:
    gw = await start(database)
    try:
        yield gw
    finally:
        await stop_gateway(gw)


async def test_instant_payment_settles_within_a_second(instant_gateway: LiveGateway) -> None:
    started = time.monotonic()
    instruction_id = await post(instant_gateway, instant_instruction())
    view = await instant_gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)
    elapsed = time.monotonic() - started

    assert view["status"] == "settled" and elapsed < 1.0
    assert view["adapter"] == "instant_rtp" and view["partner_reference"]
    assert applied(view) == ["received", "accepted", "routed", "settled"]
    assert view["events"][-1]["partner_status"] == "ACSC"
    assert [(p["submissions"], p["status"], p["currency"]) for p in partner_of(instant_gateway).describe()] == [
        (1, "settled", "USD")
    ]


async def test_instant_rejection_carries_the_partner_reason_code(instant_gateway: LiveGateway) -> None:
    creditor = {"name": "Acme Supplies REJECT-AC03", "account": {"number": "987654321", "routing": "021000021"}}
    instruction_id = await post(instant_gateway, instant_instruction(creditor=creditor))
    view = await instant_gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)

    assert view["status"] == "rejected"
    assert view["events"][-1]["reason_code"] == "AC03"


async def test_hang_once_past_the_timeout_still_settles_with_one_payment(database: Database) -> None:
    hang = {"name": "hang-once", "faults": [{"kind": "hang", "after": True, "seconds": 1.5}]}
    gw = await start(
        database,
        scenario=hang,
        adapter={"timeout_seconds": 0.3},
        dispatch__backoff_base_seconds=0.05,
    )
    try:
        instruction_id = await post(gw, instant_instruction())
        view = await gw.wait_for(instruction_id, lambda v: v["status"] in FINAL)

        assert view["status"] == "settled"
        assert applied(view) == ["received", "accepted", "routed", "settled"]
        # resolved by asking again (status query or resubmit with the same key): one payment, paid once
        payments = partner_of(gw).describe()
        assert [(p["instruction_id"], p["status"]) for p in payments] == [(instruction_id, "settled")]
        submits = [e.outcome for e in partner_of(gw).journal.select({"kind": "submit"})]
        assert submits.count("created") == 1 and set(submits) <= {"created", "replayed"}
    finally:
        await stop_gateway(gw)
