"""Intake: idempotency, duplicates, and every kind of bad input (4xx, problem+json, nothing written)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.store.tables import idempotency_keys, instruction_events, instructions, outbox
from tests.support import LiveGateway, example_instruction


async def _counts(gw: LiveGateway) -> dict[str, int]:
    async with gw.runtime.engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (instructions, instruction_events, outbox, idempotency_keys)
        }


async def test_valid_instruction_is_accepted_durably_with_event_and_outbox(intake_gateway: LiveGateway) -> None:
    body = example_instruction()
    resp = await intake_gateway.post_instruction(body)
    assert resp.status == 202
    accepted = await resp.json()
    assert accepted["status"] == "received"
    assert accepted["reference"] == body["reference"]
    assert resp.headers["Location"] == f"/v1/instructions/{accepted['id']}"
    assert await _counts(intake_gateway) == {
        "instructions": 1,
        "instruction_events": 1,
        "outbox": 1,
        "idempotency_keys": 1,
    }
    view = await intake_gateway.get_instruction(accepted["id"])
    assert view["amount"] == "1250.00" and view["currency"] == "EUR"
    assert [e["status"] for e in view["events"]] == ["received"]
    # accounts are masked in every response
    assert view["creditor"]["account"]["iban"].endswith("7466")
    assert "58398257466" not in json.dumps(view)


async def test_account_numbers_are_encrypted_at_rest(intake_gateway: LiveGateway) -> None:
    resp = await intake_gateway.post_instruction(example_instruction())
    assert resp.status == 202
    async with intake_gateway.runtime.engine.connect() as conn:
        row = (await conn.execute(select(instructions))).mappings().one()
    assert "DE89370400440532013000" not in row["debtor_account"]
    assert row["debtor_account"].startswith("dev$")
    order = intake_gateway.runtime.codec.payment_order(row, "erp-europe")
    assert order.debtor.account.iban == "DE89370400440532013000"


async def test_same_idempotency_key_and_body_replays_first_response(intake_gateway: LiveGateway) -> None:
    body = example_instruction()
    first = await intake_gateway.post_instruction(body, idempotency_key="key-1")
    second = await intake_gateway.post_instruction(body, idempotency_key="key-1")
    assert first.status == second.status == 202
    assert await first.json() == await second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert (await _counts(intake_gateway))["instructions"] == 1


async def test_same_idempotency_key_with_other_body_is_409(intake_gateway: LiveGateway) -> None:
    body = example_instruction()
    assert (await intake_gateway.post_instruction(body, idempotency_key="key-2")).status == 202
    resp = await intake_gateway.post_instruction(dict(body, amount="99.00"), idempotency_key="key-2")
    assert resp.status == 409
    problem = await resp.json()
    assert problem["type"].endswith("/idempotency-conflict")
    assert (await _counts(intake_gateway))["instructions"] == 1


async def test_concurrent_requests_with_one_key_create_one_instruction(intake_gateway: LiveGateway) -> None:
    import asyncio

    body = example_instruction()
    responses = await asyncio.gather(*(intake_gateway.post_instruction(body, idempotency_key="same") for _ in range(8)))
    bodies = [await r.json() for r in responses]
    assert {r.status for r in responses} == {202}
    assert len({b["id"] for b in bodies}) == 1
    assert (await _counts(intake_gateway))["instructions"] == 1


async def test_duplicate_reference_from_one_business_unit_is_rejected(intake_gateway: LiveGateway) -> None:
    body = example_instruction()
    assert (await intake_gateway.post_instruction(body)).status == 202
    resp = await intake_gateway.post_instruction(body)  # new idempotency key, same reference
    assert resp.status == 409
    problem = await resp.json()
    assert problem["type"].endswith("/duplicate-reference")
    assert problem["errors"] == [{"pointer": "/reference", "detail": "duplicate reference"}]
    # another business unit may use the same reference
    other = await intake_gateway.new_key("erp-americas")
    assert (await intake_gateway.post_instruction(body, key=other)).status == 202
    assert (await _counts(intake_gateway))["instructions"] == 2


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    node = body
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return body


BAD_BODIES = [
    # (case id, body transform, expected status, expected first pointer)
    ("unknown-field", lambda b: dict(b, colour="blue"), 422, "/colour"),
    ("nested-unknown-field", lambda b: {**b, "debtor": {**b["debtor"], "vat": "x"}}, 422, "/debtor/vat"),
    ("missing-amount", lambda b: _without(b, "amount"), 422, "/amount"),
    ("float-amount", lambda b: dict(b, amount=1250.5), 422, "/amount"),
    ("negative-amount", lambda b: dict(b, amount="-5.00"), 422, "/amount"),
    ("zero-amount", lambda b: dict(b, amount="0.00"), 422, "/amount"),
    ("too-many-decimals", lambda b: dict(b, amount="10.001"), 422, "/amount"),
    ("yen-with-decimals", lambda b: dict(b, currency="JPY", amount="10.50"), 422, "/amount"),
    ("unknown-currency", lambda b: dict(b, currency="EUX"), 422, "/currency"),
    ("lowercase-currency", lambda b: dict(b, currency="eur"), 422, "/currency"),
    (
        "bad-iban-checksum",
        lambda b: {**b, "creditor": {**b["creditor"], "account": {"iban": "SE4550000000058398257467"}}},
        422,
        "/creditor/account/iban",
    ),
    (
        "bad-bic",
        lambda b: {**b, "debtor": {**b["debtor"], "agent": {"bic": "COBADEFF1"}}},
        422,
        "/debtor/agent/bic",
    ),
    (
        "bad-aba-check-digit",
        lambda b: {**b, "creditor": {**b["creditor"], "account": {"number": "12345678", "routing": "011000016"}}},
        422,
        "/creditor/account/routing",
    ),
    (
        "two-account-kinds",
        lambda b: {
            **b,
            "creditor": {**b["creditor"], "account": {"iban": "SE4550000000058398257466", "wallet": "w-1"}},
        },
        422,
        "/creditor/account/wallet",
    ),
    ("reference-too-long", lambda b: dict(b, reference="R" * 36), 422, "/reference"),
    ("remittance-too-long", lambda b: dict(b, remittance_information="x" * 141), 422, "/remittance_information"),
    ("bad-date", lambda b: dict(b, requested_execution_date="2026-02-30"), 422, "/requested_execution_date"),
    ("bad-type", lambda b: dict(b, type="gift"), 422, "/type"),
    ("not-an-object", lambda b: [b], 422, ""),
    ("trailing-newline-in-reference", lambda b: dict(b, reference=b["reference"] + "\n"), 422, "/reference"),
    ("trailing-newline-in-currency", lambda b: dict(b, currency="EUR\n"), 422, "/currency"),
    ("tab-in-metadata", lambda b: dict(b, metadata={"a/b": "x\ty"}), 422, "/metadata/a~1b"),
]


@pytest.mark.parametrize(("case", "transform", "status", "pointer"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_instruction_is_a_clear_4xx_and_writes_nothing(
    intake_gateway: LiveGateway, case: str, transform: Any, status: int, pointer: str
) -> None:
    resp = await intake_gateway.post_instruction(transform(example_instruction()))
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == status and problem["title"]
    assert problem["errors"][0]["pointer"] == pointer, problem
    assert "Traceback" not in json.dumps(problem)
    assert (await _counts(intake_gateway))["instructions"] == 0


async def _raw_post(gw: LiveGateway, data: bytes, content_type: str, **headers: str) -> Any:
    hdrs = {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex, **headers}
    if "Authorization" not in headers:
        hdrs.update(gw.headers())
    return await gw.session.post(f"{gw.url}/v1/instructions", data=data, headers=hdrs)


RAW_CASES = [
    ("malformed-json", b'{"reference": "x",', "application/json", {}, 400, "bad-request"),
    ("not-utf8", b'{"reference": "\xff"}', "application/json", {}, 400, "bad-request"),
    ("wrong-content-type", b"reference=x", "application/x-www-form-urlencoded", {}, 415, "unsupported-media-type"),
    ("oversize-body", b'{"x": "' + b"a" * 70_000 + b'"}', "application/json", {}, 413, "payload-too-large"),
    ("missing-key", b"{}", "application/json", {"Authorization": ""}, 401, "unauthenticated"),
    ("wrong-key", b"{}", "application/json", {"Authorization": "Bearer pgw_wrong"}, 401, "unauthenticated"),
    ("basic-auth", b"{}", "application/json", {"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
    ("missing-idempotency-key", b"{}", "application/json", {"Idempotency-Key": ""}, 400, "bad-request"),
]


@pytest.mark.parametrize(
    ("case", "data", "content_type", "headers", "status", "slug"), RAW_CASES, ids=[c[0] for c in RAW_CASES]
)
async def test_malformed_request_is_a_clear_4xx_and_writes_nothing(
    intake_gateway: LiveGateway,
    case: str,
    data: bytes,
    content_type: str,
    headers: dict[str, str],
    status: int,
    slug: str,
) -> None:
    resp = await _raw_post(intake_gateway, data, content_type, **headers)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"].endswith("/" + slug)
    assert problem["status"] == status
    if status == 401:
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await _counts(intake_gateway))["instructions"] == 0


async def test_every_error_lists_all_failing_fields(intake_gateway: LiveGateway) -> None:
    body = example_instruction(amount=12.5, currency="EURO", colour="blue")
    resp = await intake_gateway.post_instruction(body)
    problem = await resp.json()
    pointers = {e["pointer"] for e in problem["errors"]}
    assert {"/amount", "/currency", "/colour"} <= pointers


async def test_unknown_route_and_method_are_problems(intake_gateway: LiveGateway) -> None:
    async with intake_gateway.session.get(f"{intake_gateway.url}/v1/nope") as resp:
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"
    async with intake_gateway.session.delete(f"{intake_gateway.url}/v1/instructions") as resp:
        assert resp.status == 405
        assert (await resp.json())["status"] == 405
