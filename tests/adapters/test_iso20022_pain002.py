"""pain.002 status reports: built as v10, read in any version, malicious XML refused."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from gateway.domain.status import Status
from gateway.errors import ContractError
from gateway_adapters.iso20022_bank.pain002 import (
    PAIN002_NAMESPACE,
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
    gateway_status,
    parse_pain002,
    status_updates,
)

CREATED = datetime(2024, 5, 6, 10, 30, tzinfo=UTC)


def report(*transactions: TransactionStatus, **kw: object) -> StatusReport:
    return StatusReport(
        message_id="RPT-1",
        created_at=CREATED,
        original_message_id="ins_1",
        payments=(PaymentInformationStatus("ins_1", transactions=transactions),),
        **kw,  # type: ignore[arg-type]
    )


SETTLED_TX = TransactionStatus(
    status="ACSC",
    instruction_id="ins_1",
    end_to_end_id="INV-1",
    account_servicer_reference="BANKREF1",
)
REJECTED_TX = TransactionStatus(
    status="RJCT",
    instruction_id="ins_1",
    end_to_end_id="INV-1",
    reason_code="AC01",
    reason="Account identifier incorrect",
    account_servicer_reference="BANKREF1",
)


def test_parses_real_goldman_sachs_v3_report(partner_files) -> None:
    body = (partner_files / "pain002" / "gs_pain_002_v3_accepted.xml").read_bytes()

    parsed = parse_pain002(body)

    assert parsed.namespace == "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
    assert parsed.message_id == "1036XXX"
    assert parsed.original_message_id == "10280093XXXX"
    assert parsed.original_message_name is None  # the sample omits it; we read it anyway
    assert parsed.created_at == datetime(2020, 8, 20, 15, 25, 48, tzinfo=UTC)
    (tx,) = parsed.transactions
    assert tx.status == "ACCP"
    assert tx.end_to_end_id == "GSDGFKfLURaHb"
    assert tx.reason_code == "NARR"
    assert tx.account_servicer_reference == "I200820000XXXXX"
    assert tx.instruction_id is None


def test_real_accepted_report_is_an_acknowledgement_identified_by_bank_reference(
    partner_files,
) -> None:
    body = (partner_files / "pain002" / "gs_pain_002_v3_accepted.xml").read_bytes()

    (update,) = status_updates(parse_pain002(body))

    assert update.status is None
    assert update.partner_status == "ACCP"
    assert update.instruction_id is None
    assert update.partner_reference == "I200820000XXXXX"


def test_built_report_reads_back_identically() -> None:
    original = report(REJECTED_TX)

    parsed = parse_pain002(build_pain002(original))

    assert parsed.namespace == PAIN002_NAMESPACE
    assert parsed.original_message_name == "pain.001.001.09"
    assert parsed.transactions == (REJECTED_TX,)
    assert parsed.created_at == CREATED


@pytest.mark.parametrize(
    "namespace",
    [
        "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03",
        "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10",
        "urn:iso:std:iso:20022:tech:xsd:pain.002.001.12",
    ],
)
def test_parser_reads_any_pain002_version(namespace: str) -> None:
    body = build_pain002(report(SETTLED_TX)).replace(PAIN002_NAMESPACE.encode(), namespace.encode())

    parsed = parse_pain002(body)

    assert parsed.namespace == namespace
    assert parsed.transactions[0].status == "ACSC"
    assert parsed.transactions[0].account_servicer_reference == "BANKREF1"


def test_parser_reads_prefixed_elements() -> None:
    body = build_pain002(report(SETTLED_TX)).replace(
        f'xmlns="{PAIN002_NAMESPACE}"'.encode(), f'xmlns:ns2="{PAIN002_NAMESPACE}"'.encode()
    )
    body = body.replace(b"<", b"<ns2:").replace(b"<ns2:/", b"</ns2:").replace(b"<ns2:?", b"<?")

    assert parse_pain002(body).transactions == (SETTLED_TX,)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ACSC", Status.SETTLED),
        ("ACCC", Status.SETTLED),
        ("RJCT", Status.REJECTED),
        ("ACTC", None),
        ("ACCP", None),
        ("ACSP", None),
        ("ACWC", None),
        ("PDNG", None),
        ("RCVD", None),
        ("ACFC", None),
        ("ZZZZ", None),  # unknown but well-formed: recorded, never guessed final
    ],
)
def test_status_code_maps_to_gateway_status(code: str, expected: Status | None) -> None:
    tx = TransactionStatus(status=code, instruction_id="ins_1")

    (update,) = status_updates(parse_pain002(build_pain002(report(tx))))

    assert gateway_status(code) is expected
    assert update.status is expected
    assert update.partner_status == code
    assert update.instruction_id == "ins_1"


@pytest.mark.parametrize("reason_code", ["AC01", "AM04", "FF01", "AC04", "MS03"])
def test_rejection_carries_iso_reason_code_and_text(reason_code: str) -> None:
    tx = TransactionStatus(status="RJCT", instruction_id="ins_1", reason_code=reason_code, reason="details here")

    (update,) = status_updates(parse_pain002(build_pain002(report(tx))))

    assert update.status is Status.REJECTED
    assert update.reason_code == reason_code
    assert update.reason == "details here"
    assert update.occurred_at == CREATED


def test_long_reason_text_is_wrapped_over_lines_and_read_back_whole() -> None:
    reason = "creditor account " + " ".join(f"word{i}" for i in range(40))
    tx = TransactionStatus(status="RJCT", instruction_id="ins_1", reason_code="AC04", reason=reason)

    body = build_pain002(report(tx))
    (update,) = status_updates(parse_pain002(body))

    assert body.count(b"<AddtlInf>") == 3
    assert update.reason == reason


def test_transaction_without_status_inherits_the_group_status() -> None:
    body = build_pain002(report(SETTLED_TX, group_status="RJCT", group_reason_code="DU01"))
    body = body.replace(b"<TxSts>ACSC</TxSts>", b"")

    (tx,) = parse_pain002(body).transactions

    assert tx.status == "RJCT"
    assert tx.reason_code == "DU01"


def test_group_level_rejection_identifies_payment_by_original_message_id() -> None:
    group_reject = StatusReport(
        message_id="RPT-2",
        created_at=CREATED,
        original_message_id="ins_77",
        group_status="RJCT",
        group_reason_code="FF01",
        group_reason="/Document/x: invalid",
    )

    (update,) = status_updates(parse_pain002(build_pain002(group_reject)))

    assert update.instruction_id == "ins_77"
    assert update.status is Status.REJECTED
    assert update.reason_code == "FF01"


def test_transaction_that_names_no_payment_is_a_contract_error() -> None:
    anonymous = TransactionStatus(status="ACSC", end_to_end_id="INV-1")

    with pytest.raises(ContractError) as caught:
        status_updates(parse_pain002(build_pain002(report(anonymous))))

    assert caught.value.errors[0].pointer.endswith("/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Document [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>&lol9;</MsgId><CreDtTm>2024-05-06T10:30:00</CreDtTm></GrpHdr>
</CstmrPmtStsRpt></Document>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><MsgId>&secret;</MsgId><CreDtTm>2024-05-06T10:30:00</CreDtTm></GrpHdr>
</CstmrPmtStsRpt></Document>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/evil.dtd">
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"/>"""


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_malicious_xml_is_refused_not_expanded(body: bytes) -> None:
    started = time.perf_counter()

    with pytest.raises(ContractError) as caught:
        parse_pain002(body)

    assert time.perf_counter() - started < 0.5
    assert caught.value.errors[0].pointer == "/Document"
    assert "DOCTYPE" in caught.value.errors[0].message
    assert "root:" not in str(caught.value)  # /etc/passwd was never read into the error


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b"", "/Document"),
        (b"not xml at all", "/Document"),
        (b"<Document><CstmrPmtStsRpt>", "/Document"),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>',
            "/Document",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><Other/></Document>',
            "/Document/CstmrPmtStsRpt",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>'
            b"<GrpHdr><CreDtTm>2024-05-06T10:30:00</CreDtTm></GrpHdr>"
            b"<OrgnlGrpInfAndSts><OrgnlMsgId>X</OrgnlMsgId></OrgnlGrpInfAndSts>"
            b"</CstmrPmtStsRpt></Document>",
            "/Document/CstmrPmtStsRpt/GrpHdr/MsgId",
        ),
    ],
    ids=["empty", "not-xml", "truncated", "pain001", "no-report", "no-msgid"],
)
def test_malformed_or_foreign_xml_is_a_contract_error(body: bytes, pointer: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_pain002(body)

    assert caught.value.errors[0].pointer == pointer


def test_every_structural_problem_is_reported_at_once() -> None:
    body = build_pain002(report(SETTLED_TX))
    body = body.replace(b"<TxSts>ACSC</TxSts>", b"<TxSts>settled!</TxSts>")
    body = body.replace(b"<MsgId>RPT-1</MsgId>", b"<MsgId>" + b"M" * 36 + b"</MsgId>")

    with pytest.raises(ContractError) as caught:
        parse_pain002(body)

    pointers = [e.pointer for e in caught.value.errors]
    assert "/Document/CstmrPmtStsRpt/GrpHdr/MsgId" in pointers
    assert "/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]/TxSts" in pointers
