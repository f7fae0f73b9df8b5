"""camt.054 (bank-to-customer debit/credit notification): build version 8, read any version.

Reading shares ``camt.read_reports`` with camt.053 (a ``Ntfctn`` is a ``Stmt``
without balances); real files of versions 2 and 8 and our own of version 4 and
8 are read in the tests. On top of the generic entries it sorts what a
creditor's notification carries into three kinds, the wiring contract of
docs/direct-debits.md:

- ``collected_debits``: booked credit entries of SEPA direct debits
  (bank transaction family ``RDDT``, no return reason): money collected;
- ``r_transactions``: entries with ``RtrInf``: returns and refunds after
  settlement (a booked debit) or rejects and refusals before it (an entry that
  is not booked), classified by ``reasons.classify_r_transaction``;
- ``incoming_credits``: every other credit entry, one per ``TxDtls``: incoming
  transfers with their remittance (ISO 11649 RF reference, unstructured text),
  payer name and account, end-to-end id.

The builder writes ``camt.054.001.08`` (or another version's namespace with
the same elements, for tests of the reader); the bank simulator serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from lxml import etree
from stdnum import iso11649

from gateway.contracts.safexml import clean_text
from gateway.domain.money import minor_units
from gateway_adapters.iso20022_bank.camt import (
    CAMT054_LAYOUT,
    BookEntry,
    StatementRead,
    TransactionDetail,
    read_reports,
)
from gateway_adapters.iso20022_bank.reasons import RTransaction, classify_r_transaction

__all__ = [
    "CAMT054_NAMESPACE",
    "CAMT054_VERSION",
    "CollectedDebit",
    "IncomingCredit",
    "Notification",
    "NotificationEntry",
    "RTransactionEntry",
    "build_camt054",
    "build_camt054_notifications",
    "collected_debits",
    "incoming_credits",
    "r_transactions",
    "read_camt054",
]

CAMT054_VERSION = "camt.054.001.08"
CAMT054_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{CAMT054_VERSION}"
#: ISO bank transaction code family of received direct debits (credit to the creditor, or its return)
DIRECT_DEBIT_FAMILY = "RDDT"


# -- building ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationEntry:
    """One entry to notify (the simulator's view of a movement on the creditor's account)."""

    kind: str  # collected | returned | rejected | credit_transfer
    amount: Decimal
    currency: str
    booked_on: date
    end_to_end_id: str
    servicer_reference: str
    instruction_id: str | None = None
    mandate_id: str | None = None
    debtor_name: str | None = None
    debtor_iban: str | None = field(default=None, repr=False)
    creditor_name: str | None = None
    creditor_iban: str | None = field(default=None, repr=False)
    remittance_text: str | None = None
    creditor_reference: str | None = None
    reason_code: str | None = None
    reason_text: str | None = None
    value_on: date | None = None  # the value date, when it is not the booking date

    @property
    def credit(self) -> bool:
        return self.kind in ("collected", "credit_transfer")


_FAMILY = {
    "collected": ("RDDT", "ESDD"),  # SEPA Core direct debit collected
    "returned": ("RDDT", "UPDD"),  # unpaid (returned / refunded) direct debit
    "rejected": ("RDDT", "UPDD"),
    "credit_transfer": ("RCDT", "ESCT"),  # SEPA credit transfer received
}


@dataclass(frozen=True)
class Notification:
    """One ``Ntfctn`` to write: its entries, its id and its electronic sequence number."""

    entries: Sequence[NotificationEntry]
    notification_id: str
    sequence: int | None = None


def build_camt054(
    entries: Sequence[NotificationEntry],
    *,
    account_iban: str,
    currency: str,
    message_id: str,
    notification_id: str,
    created_at: datetime,
    sequence: int | None = None,
    version: str = CAMT054_VERSION,
) -> bytes:
    """One camt.054 notification of ``entries`` on one account, with ``TxsSummry`` control figures.

    A ``rejected`` entry (R-transaction before settlement) is written with
    status ``INFO``: nothing was booked; every other entry is ``BOOK``.
    """
    return build_camt054_notifications(
        [Notification(entries, notification_id, sequence)],
        account_iban=account_iban,
        currency=currency,
        message_id=message_id,
        created_at=created_at,
        version=version,
    )


def build_camt054_notifications(
    notifications: Sequence[Notification],
    *,
    account_iban: str,
    currency: str,
    message_id: str,
    created_at: datetime,
    version: str = CAMT054_VERSION,
) -> bytes:
    """A camt.054 message of several notifications on one account (``build_camt054`` writes one)."""
    ns = f"urn:iso:std:iso:20022:tech:xsd:{version}"
    v8 = int(version.rsplit(".", 1)[-1]) >= 8

    def el(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
        node = etree.SubElement(parent, f"{{{ns}}}{tag}", attrib)
        if value is not None:
            node.text = value
        return node

    def amount(parent: etree._Element, tag: str, value: Decimal, ccy: str) -> None:
        el(parent, tag, f"{abs(value):.{minor_units(ccy)}f}", Ccy=ccy)

    def party(parent: etree._Element, tag: str, name: str) -> None:
        node = el(parent, tag)
        el(el(node, "Pty") if v8 else node, "Nm", clean_text(name, 140))

    root = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    doc = el(root, "BkToCstmrDbtCdtNtfctn")
    header = el(doc, "GrpHdr")
    el(header, "MsgId", message_id[:35])
    el(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    for note in notifications:
        ntfctn = el(doc, "Ntfctn")
        entries, notification_id, sequence = note.entries, note.notification_id, note.sequence
        el(ntfctn, "Id", notification_id[:35])
        if sequence is not None:
            el(ntfctn, "ElctrncSeqNb", str(sequence))
        el(ntfctn, "CreDtTm", created_at.replace(microsecond=0).isoformat())
        acct = el(ntfctn, "Acct")
        el(el(acct, "Id"), "IBAN", account_iban)
        el(acct, "Ccy", currency)
        booked = [e for e in entries if e.kind != "rejected"]
        summary = el(ntfctn, "TxsSummry")
        total = el(summary, "TtlNtries")
        el(total, "NbOfNtries", str(len(booked)))
        for tag, side in (("TtlCdtNtries", True), ("TtlDbtNtries", False)):
            part = [e for e in booked if e.credit is side]
            node = el(summary, tag)
            el(node, "NbOfNtries", str(len(part)))
            el(node, "Sum", f"{sum((e.amount for e in part), Decimal(0)):.{minor_units(currency)}f}")
        for e in entries:
            ntry = el(ntfctn, "Ntry")
            amount(ntry, "Amt", e.amount, e.currency)
            el(ntry, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            status = "INFO" if e.kind == "rejected" else "BOOK"
            if v8:  # EntryStatus1Choice from version 8; a bare code before
                el(el(ntry, "Sts"), "Cd", status)
            else:
                el(ntry, "Sts", status)
            el(el(ntry, "BookgDt"), "Dt", e.booked_on.isoformat())
            el(el(ntry, "ValDt"), "Dt", (e.value_on or e.booked_on).isoformat())
            el(ntry, "AcctSvcrRef", e.servicer_reference[:35])
            family, sub = _FAMILY[e.kind]
            domn = el(el(ntry, "BkTxCd"), "Domn")
            el(domn, "Cd", "PMNT")
            fmly = el(domn, "Fmly")
            el(fmly, "Cd", family)
            el(fmly, "SubFmlyCd", sub)
            tx = el(el(ntry, "NtryDtls"), "TxDtls")
            refs = el(tx, "Refs")
            el(refs, "AcctSvcrRef", e.servicer_reference[:35])
            if e.instruction_id:
                el(refs, "InstrId", e.instruction_id[:35])
            el(refs, "EndToEndId", e.end_to_end_id[:35])
            if e.mandate_id:
                el(refs, "MndtId", e.mandate_id[:35])
            amount(tx, "Amt", e.amount, e.currency)
            el(tx, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            if e.debtor_name or e.debtor_iban or e.creditor_name or e.creditor_iban:
                parties = el(tx, "RltdPties")
                if e.debtor_name:
                    party(parties, "Dbtr", e.debtor_name)
                if e.debtor_iban:
                    el(el(el(parties, "DbtrAcct"), "Id"), "IBAN", e.debtor_iban)
                if e.creditor_name:
                    party(parties, "Cdtr", e.creditor_name)
                if e.creditor_iban:
                    el(el(el(parties, "CdtrAcct"), "Id"), "IBAN", e.creditor_iban)
            if e.remittance_text or e.creditor_reference:
                rmt = el(tx, "RmtInf")
                if e.remittance_text:
                    el(rmt, "Ustrd", clean_text(e.remittance_text, 140))
                if e.creditor_reference:
                    ref = el(el(rmt, "Strd"), "CdtrRefInf")
                    el(el(el(ref, "Tp"), "CdOrPrtry"), "Cd", "SCOR")
                    el(ref, "Ref", e.creditor_reference)
            if e.reason_code:
                rtr = el(tx, "RtrInf")
                el(el(rtr, "Rsn"), "Cd", e.reason_code)
                if e.reason_text:
                    el(rtr, "AddtlInf", clean_text(e.reason_text, 105))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- reading ----------------------------------------------------------------------------


def read_camt054(body: bytes) -> list[StatementRead]:
    """Every notification (``Ntfctn``) of a camt.054 of any version; ``ContractError`` listing every problem."""
    return read_reports(body, CAMT054_LAYOUT)


@dataclass(frozen=True)
class CollectedDebit:
    """A direct debit the bank collected (credited to the creditor)."""

    end_to_end_id: str | None
    instruction_id: str | None
    amount: Decimal
    currency: str
    booked_on: date | None
    servicer_reference: str | None


@dataclass(frozen=True)
class RTransactionEntry:
    """An R-transaction on a collection: which one, how much, and what it means."""

    end_to_end_id: str | None
    instruction_id: str | None
    amount: Decimal
    currency: str
    booked_on: date | None
    servicer_reference: str | None
    settled: bool  # True: after settlement (booked); False: before it (information only)
    outcome: RTransaction


@dataclass(frozen=True)
class IncomingCredit:
    """An incoming transfer: what receipts match to receivables (payer account out of repr)."""

    amount: Decimal
    currency: str
    booked_on: date | None
    value_on: date | None
    end_to_end_id: str | None
    servicer_reference: str | None
    debtor_name: str | None
    debtor_account: str | None = field(repr=False)
    creditor_reference: str | None  # as given (SCOR); check ``rf_valid`` before trusting it as ISO 11649
    remittance_text: str | None

    @property
    def rf_valid(self) -> bool:
        """Whether the creditor reference is a valid ISO 11649 RF reference."""
        return self.creditor_reference is not None and iso11649.is_valid(self.creditor_reference)


def _family(entry: BookEntry) -> str | None:
    parts = (entry.bank_transaction_code or "").split("/")
    return parts[1] if len(parts) > 1 else None


def _first(entry: BookEntry) -> TransactionDetail:
    return entry.details[0] if entry.details else TransactionDetail()


def collected_debits(reports: Sequence[StatementRead]) -> list[CollectedDebit]:
    """Booked credits of direct debits (family ``RDDT``) without a return reason."""
    return [
        CollectedDebit(tx.end_to_end_id, tx.instruction_id, tx.amount or e.amount, e.currency, e.booked_on, _ref(e))
        for s in reports
        for e in s.entries
        if e.credit and e.status in (None, "BOOK") and _family(e) == DIRECT_DEBIT_FAMILY and not e.return_reason
        for tx in (e.details or (TransactionDetail(),))
    ]


def _ref(entry: BookEntry) -> str | None:
    return entry.account_servicer_reference


def r_transactions(reports: Sequence[StatementRead]) -> list[RTransactionEntry]:
    """Entries carrying a return reason, one per ``TxDtls`` with ``RtrInf``, classified."""
    out: list[RTransactionEntry] = []
    for s in reports:
        for e in s.entries:
            settled = e.status in (None, "BOOK")
            for tx in e.details:
                if not tx.return_reason:
                    continue
                out.append(
                    RTransactionEntry(
                        end_to_end_id=tx.end_to_end_id,
                        instruction_id=tx.instruction_id,
                        amount=tx.amount if tx.amount is not None else e.amount,
                        currency=tx.currency or e.currency,
                        booked_on=e.booked_on,
                        servicer_reference=_ref(e),
                        settled=settled,
                        outcome=classify_r_transaction(tx.return_reason, settled=settled, text=tx.return_text),
                    )
                )
    return out


def incoming_credits(reports: Sequence[StatementRead]) -> list[IncomingCredit]:
    """Booked credit entries that are not direct debits nor returns, one per ``TxDtls`` (or per entry)."""
    out: list[IncomingCredit] = []
    for s in reports:
        for e in s.entries:
            if not e.credit or e.status not in (None, "BOOK") or e.return_reason or _family(e) == DIRECT_DEBIT_FAMILY:
                continue
            single = len(e.details) <= 1
            for tx in e.details or (TransactionDetail(),):
                out.append(
                    IncomingCredit(
                        amount=e.amount if single or tx.amount is None else tx.amount,
                        currency=e.currency if single or not tx.currency else tx.currency,
                        booked_on=e.booked_on,
                        value_on=e.value_on,
                        end_to_end_id=tx.end_to_end_id,
                        servicer_reference=_ref(e),
                        debtor_name=tx.debtor_name,
                        debtor_account=tx.debtor_account,
                        creditor_reference=tx.creditor_reference,
                        remittance_text=tx.remittance_text,
                    )
                )
    return out
