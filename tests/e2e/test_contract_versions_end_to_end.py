"""A 2.0 instruction (structured remittance, ultimate parties) travels through the ISO 20022 bank adapter."""

from __future__ import annotations

import uuid

from tests.support import FINAL, LiveGateway, applied, example_instruction


async def test_structured_remittance_instruction_settles_through_the_bank_adapter(gateway: LiveGateway) -> None:
    body = example_instruction(
        remittance_information={"structured": {"creditor_reference": "RF18539007547034", "type": "SCOR"}},
        purpose="SUPP",
        ultimate_debtor={"name": "HE Appliances Benelux BV", "identification": {"lei": "529900T8BM49AURSDO55"}},
    )
    headers = gateway.headers(**{"Idempotency-Key": uuid.uuid4().hex, "Contract-Version": "2.0"})
    resp = await gateway.session.post(f"{gateway.url}/v1/instructions", json=body, headers=headers)
    assert resp.status == 202, await resp.text()
    view = await gateway.wait_for((await resp.json())["id"], lambda v: v["status"] in FINAL)
    assert view["status"] == "settled"
    assert applied(view) == ["received", "accepted", "routed", "submitted", "settled"]
    assert view["contract_version"] == "2.0" and view["creditor_reference"] == "RF18539007547034"
