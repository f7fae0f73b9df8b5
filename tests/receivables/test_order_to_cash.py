"""Order to cash with the bank simulator on loopback and the gateway's scheduled statement fetch (issue 13).

A distributor order reserves credit → receivable → an incoming transfer injected on the bank
simulator → the ``statement-fetch`` job imports the camt.054 → the receipt matches the receivable
→ the credit is restored → the books balance. The next day's camt.053 brings the same credit
again: stored, no second receipt, no reconciliation break.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from gateway.domain.clock import system_clock
from tests.receivables.support import balances, call, receivable
from tests.support import Database, LiveGateway, start_gateway, stop_gateway

RF = "RF18539007547034"


@pytest.fixture
async def bank_gateway(database: Database) -> AsyncIterator[LiveGateway]:
    """The gateway with its bank simulator on a loopback port; nothing scheduled runs by itself."""
    gw = await start_gateway(database, dispatch=False, poll=False)
    try:
        yield gw
    finally:
        await stop_gateway(gw)


async def _inject(gw: LiveGateway, **transfer: str) -> dict:
    url = gw.runtime.settings.section("partners")["iso20022_bank"]["base_url"]
    async with gw.session.post(f"{url}/_sim/incoming-transfers", json=transfer) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def test_order_to_cash_through_the_bank_simulator_and_the_scheduled_fetch(bank_gateway: LiveGateway) -> None:
    gw = bank_gateway
    finance = await gw.new_key("treasury", ("finance",))
    await call(gw, "PUT", "/v1/credit-lines/nord", finance, json={"currency": "EUR", "limit": "5000.00"}, status=200)
    order = {"amount": {"value": "1500.00", "currency": "EUR"}, "order_reference": "SO-9"}
    decision = await call(gw, "POST", "/v1/credit-lines/nord/reservations", gw.key, json=order, status=200)
    assert (decision["decision"], decision["available"]["value"]) == ("approved", "3500.00")
    body = receivable("INV-9001", "1450.00", structured_reference=RF, reservation_id=decision["reservation"]["id"])
    invoice = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201)

    injected = await _inject(
        gw,
        payer_name="Distributor Nord GmbH",
        payer_iban="DE44500105175407324931",
        amount="1450.00",
        currency="EUR",
        creditor_reference="RF18 5390 0754 7034",
        remittance_text="INV-9001 order SO-9",
        end_to_end_id="NORD-PAY-77",
    )
    scheduler = gw.runtime.new_scheduler()
    assert await scheduler.run_now("statement-fetch") == 1  # the camt.054 notification of the credit
    # another process finds the job's lease taken: the fetch runs once per interval, not once per process
    other = gw.runtime.new_scheduler()
    other.owner = "another-process"
    assert await other.run_now("statement-fetch") is None

    paid = await call(gw, "GET", f"/v1/receivables/{invoice['id']}", gw.key, status=200)
    assert paid["status"] == "paid"
    line = (await call(gw, "GET", "/v1/credit-lines/nord", finance, status=200))["lines"][0]
    assert (line["used"]["value"], line["available"]["value"]) == ("0.00", "5000.00")
    (receipt,) = (await call(gw, "GET", "/v1/receipts?state=matched", finance, status=200))["items"]
    assert (receipt["amount"]["value"], receipt["distributor"]) == ("1450.00", "nord")
    books = await balances(gw.runtime.engine)
    assert books["distributor:nord:receivable"] == 0 and books["receipts:unapplied"] == 0
    assert books["partner:iso20022_bank:bank"] == 145000 == -books["bu:erp-europe:revenue"]
    assert sum(books.values()) == 0

    # the same run again adds nothing
    again = await gw.runtime.statement_fetcher.fetch()
    assert again.stored == 0 and {f.outcome for f in again.files} == {"empty"}

    # the next day the camt.053 of the day the credit was booked is final and is fetched: the line is
    # stored (same bank reference as the notification's), but it is no second receipt and no break
    tomorrow = system_clock() + timedelta(days=1)
    gw.runtime.statement_fetcher.clock = lambda: tomorrow
    next_day = await gw.runtime.statement_fetcher.fetch()
    stored = [f for f in next_day.files if f.outcome == "stored"]
    assert [(f.name.split()[0], f.lines) for f in stored] == [("camt.053", 1)], next_day.as_dict()
    receipts = (await call(gw, "GET", "/v1/receipts", finance, status=200))["items"]
    assert len(receipts) == 1
    assert await balances(gw.runtime.engine) == books
    await call(gw, "POST", "/v1/recon/run", finance, status=200)
    breaks = (await call(gw, "GET", "/v1/recon/breaks?state=all", finance, status=200))["items"]
    assert breaks == []
    assert injected["servicer_reference"].startswith("SIMCT")


async def test_an_unmatched_transfer_waits_in_finances_queue(bank_gateway: LiveGateway) -> None:
    gw = bank_gateway
    finance = await gw.new_key("treasury", ("finance",))
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("INV-1", "80.00"), status=201)
    await _inject(gw, payer_name="Somebody Else", amount="12.34", remittance_text="what is this")
    report = await gw.runtime.statement_fetcher.fetch(partner="iso20022_bank")
    assert report.stored == 1 and report.as_dict()["gaps"] == []
    (receipt,) = (await call(gw, "GET", "/v1/receipts?state=unmatched", finance, status=200))["items"]
    assert receipt["amount"]["value"] == "12.34"
    books = await balances(gw.runtime.engine)
    assert books["receipts:unapplied"] == -1234 and sum(books.values()) == 0
