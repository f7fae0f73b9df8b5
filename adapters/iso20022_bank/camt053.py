"""camt.053 (bank-to-customer statement): build version 8, read any version structurally.

No camt XSD ships with any package this project uses, so — as for pain.002 —
the reader checks in code the structure it relies on, by local names, for any
``camt.053.001.NN`` (real files of versions 2, 4 and 8 are read in the tests),
and reports every problem as a ``FieldError``. The builder writes
``camt.053.001.08``; the bank simulator uses it for ``/_sim/statements/{date}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from gateway.contracts.safexml import child, children, clean_text, local_name, namespace, parse_xml, text
from gateway.domain.money import minor_units
from gateway.errors import ContractError, FieldError

__all__ = [
    "CAMT053_NAMESPACE",
    "CAMT053_VERSION",
    "BookEntry",
    "StatementBalance",
    "StatementRead",
    "build_camt053",
    "read_camt053",
]

CAMT053_VERSION = "camt.053.001.08"
CAMT053_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{CAMT053_VERSION}"
_NS_RE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.[0-9]{2}$")
_ROOT = "/Document/BkToCstmrStmt"


@dataclass(frozen=True)
class StatementBalance:
    code: str
    amount: Decimal
    currency: str
    credit: bool
    on: date | None = None


@dataclass(frozen=True)
class BookEntry:
    """One ``Ntry`` (what reconciliation matches against)."""

    amount: Decimal
    currency: str
    credit: bool
    status: str | None = None
    booked_on: date | None = None
    account_servicer_reference: str | None = None
    end_to_end_ids: tuple[str, ...] = ()
    instruction_ids: tuple[str, ...] = ()
    return_reason: str | None = None
    counterparty_name: str | None = None
    value_on: date | None = None
    counterparty_account: str | None = None  # the payer's (credit) or payee's (debit) IBAN or other id
    remittance_reference: str | None = None  # RmtInf/Strd/CdtrRefInf/Ref (e.g. an ISO 11649 RF reference)
    remittance_text: str | None = None  # RmtInf/Ustrd, joined


def _party(details: list[etree._Element], credit: bool) -> tuple[str | None, str | None]:
    """The other side of an entry: the debtor of a credit, the creditor of a debit (name, account)."""
    sides = ("Dbtr", "Cdtr") if credit else ("Cdtr", "Dbtr")
    for side in sides:
        for tx in details:
            name = text(tx, "RltdPties", side, "Pty", "Nm") or text(tx, "RltdPties", side, "Nm")
            account = text(tx, "RltdPties", f"{side}Acct", "Id", "IBAN") or text(
                tx, "RltdPties", f"{side}Acct", "Id", "Othr", "Id"
            )
            if name or account:
                return name, account
    return None, None


def _remittance(details: list[etree._Element]) -> tuple[str | None, str | None]:
    """The structured creditor reference and the unstructured text of an entry's remittance information."""
    reference = next(
        (
            v
            for tx in details
            for strd in children(child(tx, "RmtInf"), "Strd")
            if (v := text(strd, "CdtrRefInf", "Ref"))
        ),
        None,
    )
    words = [
        u.text.strip() for tx in details for u in children(child(tx, "RmtInf"), "Ustrd") if u.text and u.text.strip()
    ]
    return reference, (" ".join(words) or None)


@dataclass(frozen=True)
class StatementRead:
    statement_id: str
    account: str | None
    currency: str | None
    balances: tuple[StatementBalance, ...]
    entries: tuple[BookEntry, ...]
    #: ``ElctrncSeqNb`` (else ``LglSeqNb``), the bank's running statement number
    sequence: int | None = None
    period_from: date | None = None
    period_to: date | None = None
    #: ``TxsSummry`` control figures as declared: (entries, credit sum, debit sum), each None if absent
    declared_entries: int | None = None
    declared_credits: Decimal | None = None
    declared_debits: Decimal | None = None


# -- building -------------------------------------------------------------------


def _el(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{CAMT053_NAMESPACE}}}{tag}", attrib)
    if value is not None:
        node.text = value
    return node


def _amount(parent: etree._Element, tag: str, amount: Decimal, currency: str) -> None:
    _el(parent, tag, f"{abs(amount):.{minor_units(currency)}f}", Ccy=currency)


def _balance(stmt: etree._Element, code: str, amount: Decimal, currency: str, on: date) -> None:
    bal = _el(stmt, "Bal")
    _el(_el(_el(bal, "Tp"), "CdOrPrtry"), "Cd", code)
    _amount(bal, "Amt", amount, currency)
    _el(bal, "CdtDbtInd", "CRDT" if amount >= 0 else "DBIT")
    _el(_el(bal, "Dt"), "Dt", on.isoformat())


def build_camt053(statements: Sequence[object], *, message_id: str, created_at: datetime) -> bytes:
    """A camt.053.001.08 document; ``statements`` are ``gateway_simulators.core.Statement``-shaped objects."""
    root = etree.Element(f"{{{CAMT053_NAMESPACE}}}Document", nsmap={None: CAMT053_NAMESPACE})
    doc = _el(root, "BkToCstmrStmt")
    header = _el(doc, "GrpHdr")
    _el(header, "MsgId", message_id)
    _el(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    for s in statements:
        day: date = s.day  # type: ignore[attr-defined]
        currency: str = s.currency  # type: ignore[attr-defined]
        stmt = _el(doc, "Stmt")
        _el(stmt, "Id", s.statement_id)  # type: ignore[attr-defined]
        _el(stmt, "CreDtTm", s.created_at.replace(microsecond=0).isoformat())  # type: ignore[attr-defined]
        span = _el(stmt, "FrToDt")
        _el(span, "FrDtTm", f"{day.isoformat()}T00:00:00+00:00")
        _el(span, "ToDtTm", f"{day.isoformat()}T23:59:59+00:00")
        acct = _el(stmt, "Acct")
        _el(_el(acct, "Id"), "IBAN", s.account_iban)  # type: ignore[attr-defined]
        _el(acct, "Ccy", currency)
        _balance(stmt, "OPBD", s.opening_balance, currency, day)  # type: ignore[attr-defined]
        _balance(stmt, "CLBD", s.closing_balance, currency, day)  # type: ignore[attr-defined]
        for e in s.entries:  # type: ignore[attr-defined]
            ntry = _el(stmt, "Ntry")
            _amount(ntry, "Amt", e.amount, e.currency)
            _el(ntry, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            _el(_el(ntry, "Sts"), "Cd", "BOOK")
            _el(_el(ntry, "BookgDt"), "Dt", e.booked_on.isoformat())
            _el(_el(ntry, "ValDt"), "Dt", e.booked_on.isoformat())
            _el(ntry, "AcctSvcrRef", e.partner_reference[:35])
            family = _el(_el(_el(ntry, "BkTxCd"), "Domn"), "Cd", "PMNT").getparent()
            assert family is not None
            fmly = _el(family, "Fmly")
            _el(fmly, "Cd", "ICDT")
            _el(fmly, "SubFmlyCd", "RRTN" if e.credit and e.reason_code else "ESCT")
            tx = _el(_el(ntry, "NtryDtls"), "TxDtls")
            refs = _el(tx, "Refs")
            _el(refs, "AcctSvcrRef", e.partner_reference[:35])
            if e.instruction_id:
                _el(refs, "InstrId", e.instruction_id[:35])
            _el(refs, "EndToEndId", e.reference[:35])
            _amount(tx, "Amt", e.amount, e.currency)
            _el(tx, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            if e.counterparty_name or e.counterparty_iban:
                parties = _el(tx, "RltdPties")
                if e.counterparty_name:
                    _el(_el(_el(parties, "Cdtr"), "Pty"), "Nm", clean_text(e.counterparty_name, 140))
                if e.counterparty_iban:
                    _el(_el(_el(parties, "CdtrAcct"), "Id"), "IBAN", e.counterparty_iban)
            if e.credit and e.reason_code:
                _el(_el(_el(tx, "RtrInf"), "Rsn"), "Cd", e.reason_code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- reading --------------------------------------------------------------------


class _Reader:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def amount(self, node: etree._Element | None, pointer: str) -> tuple[Decimal, str] | None:
        if node is None:
            self.errors.append(FieldError(pointer, "is required"))
            return None
        try:
            value = Decimal((node.text or "").strip())
        except InvalidOperation:
            self.errors.append(FieldError(pointer, f"{(node.text or '')[:20]!r} is not an amount"))
            return None
        currency = node.get("Ccy") or ""
        if not re.fullmatch(r"[A-Z]{3}", currency):
            self.errors.append(FieldError(f"{pointer}/@Ccy", "is not a currency code"))
            return None
        return value, currency

    def credit(self, element: etree._Element, pointer: str) -> bool:
        value = text(element, "CdtDbtInd")
        if value not in ("CRDT", "DBIT"):
            self.errors.append(FieldError(f"{pointer}/CdtDbtInd", f"{value!r} is neither CRDT nor DBIT"))
        return value == "CRDT"

    def day(self, element: etree._Element | None) -> date | None:
        return self.day_of(text(element, "Dt") or text(element, "DtTm"))

    def day_of(self, raw: str | None) -> date | None:
        if raw is None:
            return None
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None


def _integer(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def read_camt053(body: bytes) -> list[StatementRead]:
    """Every statement in a camt.053 of any version; ``ContractError`` listing every problem."""
    root = parse_xml(body)
    ns = namespace(root)
    if local_name(root) != "Document" or not _NS_RE.fullmatch(ns):
        raise ContractError(
            "not a camt.053 statement",
            errors=[FieldError("/Document", f"expected a camt.053 Document, got {{{ns}}}{local_name(root)}")],
        )
    doc = child(root, "BkToCstmrStmt")
    if doc is None:
        raise ContractError("not a camt.053 statement", errors=[FieldError(_ROOT, "BkToCstmrStmt is missing")])
    r = _Reader()
    if text(doc, "GrpHdr", "MsgId") is None:
        r.errors.append(FieldError(f"{_ROOT}/GrpHdr/MsgId", "is required"))
    out: list[StatementRead] = []
    for s_index, stmt in enumerate(children(doc, "Stmt"), start=1):
        sp = f"{_ROOT}/Stmt[{s_index}]"
        statement_id = text(stmt, "Id")
        if statement_id is None:
            r.errors.append(FieldError(f"{sp}/Id", "is required"))
        acct = child(stmt, "Acct")
        if acct is None:
            r.errors.append(FieldError(f"{sp}/Acct", "is required"))
        account = text(acct, "Id", "IBAN") or text(acct, "Id", "Othr", "Id")
        balances: list[StatementBalance] = []
        for b_index, bal in enumerate(children(stmt, "Bal"), start=1):
            bp = f"{sp}/Bal[{b_index}]"
            code = text(bal, "Tp", "CdOrPrtry", "Cd") or text(bal, "Tp", "CdOrPrtry", "Prtry") or ""
            found = r.amount(child(bal, "Amt"), f"{bp}/Amt")
            credit = r.credit(bal, bp)
            if found:
                balances.append(StatementBalance(code, found[0], found[1], credit, r.day(child(bal, "Dt"))))
        entries: list[BookEntry] = []
        for n_index, ntry in enumerate(children(stmt, "Ntry"), start=1):
            np = f"{sp}/Ntry[{n_index}]"
            found = r.amount(child(ntry, "Amt"), f"{np}/Amt")
            credit = r.credit(ntry, np)
            sts = child(ntry, "Sts")
            status = text(sts, "Cd") or (
                sts.text.strip() if sts is not None and sts.text and sts.text.strip() else None
            )
            details = [tx for nd in children(ntry, "NtryDtls") for tx in children(nd, "TxDtls")]
            party_name, party_account = _party(details, credit)
            reference, remittance = _remittance(details)
            if found:
                entries.append(
                    BookEntry(
                        amount=found[0],
                        currency=found[1],
                        credit=credit,
                        status=status,
                        booked_on=r.day(child(ntry, "BookgDt")),
                        account_servicer_reference=text(ntry, "AcctSvcrRef"),
                        end_to_end_ids=tuple(v for tx in details if (v := text(tx, "Refs", "EndToEndId"))),
                        instruction_ids=tuple(v for tx in details if (v := text(tx, "Refs", "InstrId"))),
                        return_reason=next((v for tx in details if (v := text(tx, "RtrInf", "Rsn", "Cd"))), None),
                        counterparty_name=party_name,
                        value_on=r.day(child(ntry, "ValDt")),
                        counterparty_account=party_account,
                        remittance_reference=reference,
                        remittance_text=remittance or text(ntry, "AddtlNtryInf"),
                    )
                )
        out.append(
            StatementRead(
                statement_id=statement_id or "",
                account=account,
                currency=text(acct, "Ccy"),
                balances=tuple(balances),
                entries=tuple(entries),
                sequence=_integer(text(stmt, "ElctrncSeqNb") or text(stmt, "LglSeqNb")),
                period_from=r.day_of(text(stmt, "FrToDt", "FrDtTm")),
                period_to=r.day_of(text(stmt, "FrToDt", "ToDtTm")),
                declared_entries=_integer(text(stmt, "TxsSummry", "TtlNtries", "NbOfNtries")),
                declared_credits=_decimal(text(stmt, "TxsSummry", "TtlCdtNtries", "Sum")),
                declared_debits=_decimal(text(stmt, "TxsSummry", "TtlDbtNtries", "Sum")),
            )
        )
    if r.errors:
        first = r.errors[0]
        raise ContractError(f"invalid camt.053: {first.pointer}: {first.message}", errors=r.errors)
    return out
