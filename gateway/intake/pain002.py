"""ERP payment files out: the pain.002.001.03 customer payment status report of one pain.001 file.

Version 03 is the one ERP systems read most widely (it is what banks answer a
pain.001.001.03 with); the same report answers a pain.001.001.09. The builder writes
the elements in the XSD's order; the report's status codes are the 03 code lists
(``TransactionGroupStatus3Code`` and ``TransactionIndividualStatus3Code``).

Gateway status → ``TxSts``: ``received``, ``accepted``, ``held``, ``routed`` → ``ACCP``
(accepted, customer profile); ``submitted`` → ``ACSP`` (settlement in process);
``settled`` → ``ACSC``; ``rejected``, ``failed``, ``returned``, ``cancelled`` → ``RJCT``
with the reason. A payment refused on intake is ``RJCT`` too. The group status is
``RJCT`` when every payment is, ``ACSC`` when every one settled, ``PART`` when some
were refused and others not, else the least advanced of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.contracts.safexml import clean_text
from gateway.domain.status import Status

__all__ = ["REPORT_NAMESPACE", "REPORT_VERSION", "ReportLine", "build_report", "group_status", "tx_status"]

REPORT_VERSION = "pain.002.001.03"
REPORT_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{REPORT_VERSION}"

_BY_STATUS = {
    Status.RECEIVED: "ACCP",
    Status.ACCEPTED: "ACCP",
    Status.HELD: "ACCP",
    Status.ROUTED: "ACCP",
    Status.SUBMITTED: "ACSP",
    Status.SETTLED: "ACSC",
    Status.REJECTED: "RJCT",
    Status.FAILED: "RJCT",
    Status.RETURNED: "RJCT",
    Status.CANCELLED: "RJCT",
}
#: the order in which codes advance; a group is as advanced as its least advanced payment
_PROGRESS = ("ACCP", "ACSP", "ACSC")


def tx_status(status: Status | None) -> str:
    """The ``TxSts`` of a payment in gateway status ``status`` (``None``: refused on intake)."""
    return "RJCT" if status is None else _BY_STATUS[status]


def group_status(codes: Sequence[str]) -> str:
    """The ``GrpSts`` of a file whose payments have these ``TxSts`` codes."""
    if not codes or all(c == "RJCT" for c in codes):
        return "RJCT"
    others = [c for c in codes if c != "RJCT"]
    if len(others) < len(codes):
        return "PART"
    return min(others, key=_PROGRESS.index)


@dataclass(frozen=True)
class ReportLine:
    """One payment in the report."""

    payment_information_id: str
    end_to_end_id: str
    status: str  # TxSts
    reason_code: str | None = None  # ISO ExternalStatusReason1Code, e.g. AM05, AC01, NARR
    reason: str | None = None
    instruction_id: str | None = None  # as AcctSvcrRef: the gateway's id for the payment


def _add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{REPORT_NAMESPACE}}}{name}")
    if value is not None:
        node.text = value
    return node


def _reason(parent: etree._Element, code: str | None, text: str | None) -> None:
    if not code and not text:
        return
    info = _add(parent, "StsRsnInf")
    if code:
        _add(_add(info, "Rsn"), "Cd", code[:4])
    if text:
        _add(info, "AddtlInf", clean_text(text, 105) or "-")


def build_report(
    *,
    report_id: str,
    created_at: datetime,
    original_message_id: str,
    original_version: str,
    number_of_transactions: int,
    control_sum: str | None,
    payment_informations: Sequence[tuple[str, int, str | None]],
    lines: Sequence[ReportLine],
    group_reason: tuple[str, str] | None = None,
) -> bytes:
    """The report as UTF-8 XML. ``group_reason`` (code, text) refuses the whole file: no payment lines."""
    root = etree.Element(f"{{{REPORT_NAMESPACE}}}Document", nsmap={None: REPORT_NAMESPACE})
    report = _add(root, "CstmrPmtStsRpt")
    header = _add(report, "GrpHdr")
    _add(header, "MsgId", report_id[:35])
    _add(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    original = _add(report, "OrgnlGrpInfAndSts")
    _add(original, "OrgnlMsgId", original_message_id[:35])
    _add(original, "OrgnlMsgNmId", original_version)
    _add(original, "OrgnlNbOfTxs", str(number_of_transactions))
    if control_sum is not None:
        _add(original, "OrgnlCtrlSum", control_sum)
    if group_reason is not None:
        _add(original, "GrpSts", "RJCT")
        _reason(original, *group_reason)
    else:
        _add(original, "GrpSts", group_status([line.status for line in lines]))
    by_information: dict[str, list[ReportLine]] = {}
    for line in lines:
        by_information.setdefault(line.payment_information_id, []).append(line)
    for pmt_inf_id, count, ctrl_sum in payment_informations:
        found = by_information.get(pmt_inf_id, [])
        info = _add(report, "OrgnlPmtInfAndSts")
        _add(info, "OrgnlPmtInfId", pmt_inf_id[:35])
        _add(info, "OrgnlNbOfTxs", str(count))
        if ctrl_sum is not None:
            _add(info, "OrgnlCtrlSum", ctrl_sum)
        _add(info, "PmtInfSts", "RJCT" if group_reason else group_status([line.status for line in found]))
        for line in found:
            tx = _add(info, "TxInfAndSts")
            _add(tx, "OrgnlEndToEndId", line.end_to_end_id[:35])
            _add(tx, "TxSts", line.status)
            _reason(tx, line.reason_code, line.reason)
            if line.instruction_id:
                _add(tx, "AcctSvcrRef", line.instruction_id[:35])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
