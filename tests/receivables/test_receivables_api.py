"""Receivables and receipts through the live API: registered once, matched from statements, the queue worked."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.store.tables import instructions, receipts
from tests.receivables.camt import Credit, camt053
from tests.receivables.support import balances, call, receivable
from tests.support import LiveGateway

RF_A = "RF18539007547034"  # ISO 11649's own example
RF_B = "RF712348231"


async def test_a_receivable_is_registered_once_and_read_back(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    body = receivable(
        "INV-1001", "1200.00", structured_reference="RF18 5390 0754 7034", payer_iban="DE44500105175407324931"
    )
    first = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201, idempotency_key="k-1")
    assert (first["status"], first["structured_reference"], first["outstanding"]["value"]) == ("open", RF_A, "1200.00")
    assert first["payer_account"].endswith("4931") and "DE44" not in first["payer_account"]
    replay = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201, idempotency_key="k-1")
    assert replay == first
    changed = {**body, "amount": {"value": "1.00", "currency": "EUR"}}
    await call(gw, "POST", "/v1/receivables", gw.key, json=changed, status=409, idempotency_key="k-1")
    duplicate = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=409)
    assert duplicate["errors"] == [{"pointer": "/invoice_number", "detail": "duplicate invoice number"}]
    other_bu = await gw.new_key("retail")
    await call(gw, "POST", "/v1/receivables", other_bu, json=body, status=201)  # per business unit
    assert (await call(gw, "GET", f"/v1/receivables/{first['id']}", gw.key, status=200))["id"] == first["id"]
    await call(gw, "GET", f"/v1/receivables/{first['id']}", other_bu, status=404)


async def test_bad_receivables_are_422_with_the_failing_pointer(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    cases: list[tuple[dict[str, Any], str]] = [
        (receivable("INV-1", "10.00", structured_reference="RF19539007547034"), "/structured_reference"),
        (receivable("INV-2", "10.001"), "/amount/value"),
        (receivable("INV-3", "10.00", due="2026-02-30"), "/due_date"),
        ({**receivable("INV-4", "10.00"), "amount": {"value": "1", "currency": "XXQ"}}, "/amount/currency"),
        (receivable("INV-5", "10.00", payer_iban="DE00500105175407324931"), "/payer_iban"),
        (receivable("bad invoice", "10.00"), "/invoice_number"),
    ]
    for body, pointer in cases:
        problem = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=422)
        assert problem["errors"][0]["pointer"] == pointer, problem
    assert (await call(gw, "GET", "/v1/receivables", gw.key, status=200))["items"] == []


async def test_list_filters_and_pages(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    for n in range(3):
        await call(
            gw, "POST", "/v1/receivables", gw.key, json=receivable(f"A-{n}", "5.00", due="2020-01-01"), status=201
        )
    await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("B-1", "5.00", distributor="sud"), status=201)
    page = await call(gw, "GET", "/v1/receivables?distributor=nord&limit=2", gw.key, status=200)
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await call(gw, "GET", f"/v1/receivables?distributor=nord&cursor={page['next_cursor']}", gw.key, status=200)
    assert [i["invoice_number"] for i in page["items"] + rest["items"]] == ["A-2", "A-1", "A-0"]
    overdue = await call(gw, "GET", "/v1/receivables?overdue=true", gw.key, status=200)
    assert {i["invoice_number"] for i in overdue["items"]} == {"A-0", "A-1", "A-2"}
    assert all(i["overdue"] for i in overdue["items"])
    paid = await call(gw, "GET", "/v1/receivables?status=paid,written_off", gw.key, status=200)
    assert paid["items"] == []
    for bad in ("status=late", "overdue=yes", "distributor=%20", "colour=red", "cursor=x"):
        await call(gw, "GET", f"/v1/receivables?{bad}", gw.key, status=400)


async def test_statement_credits_are_matched_by_reference_text_and_payer_account(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    made = {}
    for body in (
        receivable("INV-A", "1000.00", structured_reference=RF_A),  # paid in part by reference
        receivable("INV-B", "300.00"),  # with INV-C in one payment named in the text
        receivable("INV-C", "200.00"),
        receivable("INV-D", "75.50", payer_iban="DE44500105175407324931"),  # by payer account + amount
        receivable("INV-E", "100.00", distributor="sud", structured_reference=RF_B),  # over-paid
    ):
        made[body["invoice_number"]] = await call(gw, "POST", "/v1/receivables", gw.key, json=body, status=201)
    before = await balances(gw.runtime.engine)
    assert before["distributor:nord:receivable"] == 157550 and before["bu:erp-europe:revenue"] == -167550
    statement = camt053(
        "STMT-1",
        [
            Credit("400.00", reference=RF_A, payer_iban=None),
            Credit("500.00", text="Payment invoices inv-b, INV-C thank you", payer_iban=None),
            Credit("75.50", text="December"),
            Credit("130.00", text=f"ref {RF_B[:4]} {RF_B[4:]}", payer_iban=None),
            Credit("42.00", text="who knows", payer_iban="FR7630006000011234567890189"),
        ],
    )
    imported = await call(gw, "POST", "/v1/statements", finance, data=statement, status=201)
    assert imported["lines"] == 5
    again = await call(gw, "POST", "/v1/statements", finance, data=statement, status=200)
    assert again["stored"] == 0
    async with gw.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(receipts)) == 5  # one per line, never two

    views = {
        r["invoice_number"]: r for r in (await call(gw, "GET", "/v1/receivables?limit=10", gw.key, status=200))["items"]
    }
    assert (views["INV-A"]["status"], views["INV-A"]["outstanding"]["value"]) == ("partially_paid", "600.00")
    assert views["INV-B"]["status"] == views["INV-C"]["status"] == views["INV-D"]["status"] == "paid"
    assert views["INV-E"]["status"] == "paid"

    listed = (await call(gw, "GET", "/v1/receipts?limit=10", finance, status=200))["items"]
    by_amount = {r["amount"]["value"]: r for r in listed}
    assert [a["rule"] for a in by_amount["400.00"]["allocations"]] == ["reference"]
    assert [a["invoice_number"] for a in by_amount["500.00"]["allocations"]] == ["INV-B", "INV-C"]
    assert by_amount["500.00"]["allocations"][0]["rule"] == "invoice_text"
    assert by_amount["75.50"]["allocations"][0]["rule"] == "payer_account"
    over = by_amount["130.00"]
    assert (over["state"], over["unapplied"]["value"], over["distributor"]) == ("on_account", "30.00", "sud")
    queue = (await call(gw, "GET", "/v1/receipts?state=unmatched", finance, status=200))["items"]
    assert [r["amount"]["value"] for r in queue] == ["42.00"]
    assert queue[0]["payer"]["account"].endswith("0189") and "FR76" not in queue[0]["payer"]["account"]

    after = await balances(gw.runtime.engine)
    assert after["partner:iso20022_bank:bank"] == 114750
    assert after["receipts:unapplied"] == -(3000 + 4200)  # the over-payment and the unmatched receipt
    assert after["distributor:nord:receivable"] == 60000 and after["distributor:sud:receivable"] == 0
    assert sum(after.values()) == 0
    await call(gw, "GET", "/v1/receipts", gw.key, status=403)  # finance only


async def test_finance_assigns_puts_on_account_and_refunds_unmatched_receipts(intake_gateway: LiveGateway) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance",))
    inv = await call(gw, "POST", "/v1/receivables", gw.key, json=receivable("INV-Q", "250.00"), status=201)
    statement = camt053(
        "STMT-Q",
        [Credit("100.00", text="part payment"), Credit("80.00", text="?"), Credit("20.00", text="oops")],
    )
    await call(gw, "POST", "/v1/statements", finance, data=statement, status=201)
    queue = (await call(gw, "GET", "/v1/receipts?state=unmatched", finance, status=200))["items"]
    assert sorted(r["amount"]["value"] for r in queue) == ["100.00", "20.00", "80.00"]

    hundred = next(r for r in queue if r["amount"]["value"] == "100.00")
    too_much = {"allocations": [{"receivable_id": inv["id"], "amount": {"value": "100.01", "currency": "EUR"}}]}
    problem = await call(gw, "POST", f"/v1/receipts/{hundred['id']}/assign", finance, json=too_much, status=422)
    assert problem["errors"][0]["pointer"] == "/allocations"
    part = {"allocations": [{"receivable_id": inv["id"], "amount": {"value": "60.00", "currency": "EUR"}}]}
    assigned = await call(gw, "POST", f"/v1/receipts/{hundred['id']}/assign", finance, json=part, status=200)
    assert (assigned["state"], assigned["unapplied"]["value"], assigned["distributor"]) == (
        "on_account",
        "40.00",
        "nord",
    )
    rest = {"allocations": [{"receivable_id": inv["id"], "amount": {"value": "40.00", "currency": "EUR"}}]}
    done = await call(gw, "POST", f"/v1/receipts/{hundred['id']}/assign", finance, json=rest, status=200)
    assert done["state"] == "matched"
    await call(gw, "POST", f"/v1/receipts/{hundred['id']}/assign", finance, json=rest, status=409)
    view = await call(gw, "GET", f"/v1/receivables/{inv['id']}", gw.key, status=200)
    assert (view["status"], view["paid"]["value"]) == ("partially_paid", "100.00")

    eighty = next(r for r in queue if r["amount"]["value"] == "80.00")
    kept = await call(
        gw, "POST", f"/v1/receipts/{eighty['id']}/on-account", finance, json={"distributor": "nord"}, status=200
    )
    assert (kept["state"], kept["distributor"]) == ("on_account", "nord")

    twenty = next(r for r in queue if r["amount"]["value"] == "20.00")
    refund = {
        "debtor": {"name": "HE Appliances Europe GmbH", "account": {"iban": "DE89370400440532013000"}},
        "creditor": {"name": "Distributor Nord GmbH", "account": {"iban": "DE44500105175407324931"}},
    }
    bad = {**refund, "creditor": {"name": "X", "account": {"iban": "DE00"}}}
    problem = await call(gw, "POST", f"/v1/receipts/{twenty['id']}/refund", finance, json=bad, status=422)
    assert problem["errors"][0]["pointer"].startswith("/creditor")
    refunded = await call(gw, "POST", f"/v1/receipts/{twenty['id']}/refund", finance, json=refund, status=200)
    assert refunded["state"] == "refunded" and refunded["refund_instruction_id"].startswith("ins_")
    again = await call(gw, "POST", f"/v1/receipts/{twenty['id']}/refund", finance, json=refund, status=200)
    assert again["refund_instruction_id"] == refunded["refund_instruction_id"]
    async with gw.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(instructions.c.reference, instructions.c.amount_minor))).all()
    assert [(r.reference, r.amount_minor) for r in rows] == [(f"RFD-{twenty['id'][4:]}", 2000)]
    books = await balances(gw.runtime.engine)
    assert books["receipts:unapplied"] == -8000  # only the 80.00 left on account
    assert sum(books.values()) == 0


async def test_a_refund_accepted_before_a_crash_is_completed_by_the_retry_never_paid_twice(
    intake_gateway: LiveGateway,
) -> None:
    gw = intake_gateway
    finance = await gw.new_key("treasury", ("finance", "instructions"))
    await call(gw, "POST", "/v1/statements", finance, data=camt053("STMT-R", [Credit("33.00", text="?")]), status=201)
    (receipt,) = (await call(gw, "GET", "/v1/receipts?state=unmatched", finance, status=200))["items"]
    parties = {
        "debtor": {"name": "HE Appliances Europe GmbH", "account": {"iban": "DE89370400440532013000"}},
        "creditor": {"name": "Distributor Nord GmbH", "account": {"iban": "DE44500105175407324931"}},
    }
    # the first attempt got as far as intake (the refund instruction is accepted), then the process died
    doc = {
        "reference": f"RFD-{receipt['id'][4:]}",
        "type": "refund",
        "amount": "33.00",
        "currency": "EUR",
        **parties,
        "remittance_information": {"unstructured": f"Refund of payment {receipt['id']}"},
    }
    headers = gw.headers(finance, **{"Idempotency-Key": f"receipt-refund:{receipt['id']}", "Contract-Version": "2.0"})
    async with gw.session.post(f"{gw.url}/v1/instructions", json=doc, headers=headers) as resp:
        assert resp.status == 202, await resp.text()
        accepted = (await resp.json())["id"]
    assert (await call(gw, "GET", f"/v1/receipts/{receipt['id']}", finance, status=200))["state"] == "unmatched"
    retried = await call(gw, "POST", f"/v1/receipts/{receipt['id']}/refund", finance, json=parties, status=200)
    assert (retried["state"], retried["refund_instruction_id"]) == ("refunded", accepted)
    async with gw.runtime.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(instructions)) == 1
    books = await balances(gw.runtime.engine)
    assert books["receipts:unapplied"] == 0 and sum(books.values()) == 0
