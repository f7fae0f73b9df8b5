"""Contract versions on the live API: negotiation, business-unit pins, deprecation headers, upcasting."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from sqlalchemy import select, update

from gateway.store.tables import business_units, instructions
from tests.support import LiveGateway, example_instruction


async def _post(
    gw: LiveGateway,
    body: Any,
    *,
    version: str | None = None,
    content_type: str = "application/json",
    key: str | None = None,
) -> aiohttp.ClientResponse:
    headers = gw.headers(key, **{"Idempotency-Key": uuid.uuid4().hex, "Content-Type": content_type})
    if version is not None:
        headers["Contract-Version"] = version
    return await gw.session.post(f"{gw.url}/v1/instructions", json=body, headers=headers)


async def _stored_version(gw: LiveGateway, instruction_id: str) -> str:
    async with gw.runtime.engine.connect() as conn:
        query = select(instructions.c.contract_version).where(instructions.c.id == instruction_id)
        return str(await conn.scalar(query))


def _v2(**changes: Any) -> dict[str, Any]:
    body = example_instruction(remittance_information={"unstructured": "Invoice 123"})
    body.update(changes)
    return body


STRUCTURED = {"structured": {"creditor_reference": "RF18539007547034", "type": "SCOR"}}


async def test_contract_version_header_selects_the_version(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, _v2(), version="2.0")
    assert resp.status == 202, await resp.text()
    assert resp.headers["Contract-Version"] == "2.0"
    assert await _stored_version(intake_gateway, (await resp.json())["id"]) == "2.0"
    # the same 2.0 body read as 1.1 breaks the 1.1 contract, at the field that changed
    resp = await _post(intake_gateway, _v2(), version="1.1")
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["pointer"] == "/remittance_information"


async def test_media_type_parameter_selects_the_version(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, _v2(), content_type="application/json; version=2.0")
    assert resp.status == 202, await resp.text()
    assert resp.headers["Contract-Version"] == "2.0"
    assert await _stored_version(intake_gateway, (await resp.json())["id"]) == "2.0"


async def test_header_and_media_type_may_name_the_same_version(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, _v2(), version="2.0", content_type='application/json; version="2.0"')
    assert resp.status == 202, await resp.text()


async def test_header_and_media_type_that_disagree_are_a_400(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, _v2(), version="1.1", content_type="application/json; version=2.0")
    assert resp.status == 400
    problem = await resp.json()
    assert problem["type"].endswith("/unsupported-contract-version")
    assert "disagree" in problem["detail"]


async def test_unknown_version_is_a_400_naming_the_versions_available(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, _v2(), version="9.9")
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["detail"] == "unknown instruction contract version 9.9; available: 1.0, 1.1, 2.0"
    resp = await _post(intake_gateway, _v2(), version="latest")
    assert resp.status == 400
    assert "like 1.1" in (await resp.json())["detail"]


async def test_without_a_version_the_newest_of_the_oldest_line_applies(intake_gateway: LiveGateway) -> None:
    resp = await intake_gateway.post_instruction(example_instruction())
    assert resp.status == 202
    assert resp.headers["Contract-Version"] == "1.1"
    assert "Deprecation" not in resp.headers
    assert await _stored_version(intake_gateway, (await resp.json())["id"]) == "1.1"


async def test_business_unit_pin_is_the_default_and_a_header_overrides_it(intake_gateway: LiveGateway) -> None:
    key = await intake_gateway.new_key("erp-pinned")
    async with intake_gateway.runtime.engine.begin() as conn:
        await conn.execute(
            update(business_units).where(business_units.c.name == "erp-pinned").values(default_contract_version="2.0")
        )
    resp = await _post(intake_gateway, _v2(), key=key)
    assert resp.status == 202, await resp.text()
    assert resp.headers["Contract-Version"] == "2.0"
    resp = await _post(intake_gateway, example_instruction(), key=key, version="1.1")
    assert resp.status == 202, await resp.text()
    assert resp.headers["Contract-Version"] == "1.1"


async def test_a_pin_to_a_version_no_longer_served_is_a_400(intake_gateway: LiveGateway) -> None:
    key = await intake_gateway.new_key("erp-stale-pin")
    async with intake_gateway.runtime.engine.begin() as conn:
        await conn.execute(
            update(business_units)
            .where(business_units.c.name == "erp-stale-pin")
            .values(default_contract_version="0.9")
        )
    resp = await _post(intake_gateway, example_instruction(), key=key)
    assert resp.status == 400
    assert "pinned" in (await resp.json())["detail"]


async def test_deprecated_version_answers_with_deprecation_and_sunset_headers(intake_gateway: LiveGateway) -> None:
    resp = await _post(intake_gateway, example_instruction(), version="1.0")
    assert resp.status == 202, await resp.text()
    assert resp.headers["Deprecation"] == "@1795651200"  # 2026-11-26T00:00:00Z, RFC 9745
    sunset = parsedate_to_datetime(resp.headers["Sunset"])  # RFC 8594 HTTP-date
    assert (sunset.year, sunset.month, sunset.day) == (2027, 6, 30)
    assert resp.headers["Sunset"].endswith("GMT")
    for version, body in (("1.1", example_instruction()), ("2.0", _v2())):
        resp = await _post(intake_gateway, body, version=version)
        assert resp.status == 202
        assert "Deprecation" not in resp.headers and "Sunset" not in resp.headers, version


async def test_a_1_0_instruction_is_upcast_stored_with_its_version_and_readable(intake_gateway: LiveGateway) -> None:
    body = example_instruction(remittance_information="Invoice 77")
    resp = await _post(intake_gateway, body, version="1.0")
    assert resp.status == 202, await resp.text()
    instruction_id = (await resp.json())["id"]
    view = await intake_gateway.get_instruction(instruction_id)
    assert view["contract_version"] == "1.0"
    assert view["remittance_information"] == "Invoice 77"
    assert view["creditor_reference"] is None
    async with intake_gateway.runtime.engine.connect() as conn:
        row = (await conn.execute(select(instructions).where(instructions.c.id == instruction_id))).mappings().one()
    order = intake_gateway.runtime.codec.payment_order(row, "erp-europe")
    assert order.remittance_information == "Invoice 77"


async def test_replay_under_another_version_is_an_idempotency_conflict(intake_gateway: LiveGateway) -> None:
    body = example_instruction()
    headers = intake_gateway.headers(**{"Idempotency-Key": "same-key", "Contract-Version": "1.0"})
    first = await intake_gateway.session.post(f"{intake_gateway.url}/v1/instructions", json=body, headers=headers)
    assert first.status == 202
    headers["Contract-Version"] = "1.1"
    second = await intake_gateway.session.post(f"{intake_gateway.url}/v1/instructions", json=body, headers=headers)
    assert second.status == 409
    assert (await second.json())["type"].endswith("/idempotency-conflict")


async def test_structured_remittance_in_2_0_is_accepted_and_reaches_the_adapter(intake_gateway: LiveGateway) -> None:
    ultimate = {"name": "HE Appliances Benelux BV", "identification": {"lei": "529900T8BM49AURSDO55"}}
    body = _v2(remittance_information=STRUCTURED, purpose="SUPP", ultimate_debtor=ultimate)
    resp = await _post(intake_gateway, body, version="2.0")
    assert resp.status == 202, await resp.text()
    instruction_id = (await resp.json())["id"]
    view = await intake_gateway.get_instruction(instruction_id)
    assert view["creditor_reference"] == "RF18539007547034"
    assert view["remittance_information"] is None
    assert view["purpose"] == "SUPP"
    assert view["ultimate_debtor"] == ultimate
    async with intake_gateway.runtime.engine.connect() as conn:
        row = (await conn.execute(select(instructions).where(instructions.c.id == instruction_id))).mappings().one()
    order = intake_gateway.runtime.codec.payment_order(row, "erp-europe")
    assert order.creditor_reference == "RF18539007547034"
    # adapters that only know unstructured text still pass the reference on
    assert order.remittance_information == "RF18539007547034"
    assert order.ultimate_debtor is not None and order.ultimate_debtor.lei == "529900T8BM49AURSDO55"


BAD_2_0 = [
    (
        "rf-check-digits",
        {"remittance_information": {"structured": {"creditor_reference": "RF19539007547034", "type": "SCOR"}}},
        "/remittance_information/structured/creditor_reference",
    ),
    (
        "rf-shape",
        {"remittance_information": {"structured": {"creditor_reference": "XX18539007547034", "type": "SCOR"}}},
        "/remittance_information/structured/creditor_reference",
    ),
    (
        "both-remittance-forms",
        {"remittance_information": {"unstructured": "x", **STRUCTURED}},
        "/remittance_information/structured",
    ),
    ("string-remittance", {"remittance_information": "Invoice 1"}, "/remittance_information"),
    (
        "lei-check-digits",
        {"ultimate_creditor": {"name": "X", "identification": {"lei": "529900T8BM49AURSDO56"}}},
        "/ultimate_creditor/identification/lei",
    ),
    ("lowercase-purpose", {"purpose": "supp"}, "/purpose"),
    ("ultimate-party-with-account", {"ultimate_debtor": {"name": "X", "account": {}}}, "/ultimate_debtor/account"),
]


async def test_bad_2_0_instructions_are_rejected_with_the_failing_pointer(intake_gateway: LiveGateway) -> None:
    for case, changes, pointer in BAD_2_0:
        resp = await _post(intake_gateway, _v2(**changes), version="2.0")
        assert resp.status == 422, case
        problem = await resp.json()
        assert problem["errors"][0]["pointer"] == pointer, (case, problem)
    async with intake_gateway.runtime.engine.connect() as conn:
        assert (await conn.execute(select(instructions.c.id))).first() is None
