"""ERP payment files: real and generated pain.001 taken in, control figures, idempotency, hostile files, pain.002."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sepaxml import SepaTransfer
from sqlalchemy import func, select

from gateway.store.tables import instruction_batches, instructions, outbox, payment_files
from tests.support import LiveGateway

P002 = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"}


def real_pain001_03(partner_files: Path) -> bytes:
    return (partner_files / "pain001" / "pain.001.001.03.xml").read_bytes()


def generated_pain001_09(count: int = 3, *, message_id: str | None = None) -> bytes:
    """A pain.001.001.09 written by the sepaxml library (checked against its XSD by sepaxml itself)."""
    config = {
        "name": "HE Appliances Europe GmbH",
        "IBAN": "DE89370400440532013000",
        "BIC": "COBADEFFXXX",
        "batch": True,
        "currency": "EUR",
    }
    sepa = SepaTransfer(config, schema="pain.001.001.09", clean=True)
    for i in range(count):
        sepa.add_payment(
            {
                "name": f"Nordic Parts AB {i}",
                "IBAN": "SE4550000000058398257466",
                "BIC": "ESSESESSXXX",
                "amount": 125000 + i,
                "execution_date": datetime.date.today(),
                "description": f"Invoice {i}",
                "endtoend_id": f"E2E-{uuid.uuid4().hex[:12]}",
            }
        )
    xml = sepa.export(validate=True)
    if message_id is not None:
        root = etree.fromstring(xml)
        root.find(".//{*}GrpHdr/{*}MsgId").text = message_id
        xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return xml


async def post_file(gw: LiveGateway, body: bytes, content_type: str = "application/xml") -> tuple[int, Any, Any]:
    headers = gw.headers(None, **{"Content-Type": content_type})
    async with gw.session.post(f"{gw.url}/v1/files", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def get(gw: LiveGateway, path: str) -> tuple[int, Any, str]:
    async with gw.session.get(f"{gw.url}{path}", headers=gw.headers()) as resp:
        raw = await resp.read()
        return resp.status, raw, resp.content_type


async def counts(gw: LiveGateway) -> dict[str, int]:
    async with gw.runtime.engine.connect() as conn:
        return {
            t.name: int(await conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (instructions, outbox, instruction_batches, payment_files)
        }


def report_of(raw: bytes) -> etree._Element:
    root = etree.fromstring(raw)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:pain.002.001.03}Document"
    return root


async def test_the_real_pain001_03_sample_is_taken_in(intake_gateway: LiveGateway, partner_files: Path) -> None:
    status, body, headers = await post_file(intake_gateway, real_pain001_03(partner_files))
    assert status == 202, body
    assert body["id"].startswith("fil_") and headers["Location"] == f"/v1/files/{body['id']}"
    assert (body["message_id"], body["version"], body["payments"]) == ("Message-ID-4711", "pain.001.001.03", 2)
    assert (body["status"], body["accepted"], body["refused"]) == ("accepted", 2, 0)
    assert await counts(intake_gateway) == {
        "instructions": 2,
        "outbox": 2,
        "instruction_batches": 1,
        "payment_files": 1,
    }
    # each payment is an instruction: EndToEndId as reference, the mapping of docs/files.md
    async with intake_gateway.runtime.engine.connect() as conn:
        rows = (await conn.execute(select(instructions).order_by(instructions.c.reference))).mappings().all()
    assert [r["reference"] for r in rows] == ["OriginatorID1234", "OriginatorID1235"]
    assert [r["amount"] for r in rows] == ["6543.14", "112.72"]
    assert {r["currency"] for r in rows} == {"EUR"} and {r["batch_id"] for r in rows} == {body["id"]}
    assert rows[0]["debtor_name"] == "Debtor Name" and rows[0]["creditor_name"] == "Creditor Name"
    assert rows[0]["creditor_agent"] == "SPUEDE2UXXX" and rows[0]["debtor_agent"] == "BANKDEFFXXX"
    assert rows[0]["remittance_information"] == "Unstructured Remittance Information"
    assert str(rows[0]["requested_execution_date"]) == "2010-11-25"
    assert rows[0]["metadata"]["end_to_end_id"] == "OriginatorID1234"
    # GET: the same head, counts by status
    status, raw, _ = await get(intake_gateway, f"/v1/files/{body['id']}")
    view = json.loads(raw)
    assert status == 200 and view["by_status"] == {"received": 2} and view["accepted"] == 2
    # pain.002 over the API and in the outbox folder: accepted
    status, raw, content_type = await get(intake_gateway, f"/v1/files/{body['id']}/status-report")
    assert status == 200 and content_type == "application/xml"
    report = report_of(raw)
    assert report.findtext(".//p:OrgnlGrpInfAndSts/p:OrgnlMsgId", namespaces=P002) == "Message-ID-4711"
    assert report.findtext(".//p:OrgnlGrpInfAndSts/p:GrpSts", namespaces=P002) == "ACCP"
    assert report.xpath("//p:TxInfAndSts/p:OrgnlEndToEndId/text()", namespaces=P002) == [
        "OriginatorID1234",
        "OriginatorID1235",
    ]
    written = list(Path(intake_gateway.runtime.settings.files.outbox_dir).glob("erp-europe/*.pain002.xml"))
    assert [p.name for p in written] == [f"Message-ID-4711.{body['id']}.pain002.xml"]


async def test_a_generated_pain001_09_is_taken_in(intake_gateway: LiveGateway) -> None:
    status, body, _ = await post_file(intake_gateway, generated_pain001_09(3), "text/xml")
    assert status == 202, body
    assert (body["version"], body["payments"], body["accepted"]) == ("pain.001.001.09", 3, 3)
    async with intake_gateway.runtime.engine.connect() as conn:
        amounts = sorted((await conn.execute(select(instructions.c.amount))).scalars())
    assert amounts == ["1250.00", "1250.01", "1250.02"]


async def test_same_file_again_same_answer_nothing_new(intake_gateway: LiveGateway, partner_files: Path) -> None:
    first = await post_file(intake_gateway, real_pain001_03(partner_files))
    before = await counts(intake_gateway)
    second = await post_file(intake_gateway, real_pain001_03(partner_files))
    assert first[0] == second[0] == 202
    assert first[1] == second[1]
    assert second[2]["Idempotent-Replayed"] == "true"
    assert await counts(intake_gateway) == before
    # the same message id with other content: 409, nothing stored
    other = real_pain001_03(partner_files).replace(b"Debtor Name", b"Other Debtor")
    status, problem, _ = await post_file(intake_gateway, other)
    assert status == 409 and problem["errors"][0]["pointer"].endswith("/GrpHdr/MsgId")
    assert await counts(intake_gateway) == before


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ((b"<CtrlSum>6655.86</CtrlSum>", b"<CtrlSum>6655.87</CtrlSum>"), "/Document/CstmrCdtTrfInitn/PmtInf/CtrlSum"),
        ((b"<NbOfTxs>2</NbOfTxs>\n      <InitgPty>", b"<NbOfTxs>3</NbOfTxs>\n      <InitgPty>"), "/GrpHdr/NbOfTxs"),
    ],
)
async def test_control_figures_that_do_not_add_up_refuse_the_file_with_a_pain002_rjct(
    intake_gateway: LiveGateway, partner_files: Path, change: tuple[bytes, bytes], pointer: str
) -> None:
    body = real_pain001_03(partner_files).replace(*change)
    assert body != real_pain001_03(partner_files)
    status, problem, headers = await post_file(intake_gateway, body)
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
    assert problem["errors"][0]["pointer"].endswith(pointer)
    assert "do not add up" in problem["detail"]
    file_id = problem["file_id"]
    assert await counts(intake_gateway) == {
        "instructions": 0,
        "outbox": 0,
        "instruction_batches": 1,
        "payment_files": 1,
    }
    status, raw, _ = await get(intake_gateway, problem["status_report"])
    report = report_of(raw)
    assert report.findtext(".//p:OrgnlGrpInfAndSts/p:GrpSts", namespaces=P002) == "RJCT"
    assert report.findtext(".//p:OrgnlGrpInfAndSts/p:StsRsnInf/p:Rsn/p:Cd", namespaces=P002) == "FF01"
    assert "says" in report.findtext(".//p:OrgnlGrpInfAndSts/p:StsRsnInf/p:AddtlInf", namespaces=P002)
    # the refusal is the answer to the same file again, too
    again = await post_file(intake_gateway, body)
    assert again[0] == 422 and again[1] == problem
    status, raw, _ = await get(intake_gateway, f"/v1/files/{file_id}")
    assert status == 200


async def test_payments_refused_on_intake_are_rjct_in_the_report(intake_gateway: LiveGateway) -> None:
    xml = generated_pain001_09(2)
    bad = xml.replace(b"SE4550000000058398257466", b"SE4550000000058398257467", 1)  # a wrong check digit
    status, body, _ = await post_file(intake_gateway, bad)
    assert status == 202 and (body["accepted"], body["refused"]) == (1, 1)
    status, raw, _ = await get(intake_gateway, body["status_report"])
    report = report_of(raw)
    assert report.findtext(".//p:GrpSts", namespaces=P002) == "PART"
    assert report.xpath("//p:TxInfAndSts/p:TxSts/text()", namespaces=P002) == ["RJCT", "ACCP"]
    assert report.findtext(".//p:TxInfAndSts/p:StsRsnInf/p:Rsn/p:Cd", namespaces=P002) == "AC01"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03">
<CstmrCdtTrfInitn>&lol3;</CstmrCdtTrfInitn></Document>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03">
<CstmrCdtTrfInitn>&xxe;</CstmrCdtTrfInitn></Document>"""


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("entity expansion", BILLION_LAUGHS, "DTD or entities"),
        ("external entity", EXTERNAL_ENTITY, "DTD or entities"),
        ("not XML", b'{"instructions": []}', "malformed"),
        ("wrong namespace", b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>', "namespace"),
        ("pain.002 instead", b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"/>', "namespace"),
        ("invalid by the XSD", b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>', "valid"),
        ("empty", b"   ", "empty"),
    ],
)
async def test_hostile_and_wrong_files_are_refused_without_harm(
    intake_gateway: LiveGateway, name: str, body: bytes, words: str
) -> None:
    status, problem, headers = await post_file(intake_gateway, body)
    assert status == 422, (name, problem)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert words in (problem["title"] + problem["detail"]).lower() or words in problem["detail"]
    assert problem["errors"][0]["pointer"].startswith("/Document")
    assert "root:" not in str(problem)  # /etc/passwd never read
    assert await counts(intake_gateway) == {
        "instructions": 0,
        "outbox": 0,
        "instruction_batches": 0,
        "payment_files": 0,
    }


async def test_oversize_and_wrong_media_type(intake_gateway: LiveGateway, partner_files: Path) -> None:
    limit = intake_gateway.runtime.settings.files.max_bytes
    status, problem, _ = await post_file(intake_gateway, b"<a>" + b" " * limit + b"</a>")
    assert status == 413 and problem["status"] == 413
    status, problem, _ = await post_file(intake_gateway, real_pain001_03(partner_files), "application/json")
    assert status == 415
    status, _, _ = await get(intake_gateway, "/v1/files/fil_00000000000000000000000000")
    assert status == 404
    status, _, _ = await get(intake_gateway, "/v1/files/fil_00000000000000000000000000/status-report")
    assert status == 404
    assert (await counts(intake_gateway))["payment_files"] == 0


async def test_another_business_units_file_is_not_found_and_its_own_message_ids(
    intake_gateway: LiveGateway, partner_files: Path
) -> None:
    status, body, _ = await post_file(intake_gateway, real_pain001_03(partner_files))
    assert status == 202
    other = await intake_gateway.new_key("erp-americas")
    gw = intake_gateway
    for path in (f"/v1/files/{body['id']}", f"/v1/files/{body['id']}/status-report"):
        async with gw.session.get(f"{gw.url}{path}", headers=gw.headers(other)) as resp:
            assert resp.status == 404
    # message ids are per business unit: the same file from another unit is its own file
    headers = intake_gateway.headers(other, **{"Content-Type": "application/xml"})
    async with intake_gateway.session.post(
        f"{intake_gateway.url}/v1/files", data=real_pain001_03(partner_files), headers=headers
    ) as resp:
        assert resp.status == 202
        assert (await resp.json())["id"] != body["id"]
