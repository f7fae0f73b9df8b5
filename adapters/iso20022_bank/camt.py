"""Reading the bank-to-customer cash management reports (camt.053 statements, camt.054 notifications).

A camt.053 ``Stmt`` and a camt.054 ``Ntfctn`` share their structure (Id,
sequence numbers, period, account, ``TxsSummry``, ``Ntry`` with ``NtryDtls``);
only the message and report element names differ, and a notification has no
balances. ``read_reports`` reads either, of any version (``camt.05N.001.NN``),
by local names, checking in code the structure it relies on (no camt XSD ships
with any package this project uses) and reporting every problem as a
``FieldError``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, NamedTuple
from xml.sax.saxutils import quoteattr

from lxml import etree

from gateway.contracts.safexml import child, children, iterparse_safe, local_name, namespace, parse_xml, text
from gateway.errors import ContractError, FieldError

__all__ = [
    "CAMT053_LAYOUT",
    "CAMT054_LAYOUT",
    "BookEntry",
    "EntryLine",
    "ReportLayout",
    "StatementBalance",
    "StatementRead",
    "TransactionDetail",
    "entry_line",
    "entry_run_wrapper",
    "read_entry_pieces",
    "read_entry_run",
    "read_reports",
    "stream_reports",
]


@dataclass(frozen=True)
class ReportLayout:
    """Where a camt message keeps its reports."""

    name: str  # camt.053, camt.054
    message: str  # BkToCstmrStmt, BkToCstmrDbtCdtNtfctn
    report: str  # Stmt, Ntfctn
    namespace: re.Pattern[str]
    noun: str  # statement, notification


CAMT053_LAYOUT = ReportLayout(
    "camt.053",
    "BkToCstmrStmt",
    "Stmt",
    re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.[0-9]{2}$"),
    "statement",
)
CAMT054_LAYOUT = ReportLayout(
    "camt.054",
    "BkToCstmrDbtCdtNtfctn",
    "Ntfctn",
    re.compile(r"^urn:iso:std:iso:20022:tech:xsd:camt\.054\.001\.[0-9]{2}$"),
    "notification",
)


@dataclass(frozen=True)
class StatementBalance:
    code: str
    amount: Decimal
    currency: str
    credit: bool
    on: date | None = None


@dataclass(frozen=True)
class TransactionDetail:
    """One ``TxDtls`` of an entry: who paid whom, with which references (accounts out of repr)."""

    end_to_end_id: str | None = None
    instruction_id: str | None = None
    amount: Decimal | None = None  # the transaction's own amount, when the bank gives one
    currency: str | None = None
    debtor_name: str | None = None
    debtor_account: str | None = field(default=None, repr=False)
    creditor_name: str | None = None
    creditor_account: str | None = field(default=None, repr=False)
    #: ``Ustrd`` lines joined by a space
    remittance_text: str | None = None
    #: ``Strd/CdtrRefInf/Ref`` whose type is ``SCOR`` (an ISO 11649 RF reference, or a national one)
    creditor_reference: str | None = None
    #: ``RtrInf``: the return reason code and the bank's text
    return_reason: str | None = None
    return_text: str | None = None
    mandate_id: str | None = None


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
    #: the bank transaction code ``Domn/Fmly/SubFmlyCd`` path (e.g. PMNT/RDDT/UPDD), when given
    bank_transaction_code: str | None = None
    details: tuple[TransactionDetail, ...] = ()
    #: ``RvslInd``: the entry reverses an earlier one
    reversal: bool = False


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


_CURRENCY = re.compile(r"[A-Z]{3}")


class _Reader:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def amount(self, node: etree._Element | None, pointer: str, suffix: str = "") -> tuple[Decimal, str] | None:
        """``node``'s amount and currency; ``None`` (the problem noted at ``pointer + suffix``) if unreadable."""
        if node is None:
            self.errors.append(FieldError(pointer + suffix, "is required"))
            return None
        try:
            value = Decimal((node.text or "").strip())
        except InvalidOperation:
            self.errors.append(FieldError(pointer + suffix, f"{(node.text or '')[:20]!r} is not an amount"))
            return None
        currency = node.get("Ccy") or ""
        if not _CURRENCY.fullmatch(currency):
            self.errors.append(FieldError(f"{pointer}{suffix}/@Ccy", "is not a currency code"))
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


def _name(party: etree._Element | None) -> str | None:
    """A party's name: ``Nm`` (up to v.04) or ``Pty/Nm`` (v.08 and later)."""
    if party is None:
        return None
    if len(party) == 1:  # the usual shape: one of them, read without an iterator
        kid = party[0]
        tag = kid.tag
        name = _LOCAL.get(tag) or _local(tag)
        if name == "Nm":
            return _value(kid)
        return _value(_one(kid, "Nm")) if name == "Pty" else None
    k = _first_kids(party)
    return _value(k.get("Nm")) or text(k.get("Pty"), "Nm")


def _account_id(account: etree._Element | None) -> str | None:
    if account is None:
        return None
    ident = _one(account, "Id")
    return _value(_one(ident, "IBAN")) or _value(_one(_one(ident, "Othr"), "Id"))


def _creditor_reference(rmt: etree._Element | None) -> str | None:
    for strd in children(rmt, "Strd"):
        ref = child(strd, "CdtrRefInf")
        if text(ref, "Tp", "CdOrPrtry", "Cd") == "SCOR" and text(ref, "Ref"):
            return text(ref, "Ref")
    return None


_Kids = dict[str, list[etree._Element]]

#: qualified tag -> local name, so that an entry's ~30 tags are not split again for every entry (bounded: a
#: hostile file cannot grow it past ``_LOCAL_MAX`` names)
_LOCAL: dict[str, str] = {}
_LOCAL_MAX = 4096
#: a day's first ten characters -> the day (``None`` if not one): a statement's entries share a few days (bounded
#: as ``_LOCAL``)
_DAYS: dict[str, date | None] = {}
_DAYS_MAX = 4096
#: a lone ``Dt`` / ``DtTm``'s text as it is in the file -> ``_day``'s day, for texts of up to ``_DAY_TEXT_MAX``
#: characters (bounded as ``_DAYS``, in count and in size)
_DAY_TEXTS: dict[str | None, date | None] = {}
_DAY_TEXT_MAX = 40


def _local(tag: object) -> str | None:
    """The local name of a tag (``None`` for a comment or processing instruction)."""
    if not isinstance(tag, str):
        return None
    name = tag.rpartition("}")[2]
    if len(_LOCAL) < _LOCAL_MAX:
        _LOCAL[tag] = name
    return name


def _kids(element: etree._Element | None) -> _Kids:
    """The children of ``element`` by local name, in one pass (an entry is read in one walk, not one per field)."""
    out: _Kids = {}
    if element is not None:
        local = _LOCAL
        for node in element:
            tag = node.tag
            name = local.get(tag)  # a comment's or PI's tag is a function: not there either
            if name is None:
                name = _local(tag)
                if name is None:
                    continue
            found = out.get(name)
            if found is None:
                out[name] = [node]
            else:
                found.append(node)
    return out


def _first_kids(element: etree._Element | None) -> dict[str, etree._Element]:
    """The first child of each local name of ``element`` (for elements whose children do not repeat)."""
    out: dict[str, etree._Element] = {}
    if element is not None:
        local = _LOCAL
        for node in element:
            tag = node.tag
            name = local.get(tag)
            if name is None:
                name = _local(tag)
                if name is None:
                    continue
            if name not in out:
                out[name] = node
    return out


def _one(element: etree._Element | None, name: str) -> etree._Element | None:
    """``child``: the first child called ``name`` (any namespace), read by index when ``element`` has one child.

    Most elements an entry descends into (``Sts``, ``BookgDt``, ``Cdtr``, ``Pty``, ``Id``) hold one child:
    ``element[0]`` costs a fraction of an iterator over ``element``.
    """
    if element is None:
        return None
    if len(element) == 1:
        kid = element[0]
        tag = kid.tag
        return kid if (_LOCAL.get(tag) or _local(tag)) == name else None
    return child(element, name)


def _first(kids: _Kids, name: str) -> etree._Element | None:
    found = kids.get(name)
    return found[0] if found else None


def _value(node: etree._Element | None) -> str | None:
    if node is None:
        return None
    value = node.text
    if value is None:
        return None
    return value.strip() or None


def _detail(tx: etree._Element) -> tuple[TransactionDetail, str | None]:
    """One ``TxDtls``, and its return reason's code (``RtrInf/Rsn/Cd``, the entry's return reason)."""
    k = _first_kids(tx)
    refs = _first_kids(k.get("Refs"))
    pk = _first_kids(k.get("RltdPties"))
    rmt = k.get("RmtInf")
    rtr = k.get("RtrInf")
    if rmt is not None:
        ustrd = " ".join(" ".join((u.text or "").split()) for u in children(rmt, "Ustrd")).strip()
        creditor_reference = _creditor_reference(rmt)
    else:
        ustrd, creditor_reference = "", None
    amt = k.get("Amt")
    if amt is not None:
        amount, currency = _decimal((amt.text or "").strip()), amt.get("Ccy")
    else:
        amount = currency = None
    code = return_reason = return_text = None
    if rtr is not None:
        code = text(rtr, "Rsn", "Cd")
        return_reason, return_text = code or text(rtr, "Rsn", "Prtry"), text(rtr, "AddtlInf")
    detail = TransactionDetail(
        _value(refs.get("EndToEndId")),
        _value(refs.get("InstrId")),
        amount,
        currency,
        _name(pk["Dbtr"]) if "Dbtr" in pk else None,
        _account_id(pk["DbtrAcct"]) if "DbtrAcct" in pk else None,
        _name(pk["Cdtr"]) if "Cdtr" in pk else None,
        _account_id(pk["CdtrAcct"]) if "CdtrAcct" in pk else None,
        ustrd or None,
        creditor_reference,
        return_reason,
        return_text,
        _value(refs.get("MndtId")),
    )
    return detail, code


def _bank_transaction_code(btc: etree._Element | None) -> str | None:
    domain = child(btc, "Domn")
    if domain is None:
        return None
    dk = _first_kids(domain)
    fmly = _first_kids(dk.get("Fmly"))
    parts = [_value(dk.get("Cd")), _value(fmly.get("Cd")), _value(fmly.get("SubFmlyCd"))]
    return "/".join(p for p in parts if p) or None


def _day(node: etree._Element | None) -> date | None:
    """A ``Dt`` / ``DtTm`` choice (``BookgDt``, ``ValDt``) as a day; ``None`` if absent or unreadable."""
    if node is None:
        return None
    dt = dttm = None
    local = _LOCAL
    if len(node) == 1:  # the usual shape: one Dt or one DtTm, read without an iterator, its day by its text
        kid = node[0]
        tag = kid.tag
        if (local.get(tag) or _local(tag)) not in ("Dt", "DtTm"):
            return None
        text = kid.text
        found = _DAY_TEXTS.get(text, _DAY_TEXTS)
        if found is _DAY_TEXTS:
            found = _day_of_text(_value(kid))
            if (text is None or len(text) <= _DAY_TEXT_MAX) and len(_DAY_TEXTS) < _DAYS_MAX:
                _DAY_TEXTS[text] = found
        return found  # type: ignore[return-value]
    else:
        for kid in node:
            tag = kid.tag
            name = local.get(tag) or _local(tag)
            if name == "Dt":
                if dt is None:
                    dt = kid
            elif name == "DtTm" and dttm is None:
                dttm = kid
    return _day_of_text(_value(dt) or _value(dttm))


def _day_of_text(raw: str | None) -> date | None:
    """``Dt`` or ``DtTm``'s stripped text as a day: its first ten characters, an ISO date, else ``None``."""
    if raw is None:
        return None
    raw = raw[:10]
    found = _DAYS.get(raw, _DAYS)
    if found is _DAYS:
        try:
            found = date.fromisoformat(raw)
        except ValueError:
            found = None
        if len(_DAYS) < _DAYS_MAX:
            _DAYS[raw] = found
    return found  # type: ignore[return-value]


def _entry(r: _Reader, ntry: etree._Element, np: str) -> BookEntry | None:
    """One ``Ntry`` as a ``BookEntry``; ``None`` (its problems noted in ``r``) if its amount is unreadable.

    The hot path of a statement import: the entry's children are sorted by name in one walk, each
    field read from there, and the objects built positionally.
    """
    k = _kids(ntry)
    found = r.amount(_first(k, "Amt"), f"{np}/Amt")
    indicator = _value(_first(k, "CdtDbtInd"))
    if indicator not in ("CRDT", "DBIT"):
        r.errors.append(FieldError(f"{np}/CdtDbtInd", f"{indicator!r} is neither CRDT nor DBIT"))
    if not found:
        return None
    sts = _first(k, "Sts")
    status = None
    if sts is not None:
        status = text(sts, "Cd") or (sts.text.strip() if sts.text and sts.text.strip() else None)
    read = [_detail(tx) for nd in k.get("NtryDtls", ()) for tx in children(nd, "TxDtls")]
    details = tuple(d for d, _ in read)
    btc = _first(k, "BkTxCd")
    return BookEntry(
        found[0],
        found[1],
        indicator == "CRDT",
        status,
        _day(_first(k, "BookgDt")),
        _value(_first(k, "AcctSvcrRef")),
        tuple(d.end_to_end_id for d in details if d.end_to_end_id),
        tuple(d.instruction_id for d in details if d.instruction_id),
        next((code for _, code in read if code), None),
        next((d.creditor_name for d in details if d.creditor_name), None),
        _day(_first(k, "ValDt")),
        _bank_transaction_code(btc) if btc is not None else None,
        details,
        _value(_first(k, "RvslInd")) == "true",
    )


class EntryLine(NamedTuple):
    """What a statement line needs of one ``Ntry``, read straight from the element (the streamed import's path).

    The same values ``_entry`` gives a ``BookEntry`` (its first transaction's parties and remittance, the first
    end-to-end id, instruction id and return reason of any transaction), without the rest of it.
    """

    amount: Decimal
    currency: str
    credit: bool
    status: str | None
    booked_on: date | None
    value_on: date | None
    account_servicer_reference: str | None
    end_to_end_id: str | None
    instruction_id: str | None
    return_reason: str | None
    #: the first transaction's debtor (a credit) or creditor (a debit): name and account
    counterparty_name: str | None
    counterparty_account: str | None
    creditor_reference: str | None
    remittance_text: str | None


def entry_line(e: BookEntry) -> EntryLine:
    """A ``BookEntry``'s ``EntryLine`` (what ``_entry_line`` reads from the same ``Ntry``)."""
    tx = e.details[0] if e.details else None
    if tx is None:
        name, account, creditor_reference, remittance = e.counterparty_name, None, None, None
    else:
        name, account = (tx.debtor_name, tx.debtor_account) if e.credit else (tx.creditor_name, tx.creditor_account)
        creditor_reference, remittance = tx.creditor_reference, tx.remittance_text
    return EntryLine(
        e.amount,
        e.currency,
        e.credit,
        e.status,
        e.booked_on,
        e.value_on,
        e.account_servicer_reference,
        e.end_to_end_ids[0] if e.end_to_end_ids else None,
        e.instruction_ids[0] if e.instruction_ids else None,
        e.return_reason,
        name,
        account,
        creditor_reference,
        remittance,
    )


def _party(pties: etree._Element | None, party: str) -> tuple[str | None, str | None]:
    """``RltdPties``' ``party`` (``Dbtr``, ``Cdtr``): its name and account, as ``_detail`` reads them."""
    if pties is None:
        return None, None
    node = account = None
    acct = party + "Acct"
    local = _LOCAL
    if len(pties) == 1:  # the party alone (or its account alone): read without an iterator
        kid = pties[0]
        tag = kid.tag
        name = local.get(tag) or _local(tag)
        if name == party:
            return _name(kid), None
        return None, (_account_id(kid) if name == acct else None)
    for kid in pties:
        tag = kid.tag
        name = local.get(tag) or _local(tag)
        if name == party:
            if node is None:
                node = kid
        elif name == acct and account is None:
            account = kid
    return (_name(node) if node is not None else None), (_account_id(account) if account is not None else None)


def _entry_line(r: _Reader, ntry: etree._Element, np: str) -> EntryLine | None:
    """One ``Ntry`` as an ``EntryLine``; ``None`` (its problems noted in ``r``) if its amount is unreadable.

    The streamed import's hot path: the entry's children are visited once and only the elements a
    statement line needs are read (not the bank transaction code, the transactions' own amounts, nor any
    transaction's parties but the first's). Same values and same problems as ``_entry``.
    """
    amt = ind = sts = bookg = val = svcr = None
    txs: list[etree._Element] = []
    local = _LOCAL
    for node in ntry:
        tag = node.tag
        name = local.get(tag)
        if name is None:
            name = _local(tag)
            if name is None:
                continue
        if name == "Amt":
            if amt is None:
                amt = node
        elif name == "CdtDbtInd":
            if ind is None:
                ind = node
        elif name == "Sts":
            if sts is None:
                sts = node
        elif name == "BookgDt":
            if bookg is None:
                bookg = node
        elif name == "ValDt":
            if val is None:
                val = node
        elif name == "AcctSvcrRef":
            if svcr is None:
                svcr = node
        elif name == "NtryDtls":
            if len(node) == 1:  # one transaction: read without an iterator
                tx = node[0]
                tag = tx.tag
                if (local.get(tag) or _local(tag)) == "TxDtls":
                    txs.append(tx)
                continue
            for tx in node:
                tag = tx.tag
                if (local.get(tag) or _local(tag)) == "TxDtls":
                    txs.append(tx)
    found = r.amount(amt, np, "/Amt")  # the pointer is built only for a problem
    indicator = _value(ind)
    if indicator not in ("CRDT", "DBIT"):
        r.errors.append(FieldError(f"{np}/CdtDbtInd", f"{indicator!r} is neither CRDT nor DBIT"))
    if not found:
        return None
    credit = indicator == "CRDT"
    status = None
    if sts is not None:
        status = _value(_one(sts, "Cd")) or _value(sts)
    e2e = instr = code = name_ = account = creditor_reference = ustrd = None
    for n, tx in enumerate(txs):
        refs = pties = rmt = rtr = None
        for node in tx:
            tag = node.tag
            name = local.get(tag) or _local(tag)
            if name == "Refs":
                if refs is None:
                    refs = node
            elif name == "RltdPties":
                if pties is None:
                    pties = node
            elif name == "RmtInf":
                if rmt is None:
                    rmt = node
            elif name == "RtrInf" and rtr is None:
                rtr = node
        if refs is not None and (e2e is None or instr is None):
            e2e_node = instr_node = None
            for node in refs:
                tag = node.tag
                name = local.get(tag) or _local(tag)
                if name == "EndToEndId":
                    if e2e_node is None:
                        e2e_node = node
                elif name == "InstrId" and instr_node is None:
                    instr_node = node
            e2e = e2e or _value(e2e_node)
            instr = instr or _value(instr_node)
        if rtr is not None and code is None:
            code = _value(_one(_one(rtr, "Rsn"), "Cd"))
        if n == 0:
            name_, account = _party(pties, "Dbtr" if credit else "Cdtr")
            if rmt is not None:
                ustrd = " ".join(" ".join((u.text or "").split()) for u in children(rmt, "Ustrd")).strip() or None
                creditor_reference = _creditor_reference(rmt)
    return EntryLine(
        found[0],
        found[1],
        credit,
        status,
        _day(bookg),
        _day(val),
        _value(svcr),
        e2e,
        instr,
        code,
        name_,
        account,
        creditor_reference,
        ustrd,
    )


def _report(r: _Reader, stmt: etree._Element, sp: str, entries: tuple[BookEntry, ...]) -> StatementRead:
    """A report's header (id, account, balances, control figures) with ``entries``."""
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
    return StatementRead(
        statement_id=statement_id or "",
        account=account,
        currency=text(acct, "Ccy"),
        balances=tuple(balances),
        entries=entries,
        sequence=_integer(text(stmt, "ElctrncSeqNb") or text(stmt, "LglSeqNb")),
        period_from=r.day_of(text(stmt, "FrToDt", "FrDtTm")),
        period_to=r.day_of(text(stmt, "FrToDt", "ToDtTm")),
        declared_entries=_integer(text(stmt, "TxsSummry", "TtlNtries", "NbOfNtries")),
        declared_credits=_decimal(text(stmt, "TxsSummry", "TtlCdtNtries", "Sum")),
        declared_debits=_decimal(text(stmt, "TxsSummry", "TtlDbtNtries", "Sum")),
    )


def check_root(root: etree._Element, layout: ReportLayout) -> None:
    """``ContractError`` unless ``root`` is a ``Document`` of the layout's namespace."""
    ns = namespace(root)
    if local_name(root) != "Document" or not layout.namespace.fullmatch(ns):
        raise ContractError(
            f"not a {layout.name} {layout.noun}",
            errors=[FieldError("/Document", f"expected a {layout.name} Document, got {{{ns}}}{local_name(root)}")],
        )


def read_reports(body: bytes, layout: ReportLayout) -> list[StatementRead]:
    """Every report (statement or notification) of a camt message of any version; ``ContractError`` listing all."""
    root = parse_xml(body)
    check_root(root, layout)
    what = f"not a {layout.name} {layout.noun}"
    base = f"/Document/{layout.message}"
    doc = child(root, layout.message)
    if doc is None:
        raise ContractError(what, errors=[FieldError(base, f"{layout.message} is missing")])
    r = _Reader()
    if text(doc, "GrpHdr", "MsgId") is None:
        r.errors.append(FieldError(f"{base}/GrpHdr/MsgId", "is required"))
    out: list[StatementRead] = []
    for s_index, stmt in enumerate(children(doc, layout.report), start=1):
        sp = f"{base}/{layout.report}[{s_index}]"
        head = _report(r, stmt, sp, ())
        entries = (_entry(r, ntry, f"{sp}/Ntry[{n}]") for n, ntry in enumerate(children(stmt, "Ntry"), start=1))
        out.append(replace(head, entries=tuple(e for e in entries if e is not None)))
    if r.errors:
        first = r.errors[0]
        raise ContractError(f"invalid {layout.name}: {first.pointer}: {first.message}", errors=r.errors)
    return out


def _raise_first(r: _Reader, layout: ReportLayout) -> None:
    if r.errors:
        first = r.errors[0]
        raise ContractError(f"invalid {layout.name}: {first.pointer}: {first.message}", errors=r.errors)


def stream_reports(source: BinaryIO, layout: ReportLayout) -> Iterator[StatementRead | EntryLine]:
    """A camt message read as it streams: each report's header (no entries), then that report's entries' lines.

    Memory stays bounded whatever the file's size: each ``Ntry`` is read and
    dropped from the tree as soon as it ends. The header is yielded when the
    report's first entry ends (``Bal`` and ``TxsSummry`` come before ``Ntry``), or
    at its end when it has none. The first problem raises ``ContractError``;
    what was yielded before it must then be thrown away.
    """
    r = _Reader()
    base = f"/Document/{layout.message}"
    ready: etree._Element | None = None  # the report whose header was yielded
    s_index = n_index = 0
    entries = ""  # the pointer of the ready report's entries, "/Document/…/Stmt[1]/Ntry["
    checked = False
    for _event, element in iterparse_safe(source, tags=(layout.report, "Ntry", "GrpHdr")):
        if not checked:
            check_root(element.getroottree().getroot(), layout)
            checked = True
        name = _LOCAL.get(element.tag) or _local(element.tag)
        if name == "Ntry":
            stmt = element.getparent()
            if stmt is not ready and (stmt is None or (_LOCAL.get(stmt.tag) or _local(stmt.tag)) != layout.report):
                continue  # an Ntry elsewhere is not this layout's entry
            if ready is not stmt:
                s_index, n_index, ready = s_index + 1, 0, stmt
                entries = f"{base}/{layout.report}[{s_index}]/Ntry["
                yield _report(r, stmt, f"{base}/{layout.report}[{s_index}]", ())
                _raise_first(r, layout)
            n_index += 1
            entry = _entry_line(r, element, f"{entries}{n_index}]")
            if r.errors:
                _raise_first(r, layout)
            element.clear()
            while element.getprevious() is not None:  # the header and earlier entries: done with
                del stmt[0]
            if entry is not None:
                yield entry
        elif name == layout.report:
            if ready is not element:
                s_index += 1
                yield _report(r, element, f"{base}/{layout.report}[{s_index}]", ())
                _raise_first(r, layout)
            ready = None
            parent = element.getparent()
            element.clear()
            if parent is not None:
                parent.remove(element)
        elif name == "GrpHdr" and text(element, "MsgId") is None:
            r.errors.append(FieldError(f"{base}/GrpHdr/MsgId", "is required"))
            _raise_first(r, layout)
    if not checked:
        raise ContractError(
            f"not a {layout.name} {layout.noun}", errors=[FieldError(base, f"{layout.message} is missing")]
        )


#: the element a run of entries is wrapped in (``entry_run_wrapper``): a name no camt element has
_WRAP = "w"


def entry_run_wrapper(sample: bytes, layout: ReportLayout) -> tuple[bytes, bytes] | None:
    """For ``sample``, a document of one report with one entry (a large file's head, first ``Ntry`` and tail):
    the opening and closing tags of a document in which a run of that report's entries reads as in the file.

    The run's ``Ntry`` elements are children of the innermost of as many nested ``w`` elements as the entry
    has ancestors (libxml2's depth limit sees the same depth), the outermost declaring every prefixed namespace
    in scope at the report (prefixes resolve as in the file). The default namespace is left undeclared: the
    entries' unprefixed elements are then in no namespace, which the reader, going by local names only, reads
    the same, and each of their tags is the short local name rather than ``{urn:…}Amt`` (lxml builds a tag's
    string at every ``.tag``: about 2 µs of an entry's ~25 elements). ``None`` if the first ``Ntry`` is not a
    child of the report.
    """
    root = parse_xml(sample, max_bytes=len(sample))
    first = next(root.iter("{*}Ntry"), None)
    if first is None:
        return None
    parent = first.getparent()
    if parent is None or _local(parent.tag) != layout.report:
        return None
    depth = sum(1 for _ in first.iterancestors())
    declared = "".join(f" xmlns:{prefix}={quoteattr(uri)}" for prefix, uri in parent.nsmap.items() if prefix)
    opening = f"<{_WRAP}{declared}>" + f"<{_WRAP}>" * (depth - 1)
    return opening.encode(), f"</{_WRAP}>".encode() * depth


def read_entry_run(body: bytes, depth: int) -> list[EntryLine] | None:
    """The entries of ``body`` (``entry_run_wrapper``'s opening, a run of a report's entries cut from a file
    at ``</Ntry>``, its closing; ``depth``: the number of wrappers), as ``stream_reports`` reads them in the file.

    ``None`` when the run might not read here as in the file: it holds a comment, a CDATA section, a processing
    instruction or a declaration (a ``</Ntry>`` inside one of them is no end of an entry), an entry's problem
    (the file's reader reports it, with its place in the file), or an ``Ntry`` below another report. Malformed
    XML raises ``ContractError``. A run that parses here is a sequence of whole elements (the wrappers close
    after it): the file's entries, in the file's context, read by the same code.
    """
    if b"<!" in body or b"<?" in body:
        return None
    r = _Reader()
    out: list[EntryLine] = []
    report: etree._Element | None = None
    for _event, element in iterparse_safe(io.BytesIO(body), tags=("Ntry",)):
        parent = element.getparent()
        if parent is not report or report is None:
            if parent is None:
                return None
            name = _LOCAL.get(parent.tag) or _local(parent.tag)
            if name == _WRAP and report is None and sum(1 for _ in parent.iterancestors()) == depth - 1:
                report = parent
            elif name == _WRAP or name == "Stmt" or name == "Ntfctn":
                return None  # an entry of another report, or of a wrapper it should not be in
            else:
                continue  # an Ntry elsewhere is no entry (``stream_reports`` skips it too)
        entry = _entry_line(r, element, "")
        if r.errors:
            return None
        element.clear()
        while element.getprevious() is not None:
            del parent[0]
        if entry is not None:
            out.append(entry)
    return out


#: the bytes of a run ``read_entry_pieces`` parses at a time (~13 of the bank's entries): small trees, built and
#: freed by libxml2 while they are in the CPU's cache
PIECE_BYTES = 8 << 10
#: what ``read_entry_pieces`` parses with: ``iterparse_safe``'s options (no DTD loaded, no entity resolved, no
#: network, libxml2's default limits)
_PIECE_PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_blank_text": False,
    "collect_ids": False,
}
#: elements whose ``Ntry`` children make ``read_entry_run`` give up (an entry of another report or wrapper)
_NOT_IN_AN_ENTRY = ("{*}" + _WRAP, "{*}Stmt", "{*}Ntfctn")


def read_entry_pieces(run: bytes, opening: bytes, closing: bytes, depth: int) -> list[EntryLine] | None:
    """``read_entry_run(opening + run + closing, depth)``, the same result, for less CPU: the run is parsed in
    pieces of about ``PIECE_BYTES`` cut at ``</Ntry>``, each wrapped as the whole run is and parsed as one small
    tree (no ``iterparse`` events, no entry cleared one by one), each entry read by the same ``_entry_line``.

    Taken only for the usual shape: every piece well-formed, the wrappers' chain unbroken (each wrapper above
    the innermost holds that one element, so no piece closes and reopens them), every child of the innermost an
    ``Ntry``, and no ``w``, ``Stmt`` or ``Ntfctn`` inside them (where ``read_entry_run`` gives up). Any other run
    is read by ``read_entry_run`` whole, which decides as ever (``None``, ``ContractError``). Pieces that all
    pass are a split of the run's entries at their ends: read in order, they are ``read_entry_run``'s entries.
    An entry with a problem gives ``None``, as there; where the run is also malformed further on, ``None`` here
    may be ``ContractError`` there (``iterparse`` reads ahead): to a worker both mean the same, the run is not
    vouched for.
    """
    if b"<!" in run or b"<?" in run:
        return None
    parser = etree.XMLParser(**_PIECE_PARSER_OPTIONS)
    r = _Reader()
    out: list[EntryLine] = []
    local = _LOCAL
    start, end = 0, len(run)
    while start < end:
        cut = run.find(b"</Ntry>", start + PIECE_BYTES)
        stop = end if cut < 0 else cut + 7  # len(b"</Ntry>")
        piece = run[start:stop]
        try:
            inner = etree.fromstring(opening + piece + closing, parser)
        except etree.LxmlError:
            return read_entry_run(opening + run + closing, depth)
        for _ in range(depth - 1):
            if len(inner) != 1:
                return read_entry_run(opening + run + closing, depth)
            inner = inner[0]
        # a ``w``, ``Stmt`` or ``Ntfctn`` element's start tag holds ``<w`` or ``:w`` (prefixed), ``Stmt`` or
        # ``Ntfctn``: only a piece that holds one of them is searched for them
        if b"Stmt" in piece or b"Ntfctn" in piece or b"<w" in piece or b":w" in piece:
            for _ in inner.iterdescendants(*_NOT_IN_AN_ENTRY):
                return read_entry_run(opening + run + closing, depth)
        for ntry in inner:
            tag = ntry.tag
            if (local.get(tag) or _local(tag)) != "Ntry":
                return read_entry_run(opening + run + closing, depth)
        for ntry in inner:
            entry = _entry_line(r, ntry, "")
            if r.errors:
                return None
            if entry is not None:
                out.append(entry)
        start = stop
    return out
