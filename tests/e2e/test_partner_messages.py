"""Partner messages end to end: what the gateway sent and what partners answered, masked, per payment.

Gateway + ISO 20022 bank simulator and card acquirer simulator on loopback; the API
(``GET /v1/instructions/{id}/partner-messages``), the stored rows and the console page.
Runs on SQLite and (with GATEWAY_TEST_DATABASE_URL) PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from gateway.domain.accounts import mask
from gateway.store.tables import partner_message_links, partner_messages
from tests.console.support import ConsoleUser
from tests.e2e.test_card_acquirer_end_to_end import API_KEY, pay_out
from tests.e2e.test_card_acquirer_end_to_end import start as start_with_acquirer
from tests.support import Database, LiveGateway, example_instruction, start_gateway, stop_gateway

DEBTOR_IBAN = "DE89370400440532013000"  # the contract's example (a published test IBAN)
CREDITOR_IBAN = "SE4550000000058398257466"
WALLET = "wal_nordic_parts_01"


async def messages(gw: LiveGateway, instruction_id: str, key: str | None = None) -> tuple[int, Any]:
    url = f"{gw.url}/v1/instructions/{instruction_id}/partner-messages"
    async with gw.session.get(url, headers=gw.headers(key)) as resp:
        return resp.status, await resp.json()


async def stored_rows(gw: LiveGateway) -> list[dict[str, Any]]:
    async with gw.runtime.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(partner_messages))).mappings()]


def seen(items: list[dict[str, Any]]) -> list[tuple[str, str, str, int | None]]:
    return [(m["direction"], m["kind"], m["method"], m["status_code"]) for m in items]


async def submit(gw: LiveGateway) -> str:
    resp = await gw.post_instruction(example_instruction())
    assert resp.status == 202, await resp.text()
    return (await resp.json())["id"]


async def test_a_settled_bank_payment_shows_its_pain001_answer_and_callback_with_ibans_masked(
    database: Database,
) -> None:
    gw = await start_gateway(database)
    try:
        instruction_id = await submit(gw)
        await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")

        status, page = await messages(gw, instruction_id)

        assert status == 200
        items = page["items"]
        assert seen(items) == [("out", "submit", "POST", None), ("in", "submit", "POST", 202)] + [
            ("in", "callback", "POST", 200)
        ] * (len(items) - 2)
        assert len(items) >= 3  # the bank's settlement report at least
        assert {m["partner"] for m in items} == {"iso20022_bank"}
        sent, answer, *callbacks = items
        assert sent["path"] == "/pain001" and sent["media_type"] == "application/xml"
        assert "<CstmrCdtTrfInitn>" in sent["body"] and instruction_id in sent["body"]
        assert mask(CREDITOR_IBAN) in sent["body"] and mask(DEBTOR_IBAN) in sent["body"]
        assert "pain.002" in answer["body"] and answer["size"] > 0 and not answer["truncated"]
        assert callbacks[-1]["path"] == "/v1/partners/iso20022_bank/callbacks" and "ACSC" in callbacks[-1]["body"]
        # the full account numbers are nowhere: not in the answer, not in the rows, not on the console page
        assert DEBTOR_IBAN not in json.dumps(page) and CREDITOR_IBAN not in json.dumps(page)
        rows = await stored_rows(gw)
        assert rows and all(DEBTOR_IBAN not in r["body"] and CREDITOR_IBAN not in r["body"] for r in rows)
        user = ConsoleUser.open(gw.url)
        try:
            assert (await user.sign_in(gw.key)).status == 303
            code, html = await user.page(f"/console/payments/{instruction_id}")
        finally:
            await user.close()
        assert code == 200 and "Partner messages" in html and "/pain001" in html
        assert "&lt;CstmrCdtTrfInitn&gt;" in html  # the XML is shown as text, escaped
        assert DEBTOR_IBAN not in html and CREDITOR_IBAN not in html and mask(CREDITOR_IBAN) in html
    finally:
        await stop_gateway(gw)


async def test_a_wallet_payout_keeps_the_acquirers_exchange_masked_and_never_its_api_key(
    database: Database,
) -> None:
    gw = await start_with_acquirer(database)
    try:
        instruction_id = await pay_out(gw)
        await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")

        status, page = await messages(gw, instruction_id)

        assert status == 200
        items = page["items"]
        assert seen(items)[:2] == [("out", "submit", "POST", None), ("in", "submit", "POST", 202)]
        assert ("in", "callback", "POST", 200) in seen(items)
        assert {m["partner"] for m in items} == {"card_acquirer"}
        sent = items[0]
        assert sent["path"] == "/v1/payouts" and sent["media_type"] == "application/json"
        assert json.loads(sent["body"])["destination"]["wallet"] == mask(WALLET)
        rows = await stored_rows(gw)
        for text in [json.dumps(page), *(r["body"] for r in rows)]:
            assert WALLET not in text and API_KEY not in text and "Bearer" not in text
    finally:
        await stop_gateway(gw)


async def test_a_business_unit_reads_only_its_own_payments_messages_and_finance_reads_all(
    database: Database,
) -> None:
    gw = await start_gateway(database)
    try:
        instruction_id = await submit(gw)
        await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")
        other_unit = await gw.new_key("erp-americas")
        finance = await gw.new_key("finance-team", ("finance",))

        other_status, problem = await messages(gw, instruction_id, other_unit)
        finance_status, page = await messages(gw, instruction_id, finance)
        unknown_status, _ = await messages(gw, "ins_" + "0" * 26)

        assert other_status == 404 and problem["detail"] == f"no instruction {instruction_id!r}"
        assert finance_status == 200 and len(page["items"]) >= 3
        assert unknown_status == 404
    finally:
        await stop_gateway(gw)


async def test_one_bulk_pain001_is_kept_once_and_linked_to_every_payment_it_carries(database: Database) -> None:
    gw = await start_gateway(database, dispatch=False, partners__iso20022_bank__bulk_submit=True)
    try:
        ids = [await submit(gw) for _ in range(3)]
        await gw.runtime.new_dispatcher("test-bulk").run_until_idle()
        for instruction_id in ids:
            await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")

        pages = [(await messages(gw, i))[1]["items"] for i in ids]

        first_out = {p[0]["id"] for p in pages}
        assert len(first_out) == 1  # the same message, one pain.001 for the three
        assert all(p[0]["direction"] == "out" and p[0]["kind"] == "submit" for p in pages)
        assert all(i in pages[0][0]["body"] for i in ids)
        async with gw.runtime.engine.connect() as conn:
            links = (
                await conn.execute(
                    select(partner_message_links.c.instruction_id).where(
                        partner_message_links.c.message_id == pages[0][0]["id"]
                    )
                )
            ).all()
        assert sorted(r.instruction_id for r in links) == sorted(ids)
    finally:
        await stop_gateway(gw)


async def test_capture_turned_off_keeps_no_message(database: Database) -> None:
    gw = await start_gateway(database, dispatch__partner_messages=False)
    try:
        instruction_id = await submit(gw)
        await gw.wait_for(instruction_id, lambda v: v["status"] == "settled")

        status, page = await messages(gw, instruction_id)

        assert (status, page) == (200, {"items": []})
        assert await stored_rows(gw) == []
    finally:
        await stop_gateway(gw)


async def test_a_callback_may_be_larger_than_other_requests_up_to_its_own_limit(database: Database) -> None:
    # a bank's pooled pain.002 on hundreds of payments is larger than server.max_body_bytes: refused, its
    # payments would wait for the status poll
    gw = await start_gateway(database, server__max_body_bytes=2048, server__callback_max_body_bytes=8192)
    try:
        url = f"{gw.url}/v1/partners/iso20022_bank/callbacks"
        headers = {"Content-Type": "application/xml"}
        report = b"<Document>" + b"<TxInfAndSts/>" * 300 + b"</Document>"  # 4 KB, unsigned
        async with gw.session.post(url, data=report, headers=headers) as resp:
            read_then_refused = resp.status, (await resp.json())["type"]
        async with gw.session.post(url, data=report * 3, headers=headers) as resp:
            too_large = resp.status
        other = gw.headers(**{"Idempotency-Key": "big-body-1", "Content-Type": "application/json"})
        async with gw.session.post(
            f"{gw.url}/v1/instructions", data=b'{"x": "%s"}' % (b"a" * 4096), headers=other
        ) as resp:
            other_request = resp.status

        assert read_then_refused[0] == 401 and "signature" in read_then_refused[1]
        assert (too_large, other_request) == (413, 413)
    finally:
        await stop_gateway(gw)
