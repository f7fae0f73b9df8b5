"""The instant rail simulator's account statement: a signed camt.053 of what the rail settled, with the breaks
the scenario injects, control figures that add up, and one statement id however often it is asked for."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.domain.accounts import Party, UsAccount
from gateway.domain.money import Money
from gateway.domain.statements import Statement, check_controls
from gateway.partners.adapter import PaymentOrder
from gateway.partners.signing import sign_payload, verify_signature
from gateway_adapters.instant_rtp.messages import build_request
from gateway_adapters.instant_rtp.statements import RTP_CAMT053
from gateway_simulators.instant_rtp import SIMULATOR, create_app

SECRETS = {"request_secret": "rtp-sim-request-secret", "callback_secret": "rtp-sim-response-secret"}
Client = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def rtp_client(aiohttp_client: Any) -> Client:
    async def start(**overrides: Any) -> TestClient:
        return await aiohttp_client(create_app({**SECRETS, **overrides}))

    return start


def _signed(body: bytes) -> dict[str, str]:
    return {"X-Signature": sign_payload(SECRETS["request_secret"].encode(), body)}


async def _pay(client: TestClient, n: int, reference: str, amount: str, creditor: str = "Acme Supplies Inc") -> None:
    order = PaymentOrder(
        id=f"ins_rtp_stmt_{n:04d}",
        business_unit="retail-us",
        reference=reference,
        type="credit_transfer",
        money=Money(amount, "USD"),
        debtor=Party("HE Appliances US LLC", UsAccount.parse("123456789", "021000021", "/debtor/account")),
        creditor=Party(creditor, UsAccount.parse("987654321", "011000015", "/creditor/account")),
        urgency="instant",
    )
    body = build_request(order, message_id=f"RTPMSG{n:04d}", created_at=datetime.now(UTC))
    headers = {**_signed(body), "Idempotency-Key": order.id, "Content-Type": "application/json"}
    resp = await client.post("/v1/payments", data=body, headers=headers)
    assert resp.status == 200, await resp.text()


async def _statement(client: TestClient) -> tuple[Statement, bytes]:
    today = datetime.now(UTC).date().isoformat()
    resp = await client.get("/v1/statements", params={"date": today}, headers=_signed(b""))
    body = await resp.read()
    assert resp.status == 200, body
    assert resp.content_type == "application/xml"
    verify_signature(SECRETS["callback_secret"].encode(), body, resp.headers["X-Signature"])
    (statement,) = RTP_CAMT053.read(body)
    check_controls(statement)  # what the gateway's import checks before it stores anything
    return statement, body


async def test_the_days_statement_is_a_signed_camt053_of_every_payment_the_rail_settled(rtp_client: Client) -> None:
    client = await rtp_client()
    await _pay(client, 1, "INV-RTP-1", "100.00")
    await _pay(client, 2, "INV-RTP-2", "250.50")
    await _pay(client, 3, "INV-RTP-3", "9.99", creditor="REJECT-AC03 Payee")  # rejected: never on a statement
    sim = client.app[SIMULATOR]
    settled = {p.tx.key: p.partner_reference for p in sim.payments.values() if p.state == "settled"}

    statement, body = await _statement(client)
    again, _ = await _statement(client)

    assert b"camt.053.001.08" in body and b"<Othr>" in body and b"<IBAN>" not in body
    assert (statement.source, statement.format, statement.currency) == ("instant_rtp", "rtp.camt.053", "USD")
    assert statement.account == "*****6789"  # stored masked
    assert again.statement_id == statement.statement_id  # asked again: the same statement, stored once
    rows = sorted(
        (ln.partner_reference, ln.end_to_end_id, ln.servicer_reference, ln.amount_minor, ln.credit)
        for ln in statement.lines
    )
    assert rows == [
        ("ins_rtp_stmt_0001", "INV-RTP-1", settled["ins_rtp_stmt_0001"], 10000, False),
        ("ins_rtp_stmt_0002", "INV-RTP-2", settled["ins_rtp_stmt_0002"], 25050, False),
    ]
    assert (statement.opening_minor, statement.closing_minor) == (100_000_000, 100_000_000 - 35050)
    assert (statement.declared_count, statement.declared_debits_minor) == (2, 35050)
    # the admin route serves the same document, unsigned
    other = await client.get(f"/_sim/statements/{datetime.now(UTC).date().isoformat()}")
    assert other.content_type == "application/xml"
    assert RTP_CAMT053.read(await other.read())[0].statement_id == statement.statement_id


async def test_the_statement_route_is_authenticated_like_the_rails_other_routes(rtp_client: Client) -> None:
    client = await rtp_client()
    today = datetime.now(UTC).date().isoformat()

    unsigned = await client.get("/v1/statements", params={"date": today})
    wrong = await client.get(
        "/v1/statements", params={"date": today}, headers={"X-Signature": sign_payload(b"another-secret", b"")}
    )
    bad_day = await client.get("/v1/statements", params={"date": "yesterday"}, headers=_signed(b""))
    empty = await client.get("/v1/statements", params={"date": "2001-01-01"}, headers=_signed(b""))

    for resp in (unsigned, wrong):
        assert resp.status == 401
        assert json.loads(await resp.read())["error_code"] == "SIGNATURE_INVALID"
    assert bad_day.status == 400 and json.loads(await bad_day.read())["error_code"] == "BAD_DATE"
    assert empty.status == 200 and RTP_CAMT053.read(await empty.read()) == []  # a day without payments


@pytest.mark.parametrize(
    ("brk", "check"),
    [
        ({"kind": "missing_entry"}, lambda refs, amounts: "BRK-1" not in refs and "OK-1" in refs),
        (
            {"kind": "wrong_amount", "amount_delta": "40.00"},
            lambda refs, amounts: amounts["BRK-1"] == [Decimal("140.00")],
        ),
        ({"kind": "duplicate_entry"}, lambda refs, amounts: amounts["BRK-1"] == [Decimal("100.00")] * 2),
        ({"kind": "unknown_entry", "count": 2}, lambda refs, amounts: sum(r.startswith("UNKNOWN-") for r in refs) == 2),
    ],
)
async def test_statement_breaks_are_injected_and_the_figures_still_add_up(
    rtp_client: Client, brk: dict[str, Any], check: Callable[..., bool]
) -> None:
    if brk["kind"] != "unknown_entry":
        brk = {**brk, "match": {"reference": "^BRK-"}}
    client = await rtp_client(scenario={"name": "rtp-breaks", "statement": {"breaks": [brk]}})
    await _pay(client, 1, "BRK-1", "100.00")
    await _pay(client, 2, "OK-1", "100.00")

    statement, _ = await _statement(client)  # control figures checked in there
    refs = [ln.end_to_end_id or "" for ln in statement.lines]
    amounts: dict[str, list[Decimal]] = {}
    for ln in statement.lines:
        amounts.setdefault(ln.end_to_end_id or "", []).append(Decimal(ln.amount_minor) / 100)

    assert check(refs, amounts), (refs, amounts)
    entries = (await (await client.get("/_sim/journal", params={"kind": "statement"})).json())["entries"]
    assert entries and all(e["faults"] == [brk["kind"]] for e in entries)
