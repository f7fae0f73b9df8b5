"""pain.002 (customer payment status report): build version 10, parse any version.

The builder writes ``pain.002.001.10``. The parser reads any
``urn:iso:std:iso:20022:tech:xsd:pain.002.001.NN`` by local names, so a bank on
version 3 and one on version 12 are read alike. No pain.002 XSD ships with any
package we use, so the parser checks the structure it relies on in code and
reports every problem as a ``FieldError`` (pointer like
``/Document/CstmrPmtStsRpt/OrgnlPmtInfAndSts[1]/TxInfAndSts[1]/TxSts``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from lxml import etree

from gateway.adapter import StatusUpdate
from gateway.contracts.safexml import (
    child,
    children,
    clean_text,
    local_name,
    namespace,
    parse_xml,
    text,
)
from gateway.domain.status import Status
from gateway.errors import ContractError, FieldError
from gateway_adapters.iso20022_bank.schemas import PAIN001_VERSION

__all__ = [
    "PAIN002_NAMESPACE",
    "PAIN002_VERSION",
    "RETURN_FLAG",
    "STATUS_BY_CODE",
    "PaymentInformationStatus",
    "StatusReport",
    "TransactionStatus",
    "build_pain002",
    "gateway_status",
    "parse_pain002",
    "status_updates",
]

PAIN002_VERSION = "pain.002.001.10"
PAIN002_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN002_VERSION}"
_PAIN002_NS_RE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:pain\.002\.001\.[0-9]{2}$")
_STATUS_CODE_RE = re.compile(r"^[A-Z]{4}$")
_REASON_CODE_RE = re.compile(r"^[A-Z0-9]{1,4}$")
_MAX35 = 35
_ROOT = "/Document/CstmrPmtStsRpt"
#: Proprietary reason (a second ``StsRsnInf``) that marks a ``RJCT`` sent after
#: ``ACSC``: the bank settled, then the payment came back (a return). The first
#: ``StsRsnInf`` carries the ISO return reason code (e.g. ``AC04``, ``MD07``).
RETURN_FLAG = "RTRN"

S = Status
#: ExternalPaymentTransactionStatus1Code → gateway status; ``None`` is an
#: acknowledgement (recorded, no transition). A well-formed code not listed here
#: is treated as an acknowledgement too, never guessed into a final status.
STATUS_BY_CODE: Mapping[str, Status | None] = MappingProxyType(
    {
        "ACSC": S.SETTLED,  # accepted, settlement completed (debtor side)
        "ACCC": S.SETTLED,  # accepted, settlement completed (creditor side)
        "RJCT": S.REJECTED,
        "ACTC": None,  # accepted technical validation
        "ACCP": None,  # accepted customer profile
        "ACSP": None,  # accepted, settlement in process
        "ACWC": None,  # accepted with change
        "ACWP": None,  # accepted without posting
        "ACFC": None,  # accepted, funds checked
        "PDNG": None,  # pending
        "RCVD": None,  # received
        "PART": None,  # partially accepted (group level)
    }
)


def gateway_status(code: str) -> Status | None:
    """The gateway status a pain.002 TxSts code means (``None`` = acknowledgement only)."""
    return STATUS_BY_CODE.get(code)


@dataclass(frozen=True)
class TransactionStatus:
    """One TxInfAndSts: the status of one original transaction."""

    status: str
    instruction_id: str | None = None
    end_to_end_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    account_servicer_reference: str | None = None
    status_id: str | None = None
    accepted_at: datetime | None = None
    #: a RJCT after settlement (flagged with the ``RTRN`` proprietary reason)
    returned: bool = False
    #: OrgnlTxRef/Amt/InstdAmt: what the bank says the original payment was
    amount: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True)
class PaymentInformationStatus:
    """One OrgnlPmtInfAndSts: a payment information block and its transactions."""

    original_payment_information_id: str
    status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    transactions: tuple[TransactionStatus, ...] = ()


@dataclass(frozen=True)
class StatusReport:
    """A whole pain.002 message."""

    message_id: str
    created_at: datetime
    original_message_id: str
    original_message_name: str | None = PAIN001_VERSION
    group_status: str | None = None
    group_reason_code: str | None = None
    group_reason: str | None = None
    payments: tuple[PaymentInformationStatus, ...] = ()
    namespace: str = PAIN002_NAMESPACE

    @property
    def transactions(self) -> tuple[TransactionStatus, ...]:
        return tuple(tx for payment in self.payments for tx in payment.transactions)


# -- building -------------------------------------------------------------------

_NS = PAIN002_NAMESPACE


def _el(parent: etree._Element, tag: str, value: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{_NS}}}{tag}")
    if value is not None:
        node.text = value
    return node


def _reason(parent: etree._Element, code: str | None, info: str | None) -> None:
    if not code and not info:
        return
    rsn_inf = _el(parent, "StsRsnInf")
    if code:
        _el(_el(rsn_inf, "Rsn"), "Cd", code)
    # AddtlInf is Max105Text but repeatable: wrap long text over a few lines.
    for line in textwrap.wrap(clean_text(info or "", 4 * 105), 105)[:4]:
        _el(rsn_inf, "AddtlInf", line)


def _datetime(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


def build_pain002(report: StatusReport) -> bytes:
    """Serialise ``report`` as a pain.002.001.10 document (UTF-8, with declaration)."""
    root = etree.Element(f"{{{_NS}}}Document", nsmap={None: _NS})
    rpt = _el(root, "CstmrPmtStsRpt")
    header = _el(rpt, "GrpHdr")
    _el(header, "MsgId", report.message_id)
    _el(header, "CreDtTm", _datetime(report.created_at))

    group = _el(rpt, "OrgnlGrpInfAndSts")
    _el(group, "OrgnlMsgId", report.original_message_id)
    _el(group, "OrgnlMsgNmId", report.original_message_name or PAIN001_VERSION)
    if report.group_status:
        _el(group, "GrpSts", report.group_status)
    _reason(group, report.group_reason_code, report.group_reason)

    for payment in report.payments:
        block = _el(rpt, "OrgnlPmtInfAndSts")
        _el(block, "OrgnlPmtInfId", payment.original_payment_information_id)
        if payment.status:
            _el(block, "PmtInfSts", payment.status)
        _reason(block, payment.reason_code, payment.reason)
        for tx in payment.transactions:
            node = _el(block, "TxInfAndSts")
            if tx.status_id:
                _el(node, "StsId", tx.status_id)
            if tx.instruction_id:
                _el(node, "OrgnlInstrId", tx.instruction_id)
            if tx.end_to_end_id:
                _el(node, "OrgnlEndToEndId", tx.end_to_end_id)
            _el(node, "TxSts", tx.status)
            _reason(node, tx.reason_code, tx.reason)
            if tx.returned:
                _el(_el(_el(node, "StsRsnInf"), "Rsn"), "Prtry", RETURN_FLAG)
            if tx.accepted_at:
                _el(node, "AccptncDtTm", _datetime(tx.accepted_at))
            if tx.account_servicer_reference:
                _el(node, "AcctSvcrRef", tx.account_servicer_reference)
            if tx.amount is not None and tx.currency:
                amount = _el(_el(_el(node, "OrgnlTxRef"), "Amt"), "InstdAmt", str(tx.amount))
                amount.set("Ccy", tx.currency)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# -- parsing --------------------------------------------------------------------


class _Reader:
    """Collects every structural problem so the caller sees them all at once."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, pointer: str, message: str) -> None:
        self.errors.append(FieldError(pointer, message))

    def ident(self, element: etree._Element | None, name: str, pointer: str, *, required: bool) -> str | None:
        value = text(element, name)
        if value is None:
            if required:
                self.fail(f"{pointer}/{name}", "is required")
            return None
        if len(value) > _MAX35:
            self.fail(f"{pointer}/{name}", f"longer than {_MAX35} characters")
            return None
        return value

    def status_code(self, element: etree._Element | None, name: str, pointer: str) -> str | None:
        value = text(element, name)
        if value is not None and not _STATUS_CODE_RE.fullmatch(value):
            self.fail(f"{pointer}/{name}", f"{value[:20]!r} is not a 4-letter status code")
            return None
        return value

    def when(self, element: etree._Element | None, name: str, pointer: str, *, required: bool) -> datetime | None:
        value = text(element, name)
        if value is None:
            if required:
                self.fail(f"{pointer}/{name}", "is required")
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{pointer}/{name}", f"{value[:40]!r} is not an ISO date-time")
            return None
        # ISO 20022 allows local time without offset; the gateway reads it as UTC.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def reason(self, element: etree._Element, pointer: str) -> tuple[str | None, str | None]:
        """First StsRsnInf's code (Cd, else Prtry) and all its AddtlInf lines."""
        for index, info in enumerate(children(element, "StsRsnInf"), start=1):
            rsn = child(info, "Rsn")
            code = text(rsn, "Cd") or text(rsn, "Prtry")
            if code is not None and not _REASON_CODE_RE.fullmatch(code):
                self.fail(f"{pointer}/StsRsnInf[{index}]/Rsn/Cd", f"{code[:20]!r} is not a reason code")
                code = None
            lines = [t.text.strip() for t in children(info, "AddtlInf") if t.text and t.text.strip()]
            if code or lines:
                return code, " ".join(lines) or None
        return None, None

    def returned(self, element: etree._Element) -> bool:
        """Whether any StsRsnInf carries the proprietary ``RTRN`` flag."""
        return any(text(child(info, "Rsn"), "Prtry") == RETURN_FLAG for info in children(element, "StsRsnInf"))

    def amount(self, element: etree._Element, pointer: str) -> tuple[Decimal | None, str | None]:
        """OrgnlTxRef/Amt/InstdAmt (value, currency) if the bank echoed the original amount."""
        node = child(child(child(element, "OrgnlTxRef"), "Amt"), "InstdAmt")
        if node is None:
            return None, None
        try:
            value = Decimal((node.text or "").strip())
        except InvalidOperation:
            self.fail(f"{pointer}/OrgnlTxRef/Amt/InstdAmt", f"{(node.text or '')[:20]!r} is not an amount")
            return None, None
        currency = node.get("Ccy")
        if not currency or not re.fullmatch(r"[A-Z]{3}", currency):
            self.fail(f"{pointer}/OrgnlTxRef/Amt/InstdAmt/@Ccy", "is not a currency code")
            return None, None
        return value, currency


def parse_pain002(body: bytes) -> StatusReport:
    """Parse a pain.002 of any version; raise ``ContractError`` listing every problem."""
    root = parse_xml(body)
    ns = namespace(root)
    if local_name(root) != "Document" or (ns and not _PAIN002_NS_RE.fullmatch(ns)):
        raise ContractError(
            "not a pain.002 status report",
            errors=[FieldError("/Document", f"expected a pain.002 Document, got {{{ns}}}{local_name(root)}")],
        )
    rpt = child(root, "CstmrPmtStsRpt")
    if rpt is None:
        raise ContractError(
            "not a pain.002 status report",
            errors=[FieldError(_ROOT, "CstmrPmtStsRpt is missing")],
        )
    r = _Reader()
    header = child(rpt, "GrpHdr")
    if header is None:
        r.fail(f"{_ROOT}/GrpHdr", "is required")
    message_id = r.ident(header, "MsgId", f"{_ROOT}/GrpHdr", required=True)
    created_at = r.when(header, "CreDtTm", f"{_ROOT}/GrpHdr", required=True)

    group = child(rpt, "OrgnlGrpInfAndSts")
    gp = f"{_ROOT}/OrgnlGrpInfAndSts"
    if group is None:
        r.fail(gp, "is required")
    original_message_id = r.ident(group, "OrgnlMsgId", gp, required=True)
    group_status = r.status_code(group, "GrpSts", gp)
    group_reason_code, group_reason = r.reason(group, gp) if group is not None else (None, None)

    payments: list[PaymentInformationStatus] = []
    for p_index, block in enumerate(children(rpt, "OrgnlPmtInfAndSts"), start=1):
        pp = f"{_ROOT}/OrgnlPmtInfAndSts[{p_index}]"
        pmt_inf_id = r.ident(block, "OrgnlPmtInfId", pp, required=True)
        pmt_status = r.status_code(block, "PmtInfSts", pp)
        pmt_reason_code, pmt_reason = r.reason(block, pp)
        transactions: list[TransactionStatus] = []
        for t_index, node in enumerate(children(block, "TxInfAndSts"), start=1):
            tp = f"{pp}/TxInfAndSts[{t_index}]"
            tx_status = r.status_code(node, "TxSts", tp)
            reason_code, reason = r.reason(node, tp)
            if tx_status is None:
                # TxSts is optional: the status is then the block's, else the group's.
                tx_status = pmt_status or group_status
                reason_code = reason_code or pmt_reason_code or group_reason_code
                reason = reason or pmt_reason or group_reason
            if tx_status is None:
                r.fail(f"{tp}/TxSts", "no status here, nor at payment or group level")
                continue
            amount, currency = r.amount(node, tp)
            transactions.append(
                TransactionStatus(
                    status=tx_status,
                    instruction_id=r.ident(node, "OrgnlInstrId", tp, required=False),
                    end_to_end_id=r.ident(node, "OrgnlEndToEndId", tp, required=False),
                    reason_code=reason_code,
                    reason=reason,
                    account_servicer_reference=r.ident(node, "AcctSvcrRef", tp, required=False),
                    status_id=r.ident(node, "StsId", tp, required=False),
                    accepted_at=r.when(node, "AccptncDtTm", tp, required=False),
                    returned=tx_status == "RJCT" and r.returned(node),
                    amount=amount,
                    currency=currency,
                )
            )
        payments.append(
            PaymentInformationStatus(
                original_payment_information_id=pmt_inf_id or "",
                status=pmt_status,
                reason_code=pmt_reason_code,
                reason=pmt_reason,
                transactions=tuple(transactions),
            )
        )

    if r.errors:
        first = r.errors[0]
        raise ContractError(f"invalid pain.002: {first.pointer}: {first.message}", errors=r.errors)
    assert message_id is not None and created_at is not None and original_message_id is not None
    return StatusReport(
        message_id=message_id,
        created_at=created_at,
        original_message_id=original_message_id,
        original_message_name=text(group, "OrgnlMsgNmId"),
        group_status=group_status,
        group_reason_code=group_reason_code,
        group_reason=group_reason,
        payments=tuple(payments),
        namespace=ns,
    )


def status_updates(report: StatusReport) -> list[StatusUpdate]:
    """One ``StatusUpdate`` per transaction in ``report``.

    A ``RJCT`` flagged ``RTRN`` (see ``RETURN_FLAG``) is a return after
    settlement: ``returned``, with the return reason code.

    The payment is identified by OrgnlInstrId (the gateway's instruction id, as
    this adapter sends it) and by the bank's AcctSvcrRef (else StsId). A report
    with no transactions speaks for whole blocks or the whole message: since
    this adapter sends PmtInfId = MsgId = instruction id, those ids identify it.
    """
    updates: list[StatusUpdate] = []
    for p_index, payment in enumerate(report.payments, start=1):
        for t_index, tx in enumerate(payment.transactions, start=1):
            partner_reference = tx.account_servicer_reference or tx.status_id
            if tx.instruction_id is None and partner_reference is None:
                raise ContractError(
                    "status report does not identify the payment",
                    errors=[
                        FieldError(
                            f"{_ROOT}/OrgnlPmtInfAndSts[{p_index}]/TxInfAndSts[{t_index}]",
                            "needs OrgnlInstrId or AcctSvcrRef",
                        )
                    ],
                )
            updates.append(
                StatusUpdate(
                    status=S.RETURNED if tx.returned else gateway_status(tx.status),
                    instruction_id=tx.instruction_id,
                    partner_reference=partner_reference,
                    partner_status=tx.status,
                    reason_code=tx.reason_code,
                    reason=tx.reason,
                    occurred_at=tx.accepted_at or report.created_at,
                )
            )
        if not payment.transactions and payment.status:
            updates.append(
                StatusUpdate(
                    status=gateway_status(payment.status),
                    instruction_id=payment.original_payment_information_id,
                    partner_status=payment.status,
                    reason_code=payment.reason_code,
                    reason=payment.reason,
                    occurred_at=report.created_at,
                )
            )
    if not updates and report.group_status:
        updates.append(
            StatusUpdate(
                status=gateway_status(report.group_status),
                instruction_id=report.original_message_id,
                partner_status=report.group_status,
                reason_code=report.group_reason_code,
                reason=report.group_reason,
                occurred_at=report.created_at,
            )
        )
    return updates
