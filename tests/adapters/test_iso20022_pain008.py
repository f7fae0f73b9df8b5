"""pain.008.001.08: what the adapter builds is XSD-valid and grouped right; what breaks the contract is refused."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from lxml import etree
from sepaxml import SepaDD

from gateway.errors import ContractError
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
    parse_pain002,
)
from gateway_adapters.iso20022_bank.pain008 import (
    Creditor,
    DirectDebit,
    build_pain008,
    collection_statuses,
    read_pain008,
)
from gateway_adapters.iso20022_bank.schemas import PAIN008_NAMESPACE, pain008_schema, validate_pain008

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
NS = {"p": PAIN008_NAMESPACE}
ACME = Creditor("ACME Appliances GmbH", "DE89370400440532013000", "DE98ZZZ09999999999", bic="COBADEFFXXX")
OTHER = Creditor("ACME Services SARL", "FR1420041010050500013M02606", "FR72ZZZ123456")


def debit(n: int, **changes: object) -> DirectDebit:
    base = DirectDebit(
        collection_id=f"col_{n:04d}",
        reference=f"INV-{n}",
        amount=Decimal("10.00") * n,
        currency="EUR",
        due_on=date(2026, 12, 21),
        sequence_type="RCUR",
        mandate_id=f"MANDATE-{n}",
        mandate_signed_on=date(2026, 1, 15),
        debtor_name=f"Debtor {n}",
        debtor_iban="NL91ABNA0417164300",
        creditor=ACME,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def xpath(body: bytes, path: str) -> list[str]:
    return [str(v) for v in etree.fromstring(body).xpath(path, namespaces=NS)]


def test_a_batch_is_xsd_valid_with_controls_and_mandate_information() -> None:
    debits = [
        debit(1, sequence_type="FRST", creditor_reference="RF18 5390 0754 7034"),
        debit(2, remittance_information="Invoice 2", debtor_bic="ABNANL2A"),
        debit(3),
    ]

    body = build_pain008(debits, message_id="MSG-2026-12-06-1", created_at=NOW)

    assert pain008_schema().validate(etree.fromstring(body))
    assert xpath(body, "/p:Document/p:CstmrDrctDbtInitn/p:GrpHdr/p:NbOfTxs/text()") == ["3"]
    assert xpath(body, "/p:Document/p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum/text()") == ["60.00"]
    assert xpath(body, "//p:PmtInf/p:PmtTpInf/p:SeqTp/text()") == ["FRST", "RCUR"]
    assert xpath(body, "//p:PmtInf/p:PmtInfId/text()") == [
        "MSG-2026-12-06-1-FRST-20261221",
        "MSG-2026-12-06-1-RCUR-20261221",
    ]
    assert xpath(body, "//p:PmtInf/p:CtrlSum/text()") == ["10.00", "50.00"]
    assert xpath(body, "//p:PmtInf/p:NbOfTxs/text()") == ["1", "2"]
    assert xpath(body, "//p:PmtInf/p:PmtTpInf/p:LclInstrm/p:Cd/text()") == ["CORE", "CORE"]
    assert xpath(body, "//p:PmtInf[1]/p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id/text()") == ["DE98ZZZ09999999999"]
    assert xpath(body, "//p:PmtInf[1]/p:CdtrSchmeId//p:SchmeNm/p:Prtry/text()") == ["SEPA"]
    assert xpath(body, "//p:DrctDbtTxInf/p:PmtId/p:EndToEndId/text()") == ["INV-1", "INV-2", "INV-3"]
    assert xpath(body, "//p:DrctDbtTxInf/p:PmtId/p:InstrId/text()") == ["col_0001", "col_0002", "col_0003"]
    assert xpath(body, "//p:MndtRltdInf/p:MndtId/text()") == ["MANDATE-1", "MANDATE-2", "MANDATE-3"]
    assert xpath(body, "//p:MndtRltdInf/p:DtOfSgntr/text()") == ["2026-01-15"] * 3
    assert xpath(body, "//p:CdtrRefInf/p:Ref/text()") == ["RF18539007547034"]
    assert xpath(body, "//p:DbtrAgt/p:FinInstnId/p:BICFI/text()") == ["ABNANL2A"]
    assert xpath(body, "//p:DbtrAgt/p:FinInstnId/p:Othr/p:Id/text()") == ["NOTPROVIDED", "NOTPROVIDED"]


def test_blocks_are_grouped_by_creditor_sequence_type_and_collection_date() -> None:
    debits = [
        debit(1),
        debit(2, due_on=date(2026, 12, 22)),
        debit(3, creditor=OTHER),
        debit(4),
        debit(5, sequence_type="FNAL"),
    ]

    body = build_pain008(debits, message_id="MSG-GROUPS", created_at=NOW)
    message = read_pain008(body)

    blocks: dict[str, list[str]] = {}
    for tx in message.transactions:
        blocks.setdefault(tx.payment_information_id, []).append(tx.end_to_end_id)
    assert list(blocks.values()) == [["INV-1", "INV-4"], ["INV-2"], ["INV-3"], ["INV-5"]]
    assert len(set(blocks)) == 4  # two creditors share RCUR on the 21st: the blocks are numbered instead
    de, fr = "DE98ZZZ09999999999", "FR72ZZZ123456"
    assert [tx.creditor_id for tx in message.transactions] == [de, de, de, fr, de]


def test_building_is_deterministic() -> None:
    debits = [debit(1), debit(2, sequence_type="FRST")]

    assert build_pain008(debits, message_id="MSG-1", created_at=NOW) == build_pain008(
        debits, message_id="MSG-1", created_at=NOW
    )


def test_what_the_adapter_builds_reads_back_the_same() -> None:
    d = debit(7, creditor_reference="RF18539007547034", remittance_information="Order 7")

    (tx,) = read_pain008(build_pain008([d], message_id="MSG-7", created_at=NOW)).transactions

    assert (tx.key, tx.end_to_end_id, tx.amount, tx.currency) == ("col_0007", "INV-7", Decimal("70.00"), "EUR")
    assert (tx.sequence_type, tx.due_on, tx.mandate_id, tx.mandate_signed_on) == (
        "RCUR",
        "2026-12-21",
        "MANDATE-7",
        "2026-01-15",
    )
    assert (tx.creditor_reference, tx.remittance_information, tx.debtor_name) == (
        "RF18539007547034",
        "Order 7",
        "Debtor 7",
    )
    assert "NL91" not in repr(tx)  # IBANs stay out of repr


BAD_BATCHES = [
    ([debit(1, currency="USD")], "/debits/0/currency", "EUR"),
    ([debit(1, amount=Decimal("0.00"))], "/debits/0/amount", "0.01 to 999999999.99"),
    ([debit(1, amount=Decimal("1.001"))], "/debits/0/amount", "0.01 to 999999999.99"),
    ([debit(1, sequence_type="FIRST")], "/debits/0/sequence_type", "FRST, RCUR, OOFF, FNAL"),
    ([debit(1, mandate_id="MANDATE 1")], "/debits/0/mandate_id", "contains ' '"),
    ([debit(1, mandate_id="M" * 36)], "/debits/0/mandate_id", "at most 35"),
    ([debit(1, mandate_signed_on=date(2026, 12, 22))], "/debits/0/mandate_signed_on", "after the due date"),
    ([debit(1, debtor_iban="NL00ABNA0417164300")], "/debits/0/debtor_iban", "invalid IBAN"),
    ([debit(1, debtor_bic="NOPE")], "/debits/0/debtor_bic", "invalid BIC"),
    ([debit(1, creditor_reference="RF00123")], "/debits/0/creditor_reference", "ISO 11649"),
    ([debit(1, creditor=replace(ACME, creditor_id="DE99ZZZ09999999999"))], "/debits/0/creditor/creditor_id", "invalid"),
    ([debit(1, reference="R" * 36)], "/debits/0/reference", "1 to 35"),
    ([debit(1), debit(1, reference="OTHER")], "/debits/1/collection_id", "repeats /debits/0"),
    ([debit(1), debit(2, reference="INV-1")], "/debits/1/reference", "repeats /debits/0"),
    ([], "/debits", "at least one"),
]


@pytest.mark.parametrize(("debits", "pointer", "message"), BAD_BATCHES)
def test_a_batch_breaking_the_contract_is_refused_with_the_pointer(
    debits: list[DirectDebit], pointer: str, message: str
) -> None:
    with pytest.raises(ContractError) as caught:
        build_pain008(debits, message_id="MSG-BAD", created_at=NOW)

    assert caught.value.errors[0].pointer == pointer
    assert message in caught.value.errors[0].message
    assert "\n" not in caught.value.message


def test_every_problem_of_a_batch_is_listed() -> None:
    with pytest.raises(ContractError) as caught:
        build_pain008([debit(1, currency="USD"), debit(2, mandate_id="")], message_id="M" * 36, created_at=NOW)

    assert [e.pointer for e in caught.value.errors] == ["/message_id", "/debits/0/currency", "/debits/1/mandate_id"]


def _good() -> bytes:
    return build_pain008([debit(1), debit(2)], message_id="MSG-OK", created_at=NOW)


BROKEN = [
    # what the XSD refuses
    (lambda b: b.replace(b"<MndtId>MANDATE-1</MndtId>", b""), "MndtId"),
    (lambda b: b.replace(b"<SeqTp>RCUR</SeqTp>", b"<SeqTp>FIRST</SeqTp>"), "SeqTp"),
    (
        lambda b: b.replace(b"<EndToEndId>INV-1</EndToEndId>", b"<EndToEndId>" + b"E" * 36 + b"</EndToEndId>"),
        "EndToEndId",
    ),
    (lambda b: b.replace(b"pain.008.001.08", b"pain.008.001.02"), "/Document"),
    # what the XSD allows and SEPA Core does not
    (lambda b: b.replace(b'Ccy="EUR"', b'Ccy="CHF"', 1), "InstdAmt/@Ccy"),
    (lambda b: b.replace(b"<Cd>CORE</Cd>", b"<Cd>B2B</Cd>"), "LclInstrm/Cd"),
    (lambda b: b.replace(b"<CtrlSum>30.00</CtrlSum>", b"<CtrlSum>31.00</CtrlSum>", 1), "GrpHdr/CtrlSum"),
    (lambda b: b.replace(b"<NbOfTxs>2</NbOfTxs>", b"<NbOfTxs>3</NbOfTxs>", 1), "GrpHdr/NbOfTxs"),
    (lambda b: b.replace(b"DE98ZZZ09999999999", b"DE99ZZZ09999999999"), "CdtrSchmeId"),
    (lambda b: b.replace(b"<MndtId>MANDATE-1</MndtId>", b"<MndtId>MANDATE_1</MndtId>"), "MndtId"),
]


@pytest.mark.parametrize(("breaks", "where"), BROKEN)
def test_a_broken_pain008_is_refused_naming_where(breaks: object, where: str) -> None:
    body = breaks(_good())  # type: ignore[operator]

    with pytest.raises(ContractError) as caught:
        read_pain008(body)

    assert where in caught.value.errors[0].pointer or where in caught.value.errors[0].message


def test_the_xsd_is_the_official_one_with_choices_intact() -> None:
    # a widely copied pain.008.001.08.xsd flattens xs:choice to xs:sequence; this one accepts SvcLvl/Cd alone
    root = validate_pain008(_good())
    assert root.find(".//{*}SvcLvl/{*}Cd").text == "SEPA"


def test_a_pain008_written_by_sepaxml_reads_with_our_contract() -> None:
    # another library's output: proves the reader follows the standard, not just our builder
    sdd = SepaDD(
        {
            "name": "ACME Appliances GmbH",
            "IBAN": "DE89370400440532013000",
            "BIC": "COBADEFFXXX",
            "batch": True,
            "creditor_id": "DE98ZZZ09999999999",
            "currency": "EUR",
        },
        schema="pain.008.001.08",
        clean=True,
    )
    sdd.add_payment(
        {
            "name": "Debtor One",
            "IBAN": "NL91ABNA0417164300",
            "BIC": "ABNANL2A",
            "amount": 1234,
            "type": "FRST",
            "collection_date": dt.date(2026, 12, 21),
            "mandate_id": "MANDATE-1",
            "mandate_date": dt.date(2026, 1, 15),
            "description": "Invoice 1",
            "endtoend_id": "INV-1",
        }
    )

    message = read_pain008(sdd.export(validate=True))

    (tx,) = message.transactions
    assert (tx.end_to_end_id, tx.amount, tx.sequence_type, tx.mandate_id) == (
        "INV-1",
        Decimal("12.34"),
        "FRST",
        "MANDATE-1",
    )


def test_the_banks_pain002_answers_map_to_collection_statuses() -> None:
    report = parse_pain002(
        build_pain002(
            StatusReport(
                message_id="RPT-1",
                created_at=NOW,
                original_message_id="MSG-OK",
                original_message_name="pain.008.001.08",
                payments=(
                    PaymentInformationStatus(
                        "MSG-OK-RCUR-20261221",
                        transactions=(
                            TransactionStatus("ACCP", "col_0001", "INV-1"),
                            TransactionStatus("RJCT", "col_0002", "INV-2", "AC04"),
                            TransactionStatus("RJCT", "col_0003", "INV-3", "MS02", "Debtor refused"),
                        ),
                    ),
                    PaymentInformationStatus(
                        "MSG-OK-FRST-20261221",
                        status="RJCT",
                        reason_code="BE05",
                        transactions=(TransactionStatus("PDNG", "col_0004", "INV-4"),),
                    ),
                ),
            )
        )
    )

    found = [
        (s.end_to_end_id, s.status, s.outcome and (s.outcome.kind, s.outcome.reason_code, s.outcome.reason))
        for s in collection_statuses(report)
    ]

    assert found == [
        ("INV-1", "accepted", None),
        ("INV-2", "rejected", ("reject", "AC04", "closed account number")),
        ("INV-3", "rejected", ("refusal", "MS02", "Debtor refused")),
        ("INV-4", "rejected", ("reject", "BE05", "creditor identifier incorrect")),
    ]


def test_a_whole_file_refused_is_one_rejected_status_without_ids() -> None:
    report = parse_pain002(
        build_pain002(
            StatusReport(
                message_id="RPT-2",
                created_at=NOW,
                original_message_id="MSG-BAD",
                original_message_name="pain.008.001.08",
                group_status="RJCT",
                group_reason_code="FF01",
                group_reason="/Document/...: MndtId",
            )
        )
    )

    (status,) = collection_statuses(report)

    assert (status.instruction_id, status.status) == (None, "rejected")
    assert status.outcome is not None and (status.outcome.kind, status.outcome.reason_code) == ("reject", "FF01")
