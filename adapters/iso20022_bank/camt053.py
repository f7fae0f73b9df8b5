"""camt.053 (bank-to-customer statement): build version 8, read any version structurally.

No camt XSD ships with any package this project uses, so — as for pain.002 —
the reader (``camt.read_reports``, shared with camt.054) checks in code the
structure it relies on, by local names, for any ``camt.053.001.NN`` (real files
of versions 2, 4 and 8 are read in the tests), and reports every problem as a
``FieldError``. The builder writes
``camt.053.001.08``; the bank simulator uses it for ``/_sim/statements/{date}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from lxml import etree

from gateway.contracts.safexml import clean_text
from gateway.domain.money import minor_units
from gateway_adapters.iso20022_bank.camt import CAMT053_LAYOUT, BookEntry, StatementBalance, StatementRead, read_reports

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


def _summary(stmt: etree._Element, entries: Sequence[object], currency: str) -> None:
    """``TxsSummry``: the number of entries and the count and sum of credits and of debits (control figures)."""
    places = minor_units(currency)
    summary = _el(stmt, "TxsSummry")
    _el(_el(summary, "TtlNtries"), "NbOfNtries", str(len(entries)))
    for tag, side in (("TtlCdtNtries", True), ("TtlDbtNtries", False)):
        part = [e.amount for e in entries if e.credit is side]  # type: ignore[attr-defined]
        node = _el(summary, tag)
        _el(node, "NbOfNtries", str(len(part)))
        _el(node, "Sum", f"{sum(part, Decimal(0)):.{places}f}")


def build_camt053(statements: Sequence[object], *, message_id: str, created_at: datetime, iban: bool = True) -> bytes:
    """A camt.053.001.08 document; ``statements`` are ``gateway_simulators.core.Statement``-shaped objects.

    ``iban``: the statements' accounts are IBANs (``Acct/Id/IBAN``); else they are written as
    ``Acct/Id/Othr/Id`` (scheme ``BBAN``), e.g. the US account number of an instant rail's statement.
    """
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
        if iban:
            _el(_el(acct, "Id"), "IBAN", s.account_iban)  # type: ignore[attr-defined]
        else:
            other = _el(_el(acct, "Id"), "Othr")
            _el(other, "Id", s.account_iban)  # type: ignore[attr-defined]
            _el(_el(other, "SchmeNm"), "Cd", "BBAN")
        _el(acct, "Ccy", currency)
        _balance(stmt, "OPBD", s.opening_balance, currency, day)  # type: ignore[attr-defined]
        _balance(stmt, "CLBD", s.closing_balance, currency, day)  # type: ignore[attr-defined]
        _summary(stmt, s.entries, currency)  # type: ignore[attr-defined]
        for e in s.entries:  # type: ignore[attr-defined]
            incoming = bool(getattr(e, "incoming", False))
            ntry = _el(stmt, "Ntry")
            _amount(ntry, "Amt", e.amount, e.currency)
            _el(ntry, "CdtDbtInd", "CRDT" if e.credit else "DBIT")
            _el(_el(ntry, "Sts"), "Cd", "BOOK")
            _el(_el(ntry, "BookgDt"), "Dt", e.booked_on.isoformat())
            _el(_el(ntry, "ValDt"), "Dt", (getattr(e, "value_on", None) or e.booked_on).isoformat())
            _el(ntry, "AcctSvcrRef", e.partner_reference[:35])
            family = _el(_el(_el(ntry, "BkTxCd"), "Domn"), "Cd", "PMNT").getparent()
            assert family is not None
            fmly = _el(family, "Fmly")
            _el(fmly, "Cd", "RCDT" if incoming else "ICDT")  # received / issued credit transfer
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
                party, account = ("Dbtr", "DbtrAcct") if incoming else ("Cdtr", "CdtrAcct")
                if e.counterparty_name:
                    _el(_el(_el(parties, party), "Pty"), "Nm", clean_text(e.counterparty_name, 140))
                if e.counterparty_iban:
                    _el(_el(_el(parties, account), "Id"), "IBAN", e.counterparty_iban)
            text, reference = getattr(e, "remittance_text", None), getattr(e, "creditor_reference", None)
            if text or reference:
                rmt = _el(tx, "RmtInf")
                if text:
                    _el(rmt, "Ustrd", clean_text(text, 140))
                if reference:
                    ref = _el(_el(rmt, "Strd"), "CdtrRefInf")
                    _el(_el(_el(ref, "Tp"), "CdOrPrtry"), "Cd", "SCOR")
                    _el(ref, "Ref", reference[:35])
            if e.credit and e.reason_code:
                _el(_el(_el(tx, "RtrInf"), "Rsn"), "Cd", e.reason_code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- reading --------------------------------------------------------------------


def read_camt053(body: bytes) -> list[StatementRead]:
    """Every statement in a camt.053 of any version; ``ContractError`` listing every problem."""
    return read_reports(body, CAMT053_LAYOUT)
