"""camt.054: real public notifications (v2, v8) and our own (v4, v8) read into entries, credits and R-transactions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.errors import ContractError
from gateway_adapters.iso20022_bank.camt053 import read_camt053
from gateway_adapters.iso20022_bank.camt054 import (
    NotificationEntry,
    build_camt054,
    collected_debits,
    incoming_credits,
    r_transactions,
    read_camt054,
)
from gateway_adapters.iso20022_bank.statements import read_camt054_statements

NOW = datetime(2026, 12, 21, 18, 0, tzinfo=UTC)
HEAD = b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
DAY = date(2026, 12, 21)


def test_real_v2_notification_is_read_with_every_transaction(partner_files: Path) -> None:
    (n,) = read_camt054((partner_files / "camt054/camt054.v2.xml").read_bytes())

    assert (n.statement_id, n.sequence, n.account, n.currency) == (
        "AAAASESS-FP-ACCR001",
        12312,
        "CH2801234000123456789",
        None,
    )
    (entry,) = n.entries
    assert (entry.amount, entry.currency, entry.credit, entry.status) == (Decimal("200000"), "SEK", False, "BOOK")
    assert entry.booked_on == date(2007, 10, 18) and entry.bank_transaction_code == "PMNT/ICDT/DMCT"
    assert [d.end_to_end_id for d in entry.details] == [
        "MUELL/FINP/RA12345",
        "NOTPROVIDED",
        "MUELL/FINP/RA12345",
        "MUELL/FINP/RA12345",
    ]
    assert [d.debtor_name for d in entry.details] == ["MUELLER", "Test Name", "MUELLER", "MUELLER"]
    # only SCOR references are creditor references; a proprietary "ISR Reference" is not
    assert [d.creditor_reference for d in entry.details] == [None, "ISR ref number V2", None, "Ref number V3 block 1"]
    assert entry.details[3].remittance_text == (
        "Unstructured Remittance Information V3 block 1 Unstructured Remittance Information V3 block 2"
    )


def test_real_v8_notification_is_read_with_parties_wrapped_in_pty(partner_files: Path) -> None:
    (n,) = read_camt054((partner_files / "camt054/camt054.v8.xml").read_bytes())

    (entry,) = n.entries
    assert n.account == "CH2801234000123456789" and entry.account_servicer_reference == "ACSR160617103200001"
    first = entry.details[0]
    assert (first.end_to_end_id, first.instruction_id, first.amount, first.currency) == (
        "UXC06170000006PI00001EE00001",
        "UXC06170000006PI00001II00001",
        Decimal("3.1"),
        "CHF",
    )
    assert (first.debtor_name, first.creditor_name) == ("UNIFITS GmbH", "Example Creditor 3 - V1")
    assert first.creditor_account == "CH4112345003131313131"
    assert "CH41" not in repr(first)  # accounts stay out of repr
    # a debit notification: no incoming credits, no direct debits, no R-transactions
    assert (incoming_credits([n]), collected_debits([n]), r_transactions([n])) == ([], [], [])


@pytest.mark.parametrize("name", ["camt054.v2.xml", "camt054.v8.xml"])
def test_real_notifications_become_statements_with_masked_accounts(partner_files: Path, name: str) -> None:
    (s,) = read_camt054_statements((partner_files / "camt054" / name).read_bytes())

    assert (s.format, s.source, s.currency, s.opening_minor, s.closing_minor) == (
        "camt.054",
        "iso20022_bank",
        "SEK",
        None,
        None,
    )
    assert s.account is not None and s.account.endswith("6789") and "CH28" not in s.account
    (line,) = s.lines
    assert (line.amount_minor, line.direction, line.kind) == (20000000, "debit", "booked")


def _entries() -> list[NotificationEntry]:
    common = {"currency": "EUR", "booked_on": DAY, "creditor_name": "ACME Appliances GmbH"}
    return [
        NotificationEntry(
            kind="collected",
            amount=Decimal("49.90"),
            end_to_end_id="INV-1",
            servicer_reference="BANKREF-1",
            instruction_id="col_0001",
            mandate_id="MANDATE-1",
            debtor_name="Debtor One",
            debtor_iban="NL91ABNA0417164300",
            **common,  # type: ignore[arg-type]
        ),
        NotificationEntry(
            kind="returned",
            amount=Decimal("20.00"),
            end_to_end_id="INV-2",
            servicer_reference="BANKREF-2",
            instruction_id="col_0002",
            reason_code="AM04",
            reason_text="insufficient funds",
            **common,  # type: ignore[arg-type]
        ),
        NotificationEntry(
            kind="returned",
            amount=Decimal("30.00"),
            end_to_end_id="INV-3",
            servicer_reference="BANKREF-3",
            instruction_id="col_0003",
            reason_code="MD06",
            **common,  # type: ignore[arg-type]
        ),
        NotificationEntry(
            kind="rejected",
            amount=Decimal("15.00"),
            end_to_end_id="INV-4",
            servicer_reference="BANKREF-4",
            instruction_id="col_0004",
            reason_code="MS02",
            **common,  # type: ignore[arg-type]
        ),
        NotificationEntry(
            kind="credit_transfer",
            amount=Decimal("1190.00"),
            end_to_end_id="DIST-PAY-77",
            servicer_reference="BANKREF-5",
            debtor_name="Nordic Distributors AB",
            debtor_iban="SE4550000000058398257466",
            remittance_text="Invoices 2026-0042 and 2026-0043",
            creditor_reference="RF18539007547034",
            **common,  # type: ignore[arg-type]
        ),
    ]


@pytest.mark.parametrize("version", ["camt.054.001.04", "camt.054.001.08"])
def test_our_own_notification_sorts_into_collected_returned_and_incoming(version: str) -> None:
    body = build_camt054(
        _entries(),
        account_iban="DE89370400440532013000",
        currency="EUR",
        message_id="NTF-1",
        notification_id="NTF-1-1",
        created_at=NOW,
        sequence=7,
        version=version,
    )
    reports = read_camt054(body)

    (collected,) = collected_debits(reports)
    assert (collected.end_to_end_id, collected.instruction_id, collected.amount) == (
        "INV-1",
        "col_0001",
        Decimal("49.90"),
    )
    r = r_transactions(reports)
    assert [(x.end_to_end_id, x.settled, x.outcome.kind, x.outcome.status, x.outcome.reason_code) for x in r] == [
        ("INV-2", True, "return", "returned", "AM04"),
        ("INV-3", True, "refund", "returned", "MD06"),
        ("INV-4", False, "refusal", "rejected", "MS02"),
    ]
    assert r[0].outcome.reason == "insufficient funds" and r[1].outcome.authorised is True
    (credit,) = incoming_credits(reports)
    assert (credit.amount, credit.end_to_end_id, credit.debtor_name) == (
        Decimal("1190.00"),
        "DIST-PAY-77",
        "Nordic Distributors AB",
    )
    assert (credit.creditor_reference, credit.rf_valid) == ("RF18539007547034", True)
    assert credit.remittance_text == "Invoices 2026-0042 and 2026-0043"
    assert credit.debtor_account == "SE4550000000058398257466" and "SE45" not in repr(credit)


def test_our_own_notification_as_a_statement_checks_its_declared_figures() -> None:
    body = build_camt054(
        _entries(),
        account_iban="DE89370400440532013000",
        currency="EUR",
        message_id="NTF-1",
        notification_id="NTF-1-1",
        created_at=NOW,
        sequence=7,
    )

    (s,) = read_camt054_statements(body)

    assert (s.statement_id, s.sequence, s.declared_count) == ("NTF-1-1", 7, 4)  # the refusal booked nothing
    assert (s.declared_credits_minor, s.declared_debits_minor) == (123990, 5000)
    assert [(line.kind, line.reason_code, line.direction) for line in s.lines] == [
        ("booked", None, "credit"),
        ("return", "AM04", "debit"),
        ("return", "MD06", "debit"),
        ("booked", None, "credit"),
    ]
    transfer = s.lines[3]
    assert transfer.counterparty_name == "Nordic Distributors AB"
    assert transfer.counterparty_account is not None and transfer.counterparty_account.endswith("7466")
    assert transfer.text == "RF18539007547034 Invoices 2026-0042 and 2026-0043"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt/></Document>',
            "/Document",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"><Other/></Document>',
            "/Document/BkToCstmrDbtCdtNtfctn",
        ),
        (
            HEAD + b"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId>"
            b"</GrpHdr><Ntfctn><Id>N</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct><Ntry>"
            b'<Amt Ccy="EUR">1O.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry></Ntfctn></BkToCstmrDbtCdtNtfctn></Document>',
            "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Ntry[1]/Amt",
        ),
        (
            HEAD + b"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId>"
            b'</GrpHdr><Ntfctn><Id>N</Id><Ntry><Amt Ccy="EUR">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry>'
            b"</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>",
            "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn[1]/Acct",
        ),
    ],
)
def test_a_file_that_is_not_a_valid_camt054_is_refused_with_a_pointer(body: bytes, pointer: str) -> None:
    with pytest.raises(ContractError) as caught:
        read_camt054(body)

    assert caught.value.errors[0].pointer == pointer
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("name", ["camt053.v2.minimal.xml", "camt053.v4.xml", "camt053.v8.xml"])
def test_credit_entries_of_real_camt053_statements_are_incoming_credits_too(partner_files: Path, name: str) -> None:
    # issue 13: credit entries of camt.053 statements become receipts like camt.054 notifications
    (credit,) = incoming_credits(read_camt053((partner_files / "camt053" / name).read_bytes()))

    assert (credit.amount, credit.currency, credit.booked_on, credit.value_on) == (
        Decimal("8.85"),
        "EUR",
        date(2014, 12, 31),
        date(2015, 1, 2),
    )
    assert (credit.debtor_name, credit.creditor_reference, credit.rf_valid) == ("NAME NAME", "4654654654654654", False)
