"""ACH end to end: gateway + ODFI file-drop simulator on loopback; cut-off, settlement by poll, pushed returns.

Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway_adapters.ach_nacha import AchNachaAdapter
from gateway_simulators.ach_nacha import ODFI, FileDrop
from tests.support import FINAL, Database, LiveGateway, applied, example_instruction, start_gateway, stop_gateway

API_KEY = "ach-api-key-for-e2e"
CALLBACK_SECRET = "ach-callback-secret-for-e2e"


@pytest.fixture
async def ach_gateway(database: Database, tmp_path: Path) -> AsyncIterator[LiveGateway]:
    gw = await start_gateway(
        database,
        extra_simulators={
            "ach_nacha": {
                "api_key": API_KEY,
                "callback_secret": CALLBACK_SECRET,
                "settle_delay": 0.1,
                "return_delay": 0.1,
            }
        },
        partners__ach_nacha={
            "api_key": API_KEY,
            "callback_secret": CALLBACK_SECRET,
            "spool_dir": str(tmp_path / "ach"),
        },
        dispatch__status_poll_interval_seconds=0.2,
        dispatch__status_poll_after_seconds=0,
    )
    try:
        yield gw
    finally:
        await stop_gateway(gw)


def ach_instruction(creditor_name: str = "Acme Supplies Inc") -> dict[str, Any]:
    body = example_instruction(
        currency="USD",
        amount="1250.00",
        debtor={"name": "HE Appliances US LLC", "account": {"number": "123456789", "routing": "011000015"}},
        creditor={"name": creditor_name, "account": {"number": "987654321", "routing": "021000021"}},
    )
    del body["requested_execution_date"]
    return body


def adapter_of(gw: LiveGateway) -> AchNachaAdapter:
    adapter = gw.runtime.adapters["ach_nacha"]
    assert isinstance(adapter, AchNachaAdapter)
    return adapter


def drop_of(gw: LiveGateway) -> FileDrop:
    return gw.simulators["ach_nacha"].runner.app[ODFI]


async def post(gw: LiveGateway, body: dict[str, Any]) -> str:
    resp = await gw.post_instruction(body)
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_ach_payment_waits_for_the_cutoff_then_settles_by_poll(ach_gateway: LiveGateway) -> None:
    instruction_id = await post(ach_gateway, ach_instruction())
    submitted = await ach_gateway.wait_for(instruction_id, lambda v: v["status"] == "submitted")
    await asyncio.sleep(0.5)  # polls before the cut-off find nothing to report
    still = await ach_gateway.get_instruction(instruction_id)

    await adapter_of(ach_gateway).run_cutoff()
    view = await ach_gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)

    assert still["status"] == "submitted" and drop_of(ach_gateway).files  # delivered only at the cut-off
    assert view["status"] == "settled" and view["events"][-1]["source"] == "poll"
    assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
    assert view["adapter"] == "ach_nacha" and view["partner_reference"] == submitted["partner_reference"]
    entries = drop_of(ach_gateway).entries
    assert [(t, b.status, b.entry.amount_cents) for t, b in entries.items()] == [
        (view["partner_reference"], "settled", 125000)
    ]


async def test_returned_entry_settles_then_returns_with_its_reason_code(ach_gateway: LiveGateway) -> None:
    instruction_id = await post(ach_gateway, ach_instruction("Acme RETURN-R01"))
    await ach_gateway.wait_for(instruction_id, lambda v: v["status"] == "submitted")

    await adapter_of(ach_gateway).run_cutoff()
    view = await ach_gateway.wait_for(instruction_id, lambda v: v["status"] == "returned")

    assert applied(view)[-2:] == ["settled", "returned"]
    assert view["events"][-1]["reason_code"] == "R01"
    assert [j.http_status for j in drop_of(ach_gateway).journal.entries if j.kind == "callback"] == [200]


async def test_many_payments_and_repeated_cutoffs_book_no_entry_twice(ach_gateway: LiveGateway) -> None:
    ids = [await post(ach_gateway, ach_instruction(f"Receiver {n}")) for n in range(5)]
    for instruction_id in ids:
        await ach_gateway.wait_for(instruction_id, lambda v: v["status"] == "submitted")
    adapter = adapter_of(ach_gateway)

    await adapter.run_cutoff()
    await adapter.run_cutoff()
    for instruction_id in ids:
        await ach_gateway.wait_for(instruction_id, lambda v: v["status"] in FINAL)

    entries = drop_of(ach_gateway).entries
    assert len(entries) == 5 and {b.received for b in entries.values()} == {1}
    assert len(drop_of(ach_gateway).files) == 1
