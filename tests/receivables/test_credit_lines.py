"""Distributor credit lines: limit, used, available; reservations race-free, converted, expired, blocked by overdue."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from gateway.domain.clock import system_clock
from gateway.store.creditlines import expire_reservations
from tests.receivables.camt import Credit, camt053
from tests.receivables.support import balances, call, receivable
from tests.support import LiveGateway


async def _line(gw: LiveGateway, key: str, limit: str, distributor: str = "nord") -> dict:
    body = {"currency": "EUR", "limit": limit}
    return await call(gw, "PUT", f"/v1/credit-lines/{distributor}", key, json=body, status=200)


def _reserve(amount: str, **extra: str) -> dict:
    return {"amount": {"value": amount, "currency": "EUR"}, **extra}


async def test_fifty_concurrent_reservations_never_pass_the_limit(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    await _line(gw, finance, "1000.00")
    answers = await asyncio.gather(
        *(
            call(gw, "POST", "/v1/credit-lines/nord/reservations", gw.key, json=_reserve("70.00"), status=200)
            for _ in range(50)
        )
    )
    approved = [a for a in answers if a["decision"] == "approved"]
    declined = [a for a in answers if a["decision"] == "declined"]
    assert len(approved) == 14 and len(declined) == 36  # 14 * 70 = 980 <= 1000 < 15 * 70
    assert {a["reason"] for a in declined} == {"limit"}
    line = (await call(gw, "GET", "/v1/credit-lines/nord", finance, status=200))["lines"][0]
    assert (line["reserved"]["value"], line["available"]["value"]) == ("980.00", "20.00")


async def test_a_reservation_replays_by_key_and_a_bad_one_is_refused(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    declined = await call(gw, "POST", "/v1/credit-lines/nord/reservations", gw.key, json=_reserve("1.00"), status=200)
    assert (declined["decision"], declined["reason"]) == ("declined", "no_credit_line")
    await call(gw, "GET", "/v1/credit-lines/nord", finance, status=404)
    await _line(gw, finance, "100.00")
    path = "/v1/credit-lines/nord/reservations"
    first = await call(
        gw, "POST", path, gw.key, json=_reserve("60.00", order_reference="SO-1"), status=200, idempotency_key="o-1"
    )
    again = await call(
        gw, "POST", path, gw.key, json=_reserve("60.00", order_reference="SO-1"), status=200, idempotency_key="o-1"
    )
    assert first == again and first["decision"] == "approved" and first["available"]["value"] == "40.00"
    await call(gw, "POST", path, gw.key, json=_reserve("61.00"), status=409, idempotency_key="o-1")
    problem = await call(gw, "POST", path, gw.key, json=_reserve("1.001"), status=422)
    assert problem["errors"][0]["pointer"] == "/amount/value"
    problem = await call(
        gw, "PUT", "/v1/credit-lines/nord", finance, json={"currency": "EUR", "limit": "x"}, status=422
    )
    assert problem["errors"][0]["pointer"] == "/limit"
    await call(gw, "PUT", "/v1/credit-lines/nord", gw.key, json={"currency": "EUR", "limit": "1"}, status=403)


async def test_reservations_expire_and_overdue_receivables_block_new_ones(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    await _line(gw, finance, "500.00")
    await call(gw, "POST", "/v1/credit-lines/nord/reservations", gw.key, json=_reserve("500.00"), status=200)
    async with gw.runtime.engine.begin() as conn:
        assert await expire_reservations(conn, system_clock()) == 0  # not yet
    # the scheduler's job, a day and more later (credit_lines.reservation_ttl_seconds: 86400)
    later = system_clock() + timedelta(days=2)
    scheduler = gw.runtime.new_scheduler()
    scheduler.services = dataclasses.replace(scheduler.services, clock=lambda: later)
    assert await scheduler.expire_credit_reservations() == 1
    assert await scheduler.expire_credit_reservations() == 0
    line = (await call(gw, "GET", "/v1/credit-lines/nord", finance, status=200))["lines"][0]
    assert line["available"]["value"] == "500.00"
    # an invoice past due by more than the grace (7 days) blocks new reservations
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("OLD-1", "10.00", due="2020-01-31"), status=201)
    blocked = await call(gw, "POST", "/v1/credit-lines/nord/reservations", gw.key, json=_reserve("1.00"), status=200)
    assert (blocked["decision"], blocked["reason"], blocked["overdue"]["invoice_number"]) == (
        "declined",
        "overdue",
        "OLD-1",
    )
    assert blocked["available"]["value"] == "490.00"


async def test_order_on_credit_to_receipt_restores_credit_with_balanced_books(intake_gateway: LiveGateway) -> None:
    """The issue's end-to-end: reserve → receivable → transfer on a bank statement → matched → credit restored."""
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    await _line(gw, finance, "5000.00")
    decision = await call(
        gw,
        "POST",
        "/v1/credit-lines/nord/reservations",
        gw.key,
        json=_reserve("1500.00", order_reference="SO-9"),
        status=200,
    )
    reservation = decision["reservation"]
    assert decision["available"]["value"] == "3500.00"
    body = receivable("INV-9001", "1450.00", structured_reference="RF18539007547034", reservation_id=reservation["id"])
    invoice = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201)
    line = (await call(gw, "GET", "/v1/credit-lines/nord", finance, status=200))["lines"][0]
    assert (line["reserved"]["value"], line["open_receivables"]["value"], line["available"]["value"]) == (
        "0.00",
        "1450.00",
        "3550.00",
    )
    await call(gw, "POST", "/v1/receivables", gw.key, json={**body, "invoice_number": "INV-9002"}, status=409)

    statement = camt053("STMT-E2E", [Credit("1450.00", reference="RF18 5390 0754 7034", text="INV-9001")])
    await call(gw, "POST", "/v1/statements", finance, data=statement, status=201)
    paid = await call(gw, "GET", f"/v1/receivables/{invoice['id']}", gw.key, status=200)
    assert paid["status"] == "paid"
    line = (await call(gw, "GET", "/v1/credit-lines/nord", finance, status=200))["lines"][0]
    assert (line["used"]["value"], line["available"]["value"]) == ("0.00", "5000.00")
    books = await balances(gw.runtime.engine)
    assert books["distributor:nord:receivable"] == 0 and books["receipts:unapplied"] == 0
    assert books["partner:iso20022_bank:bank"] == 145000 == -books["bu:erp-europe:revenue"]
    assert sum(books.values()) == 0


async def test_a_credit_that_became_a_receipt_is_no_reconciliation_break(intake_gateway: LiveGateway) -> None:
    """Money in is matched to receivables; reconciliation does not call the same credit an unexpected line."""
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    body = receivable("INV-7001", "80.00", structured_reference="RF18539007547034")
    await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201)
    statement = camt053(
        "STMT-RCT",
        [Credit("80.00", reference="RF18 5390 0754 7034", text="INV-7001"), Credit("12.34", text="nobody knows")],
    )
    await call(gw, "POST", "/v1/statements", finance, data=statement, status=201)
    await call(gw, "POST", "/v1/recon/run", finance, status=200)
    breaks = (await call(gw, "GET", "/v1/recon/breaks?state=all", finance, status=200))["items"]
    # the matched receipt is explained; the credit nobody could match waits as a break (and in finance's queue)
    assert [(b["kind"], b["subject"]) for b in breaks] == [("unexpected_line", "ln_1_2")], breaks
    books = await balances(gw.runtime.engine)
    assert books["suspense"] == -1234 and sum(books.values()) == 0
