"""pain.008.001.08 (SEPA Core customer direct debit initiation): build one message, read it back.

Built with lxml rather than ``sepaxml.SepaDD`` (which does write 001.08): like
``SepaTransfer`` for pain.001, it draws random MsgId/PmtInfId, stamps CreDtTm
with the local clock, takes amounts as integer cents and one creditor per file,
and has no InstrId nor structured (ISO 11649) remittance — the gateway needs
deterministic ids (a rebuilt file must be the same file), its collection id as
InstrId, and an RF reference where the collection has one. The output is
validated against sepaxml's copy of the official XSD before it leaves, and the
simulator reads submissions with ``read_pain008`` (same XSD).

One message; one ``PmtInf`` per (creditor, sequence type, requested collection
date), in the order first seen; ``NbOfTxs`` / ``CtrlSum`` per block and in the
group header. EndToEndId is the collection's reference (the business unit's),
InstrId the collection id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree
from stdnum import iso11649

from gateway.contracts.safexml import child, children, clean_text, text
from gateway.domain.accounts import Agent, IbanAccount
from gateway.domain.errors import DomainError
from gateway.domain.mandate import validate_creditor_id, validate_mandate_id, validate_sequence_type
from gateway.errors import ContractError, FieldError
from gateway_adapters.iso20022_bank.pain002 import StatusReport
from gateway_adapters.iso20022_bank.reasons import RTransaction, classify_r_transaction
from gateway_adapters.iso20022_bank.schemas import PAIN008_NAMESPACE, validate_pain008

__all__ = [
    "CollectionStatus",
    "Creditor",
    "DirectDebit",
    "Pain008Message",
    "Pain008Transaction",
    "build_pain008",
    "collection_statuses",
    "read_pain008",
]

_NS = PAIN008_NAMESPACE
#: EPC: SEPA direct debits are in euro, 0.01 to 999 999 999.99
_MIN = Decimal("0.01")
_MAX = Decimal("999999999.99")
NOT_PROVIDED = "NOTPROVIDED"


@dataclass(frozen=True)
class Creditor:
    """Who collects: name, account, bank (optional under SEPA), and the creditor identifier (CI)."""

    name: str
    iban: str = field(repr=False)
    creditor_id: str
    bic: str | None = None


@dataclass(frozen=True)
class DirectDebit:
    """One SEPA Core collection to put in a pain.008 (IBANs stay out of repr)."""

    collection_id: str  # InstrId: the gateway's id, the partner idempotency key (max 35)
    reference: str  # EndToEndId: the business unit's reference (max 35)
    amount: Decimal
    currency: str
    due_on: date  # ReqdColltnDt
    sequence_type: str  # FRST | RCUR | OOFF | FNAL
    mandate_id: str
    mandate_signed_on: date
    debtor_name: str
    debtor_iban: str = field(repr=False)
    creditor: Creditor
    debtor_bic: str | None = None
    remittance_information: str | None = None  # Ustrd, at most 140 characters
    creditor_reference: str | None = None  # ISO 11649 RF reference (Strd/CdtrRefInf, type SCOR)


def _el(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{_NS}}}{tag}", attrib)
    if value is not None:
        node.text = value
    return node


def _check(debits: Sequence[DirectDebit], message_id: str) -> list[FieldError]:
    """Every problem of the batch, each with the pointer of its field (``/debits/N/...``)."""
    errors: list[FieldError] = []

    def guard(fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except DomainError as exc:
            errors.extend(exc.errors)

    if not message_id or len(message_id) > 35:
        errors.append(FieldError("/message_id", "must be 1 to 35 characters"))
    if not debits:
        errors.append(FieldError("/debits", "at least one direct debit is required"))
    seen: dict[str, int] = {}
    seen_refs: dict[str, int] = {}
    for n, d in enumerate(debits):
        p = f"/debits/{n}"
        for name, value in (("collection_id", d.collection_id), ("reference", d.reference)):
            if not value or len(value) > 35:
                errors.append(FieldError(f"{p}/{name}", "must be 1 to 35 characters"))
        if d.collection_id in seen:
            errors.append(FieldError(f"{p}/collection_id", f"repeats /debits/{seen[d.collection_id]}"))
        if d.reference in seen_refs:
            errors.append(FieldError(f"{p}/reference", f"repeats /debits/{seen_refs[d.reference]}"))
        seen.setdefault(d.collection_id, n)
        seen_refs.setdefault(d.reference, n)
        if d.currency != "EUR":
            errors.append(FieldError(f"{p}/currency", f"SEPA direct debits are in EUR, not {d.currency!r}"))
        if not (_MIN <= d.amount <= _MAX) or d.amount != d.amount.quantize(Decimal("0.01")):
            errors.append(FieldError(f"{p}/amount", f"{d.amount} is not an amount from 0.01 to 999999999.99"))
        guard(validate_sequence_type, d.sequence_type, f"{p}/sequence_type")
        guard(validate_mandate_id, d.mandate_id, f"{p}/mandate_id")
        if d.mandate_signed_on > d.due_on:
            errors.append(FieldError(f"{p}/mandate_signed_on", "the mandate is signed after the due date"))
        guard(IbanAccount.parse, d.debtor_iban, f"{p}/debtor_iban")
        if d.debtor_bic:
            guard(Agent.parse, d.debtor_bic, f"{p}/debtor_bic")
        if not clean_text(d.debtor_name, 140):
            errors.append(FieldError(f"{p}/debtor_name", "is required"))
        if d.creditor_reference is not None and not iso11649.is_valid(d.creditor_reference):
            errors.append(FieldError(f"{p}/creditor_reference", "is not a valid ISO 11649 creditor reference"))
        guard(validate_creditor_id, d.creditor.creditor_id, f"{p}/creditor/creditor_id")
        guard(IbanAccount.parse, d.creditor.iban, f"{p}/creditor/iban")
        if d.creditor.bic:
            guard(Agent.parse, d.creditor.bic, f"{p}/creditor/bic")
        if not clean_text(d.creditor.name, 140):
            errors.append(FieldError(f"{p}/creditor/name", "is required"))
    return errors


def _agent(parent: etree._Element, tag: str, bic: str | None) -> None:
    fin = _el(_el(parent, tag), "FinInstnId")
    if bic:
        _el(fin, "BICFI", Agent.parse(bic, "/bic").bic)
    else:
        _el(_el(fin, "Othr"), "Id", NOT_PROVIDED)  # EPC: no BIC needed inside SEPA (IBAN-only)


def build_pain008(debits: Sequence[DirectDebit], *, message_id: str, created_at: datetime) -> bytes:
    """One pain.008.001.08 holding ``debits``; XSD-valid or ``ContractError`` listing every problem.

    Deterministic: the same debits, message id and time give the same bytes.
    ``PmtInfId`` is ``<message_id[:21]>-<SEQ>-<YYYYMMDD>``.
    """
    errors = _check(debits, message_id)
    if errors:
        first = errors[0]
        raise ContractError(f"cannot build pain.008: {first.pointer}: {first.message}", errors=errors)
    groups: dict[tuple[Creditor, str, date], list[DirectDebit]] = {}
    for d in debits:
        groups.setdefault((d.creditor, d.sequence_type, d.due_on), []).append(d)
    block_ids = [f"{message_id[:21]}-{seq}-{due:%Y%m%d}" for _, seq, due in groups]
    if len(set(block_ids)) != len(block_ids):  # two creditors share (seq, date): number the blocks instead
        block_ids = [f"{message_id[:27]}-{n:07d}" for n in range(1, len(groups) + 1)]

    root = etree.Element(f"{{{_NS}}}Document", nsmap={None: _NS})
    initiation = _el(root, "CstmrDrctDbtInitn")
    header = _el(initiation, "GrpHdr")
    _el(header, "MsgId", message_id)
    _el(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    _el(header, "NbOfTxs", str(len(debits)))
    _el(header, "CtrlSum", f"{sum((d.amount for d in debits), Decimal(0)):.2f}")
    _el(_el(header, "InitgPty"), "Nm", clean_text(debits[0].creditor.name, 140))

    for block_id, ((creditor, seq, due), items) in zip(block_ids, groups.items(), strict=True):
        info = _el(initiation, "PmtInf")
        _el(info, "PmtInfId", block_id)
        _el(info, "PmtMtd", "DD")
        _el(info, "BtchBookg", "true")
        _el(info, "NbOfTxs", str(len(items)))
        _el(info, "CtrlSum", f"{sum((d.amount for d in items), Decimal(0)):.2f}")
        tp = _el(info, "PmtTpInf")
        _el(_el(tp, "SvcLvl"), "Cd", "SEPA")
        _el(_el(tp, "LclInstrm"), "Cd", "CORE")
        _el(tp, "SeqTp", seq)
        _el(info, "ReqdColltnDt", due.isoformat())
        _el(_el(info, "Cdtr"), "Nm", clean_text(creditor.name, 140))
        _el(_el(_el(info, "CdtrAcct"), "Id"), "IBAN", IbanAccount.parse(creditor.iban, "/creditor/iban").iban)
        _agent(info, "CdtrAgt", creditor.bic)
        _el(info, "ChrgBr", "SLEV")
        othr = _el(_el(_el(_el(info, "CdtrSchmeId"), "Id"), "PrvtId"), "Othr")
        _el(othr, "Id", validate_creditor_id(creditor.creditor_id))
        _el(_el(othr, "SchmeNm"), "Prtry", "SEPA")
        for d in items:
            tx = _el(info, "DrctDbtTxInf")
            pmt_id = _el(tx, "PmtId")
            _el(pmt_id, "InstrId", d.collection_id)
            _el(pmt_id, "EndToEndId", d.reference)
            _el(tx, "InstdAmt", f"{d.amount:.2f}", Ccy=d.currency)
            mandate = _el(_el(tx, "DrctDbtTx"), "MndtRltdInf")
            _el(mandate, "MndtId", d.mandate_id)
            _el(mandate, "DtOfSgntr", d.mandate_signed_on.isoformat())
            _agent(tx, "DbtrAgt", d.debtor_bic)
            _el(_el(tx, "Dbtr"), "Nm", clean_text(d.debtor_name, 140))
            _el(_el(_el(tx, "DbtrAcct"), "Id"), "IBAN", IbanAccount.parse(d.debtor_iban, "/debtor_iban").iban)
            ustrd = clean_text(d.remittance_information or "", 140)
            if ustrd or d.creditor_reference:
                rmt = _el(tx, "RmtInf")
                if ustrd:
                    _el(rmt, "Ustrd", ustrd)
                if d.creditor_reference:
                    ref = _el(_el(rmt, "Strd"), "CdtrRefInf")
                    _el(_el(_el(ref, "Tp"), "CdOrPrtry"), "Cd", "SCOR")
                    _el(ref, "Ref", iso11649.compact(d.creditor_reference))
    validate_pain008(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- reading (the bank simulator) ---------------------------------------------------------


@dataclass(frozen=True)
class Pain008Transaction:
    """One collection read from a pain.008 (what the creditor's bank collects); IBANs out of repr."""

    message_id: str
    payment_information_id: str
    instruction_id: str | None
    end_to_end_id: str
    amount: Decimal
    currency: str
    sequence_type: str
    due_on: str
    mandate_id: str
    mandate_signed_on: str
    creditor_name: str
    creditor_id: str
    debtor_name: str
    debtor_iban: str | None = field(repr=False)
    creditor_iban: str | None = field(repr=False)
    remittance_information: str | None = None
    creditor_reference: str | None = None

    @property
    def key(self) -> str:
        """How the bank files the collection: InstrId, else EndToEndId."""
        return self.instruction_id or self.end_to_end_id

    def fingerprint(self) -> tuple[str | None, ...]:
        """The business content a resend must repeat to be 'the same collection'."""
        return (
            self.instruction_id,
            self.end_to_end_id,
            str(self.amount),
            self.currency,
            self.mandate_id,
            self.creditor_id,
            self.debtor_iban,
            self.creditor_iban,
        )


@dataclass(frozen=True)
class Pain008Message:
    message_id: str
    transactions: tuple[Pain008Transaction, ...]


def read_pain008(body: bytes | etree._Element) -> Pain008Message:
    """Validate against the XSD and the SEPA Core rules the XSD cannot say; ``ContractError`` if invalid.

    Beyond the XSD: every block is ``SEPA``/``CORE``, EUR, the declared
    ``NbOfTxs``/``CtrlSum`` (group and block) match the transactions, the CI
    passes MOD 97-10 and every mandate id the EPC character set.
    """
    root = validate_pain008(body)
    initiation = child(root, "CstmrDrctDbtInitn")
    base = "/Document/CstmrDrctDbtInitn"
    message_id = text(initiation, "GrpHdr", "MsgId") or ""
    errors: list[FieldError] = []
    transactions: list[Pain008Transaction] = []

    def amount_of(node: etree._Element | None, pointer: str) -> Decimal:
        try:
            return Decimal((node.text or "").strip()) if node is not None else Decimal(0)
        except InvalidOperation:
            errors.append(FieldError(pointer, "is not an amount"))
            return Decimal(0)

    for b, info in enumerate(children(initiation, "PmtInf"), start=1):
        bp = f"{base}/PmtInf[{b}]"
        if text(info, "PmtTpInf", "SvcLvl", "Cd") != "SEPA":
            errors.append(FieldError(f"{bp}/PmtTpInf/SvcLvl/Cd", "must be SEPA"))
        if text(info, "PmtTpInf", "LclInstrm", "Cd") != "CORE":
            errors.append(FieldError(f"{bp}/PmtTpInf/LclInstrm/Cd", "must be CORE"))
        seq = text(info, "PmtTpInf", "SeqTp") or ""
        if seq not in ("FRST", "RCUR", "OOFF", "FNAL"):
            errors.append(FieldError(f"{bp}/PmtTpInf/SeqTp", f"{seq!r} is not FRST, RCUR, OOFF or FNAL"))
        ci = text(info, "CdtrSchmeId", "Id", "PrvtId", "Othr", "Id") or ""
        try:
            ci = validate_creditor_id(ci, f"{bp}/CdtrSchmeId")
        except DomainError as exc:
            errors.extend(exc.errors)
        block: list[Pain008Transaction] = []
        for t, tx in enumerate(children(info, "DrctDbtTxInf"), start=1):
            tp = f"{bp}/DrctDbtTxInf[{t}]"
            instd = child(tx, "InstdAmt")
            currency = instd.get("Ccy", "") if instd is not None else ""
            if currency != "EUR":
                errors.append(FieldError(f"{tp}/InstdAmt/@Ccy", f"SEPA direct debits are in EUR, not {currency!r}"))
            mandate_id = text(tx, "DrctDbtTx", "MndtRltdInf", "MndtId") or ""
            try:
                validate_mandate_id(mandate_id, f"{tp}/DrctDbtTx/MndtRltdInf/MndtId")
            except DomainError as exc:
                errors.extend(exc.errors)
            block.append(
                Pain008Transaction(
                    message_id=message_id,
                    payment_information_id=text(info, "PmtInfId") or "",
                    instruction_id=text(tx, "PmtId", "InstrId"),
                    end_to_end_id=text(tx, "PmtId", "EndToEndId") or "",
                    amount=amount_of(instd, f"{tp}/InstdAmt"),
                    currency=currency,
                    sequence_type=seq,
                    due_on=text(info, "ReqdColltnDt") or "",
                    mandate_id=mandate_id,
                    mandate_signed_on=text(tx, "DrctDbtTx", "MndtRltdInf", "DtOfSgntr") or "",
                    creditor_name=text(info, "Cdtr", "Nm") or "",
                    creditor_id=ci,
                    debtor_name=text(tx, "Dbtr", "Nm") or "",
                    debtor_iban=text(tx, "DbtrAcct", "Id", "IBAN"),
                    creditor_iban=text(info, "CdtrAcct", "Id", "IBAN"),
                    remittance_information=text(tx, "RmtInf", "Ustrd"),
                    creditor_reference=text(tx, "RmtInf", "Strd", "CdtrRefInf", "Ref"),
                )
            )
        _controls(info, block, bp, errors, amount_of)
        transactions.extend(block)
    _controls(child(initiation, "GrpHdr"), transactions, f"{base}/GrpHdr", errors, amount_of)
    if errors:
        first = errors[0]
        raise ContractError(f"invalid pain.008: {first.pointer}: {first.message}", errors=errors)
    return Pain008Message(message_id=message_id, transactions=tuple(transactions))


def _controls(
    node: etree._Element | None,
    items: Sequence[Pain008Transaction],
    pointer: str,
    errors: list[FieldError],
    amount_of: Callable[[etree._Element | None, str], Decimal],
) -> None:
    declared = text(node, "NbOfTxs")
    if declared is not None and declared != str(len(items)):
        errors.append(FieldError(f"{pointer}/NbOfTxs", f"declares {declared} transactions, holds {len(items)}"))
    ctrl = child(node, "CtrlSum") if node is not None else None
    if ctrl is not None:
        total = sum((i.amount for i in items), Decimal(0))
        if amount_of(ctrl, f"{pointer}/CtrlSum") != total:
            errors.append(FieldError(f"{pointer}/CtrlSum", f"declares {ctrl.text}, the transactions sum to {total}"))


# -- the bank's answer (pain.002) ----------------------------------------------------------


@dataclass(frozen=True)
class CollectionStatus:
    """What a pain.002 says about one collection: accepted, or rejected before settlement and why."""

    instruction_id: str | None
    end_to_end_id: str | None
    status: str  # accepted | rejected
    outcome: RTransaction | None = None  # set when rejected: a reject or the debtor's refusal


def collection_statuses(report: StatusReport) -> list[CollectionStatus]:
    """Each collection a parsed pain.002 (``pain002.parse_pain002``) answers for, in report order.

    ``RJCT`` (of the transaction, else of its block, else of the group) is an
    R-transaction before settlement: ``classify_r_transaction(..., settled=False)``.
    A group ``RJCT`` without transactions (the whole file refused, e.g. FF01)
    gives one status with no ids. Any other code is an acceptance.
    """
    out: list[CollectionStatus] = []
    for block in report.payments:
        for tx in block.transactions:
            code = tx.status
            reason_code, reason = tx.reason_code, tx.reason
            if code != "RJCT" and block.status == "RJCT":
                code, reason_code, reason = "RJCT", block.reason_code, block.reason
            if code == "RJCT":
                outcome = classify_r_transaction(reason_code or "", settled=False, text=reason)
                out.append(CollectionStatus(tx.instruction_id, tx.end_to_end_id, "rejected", outcome))
            else:
                out.append(CollectionStatus(tx.instruction_id, tx.end_to_end_id, "accepted"))
    if not out and report.group_status == "RJCT":
        outcome = classify_r_transaction(report.group_reason_code or "", settled=False, text=report.group_reason)
        out.append(CollectionStatus(None, None, "rejected", outcome))
    return out
