"""ERP payment files in: pain.001.001.03 and pain.001.001.09, read safely, checked, mapped to instructions.

A file goes through, in order, and the first failure refuses the whole file:

1. ``gateway.contracts.safexml.parse_xml``: size, no DTD, no entities, no network,
   well-formed (hostile files stop here, before any tree is built from them);
2. the namespace names a version we read (``VERSIONS``), else "wrong namespace";
3. the official XSD of that version (``xmlschema``; the XSDs are package data in
   ``gateway/intake/xsd``), every violation with its element path;
4. the control figures: ``NbOfTxs`` and ``CtrlSum`` of the group header and of each
   ``PmtInf`` against the transactions actually in the file (``HeaderMismatch``: the
   file is refused with a pain.002 saying why).

Each ``CdtTrfTxInf`` then becomes an instruction document (docs/files.md has the
mapping), validated later by the instruction contract like any other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any

import xmlschema
from lxml import etree

from gateway.contracts.safexml import child, children, namespace, parse_xml, text
from gateway.errors import ContractError, FieldError

__all__ = [
    "NAMESPACE_PREFIX",
    "VERSIONS",
    "HeaderMismatch",
    "Payment",
    "PaymentFile",
    "read_pain001",
]

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
#: the pain.001 versions read, each validated against its own XSD
VERSIONS = ("pain.001.001.03", "pain.001.001.09")
_ROOT = "/Document/CstmrCdtTrfInitn"
_SPACES = re.compile(r"\s+")
_REFERENCE_OK = re.compile(r"^[A-Za-z0-9/?:().,'+ -]{1,35}$")


@cache
def _schema(version: str) -> xmlschema.XMLSchema:
    """The official XSD of ``version``, loaded once from the package (no imports: no network)."""
    path = resources.files("gateway.intake") / "xsd" / f"{version}.xsd"
    return xmlschema.XMLSchema(str(path), allow="local", defuse="always")


@dataclass(frozen=True)
class HeaderMismatch:
    """A control figure that does not match the file: why, and where."""

    pointer: str
    reason: str


@dataclass(frozen=True)
class Payment:
    """One ``CdtTrfTxInf``: where it is in the file and the instruction document it maps to."""

    payment_information_id: str
    end_to_end_id: str
    pointer: str  # e.g. /Document/CstmrCdtTrfInitn/PmtInf[1]/CdtTrfTxInf[2]
    amount: str
    currency: str
    document: dict[str, Any]


@dataclass(frozen=True)
class PaymentFile:
    """A pain.001 that passed the XSD: its header, payments, control figures and any header mismatch."""

    version: str
    message_id: str
    created_at: str
    number_of_transactions: int
    control_sum: str | None
    payment_informations: list[tuple[str, int, str | None]]  # (PmtInfId, NbOfTxs, CtrlSum)
    payments: list[Payment]
    sha256: str
    mismatch: HeaderMismatch | None = None


def _version(root: etree._Element) -> str:
    found = namespace(root)
    version = found.removeprefix(NAMESPACE_PREFIX) if found.startswith(NAMESPACE_PREFIX) else ""
    if version not in VERSIONS or etree.QName(root).localname != "Document":
        expected = " or ".join(NAMESPACE_PREFIX + v for v in VERSIONS)
        raise ContractError(
            "not a pain.001 file this gateway reads (wrong namespace)",
            errors=[FieldError("/Document", f"namespace {found!r} is not {expected}")],
        )
    return version


def _validate(root: etree._Element, version: str) -> None:
    errors = []
    for error in _schema(version).iter_errors(root):
        errors.append(FieldError(error.path or "/Document", str(error.reason or "does not match the XSD")[:300]))
        if len(errors) == 20:
            break
    if errors:
        first = errors[0]
        raise ContractError(f"not a valid {version}: {first.pointer}: {first.message}", errors=errors)


def _decimal(value: str | None) -> Decimal:
    try:
        return Decimal(value or "")
    except InvalidOperation:  # the XSD lets only decimals through; kept for safety
        return Decimal("NaN")


def _indexed(name: str, index: int, count: int) -> str:
    return f"{name}[{index}]" if count > 1 else name


def _account(node: etree._Element | None) -> dict[str, str]:
    """``…Acct/Id``: an IBAN, else the other identification as a (US-style) number is not guessed: IBAN only."""
    iban = text(node, "Id", "IBAN")
    if iban:
        return {"iban": iban}
    other = text(node, "Id", "Othr", "Id")
    return {"iban": other or ""}  # refused by the contract with its pointer: only IBAN accounts are read


def _agent(node: etree._Element | None) -> dict[str, str] | None:
    bic = text(node, "FinInstnId", "BIC") or text(node, "FinInstnId", "BICFI")
    return {"bic": bic} if bic else None


def _party(name_of: etree._Element | None, account: etree._Element | None, agent: etree._Element | None) -> dict:
    party: dict[str, Any] = {"name": text(name_of, "Nm") or "", "account": _account(account)}
    found = _agent(agent)
    if found:
        party["agent"] = found
    return party


def _ultimate(node: etree._Element | None) -> dict[str, str] | None:
    name = text(node, "Nm")
    return {"name": name} if name else None


def _execution_date(payment_information: etree._Element) -> str | None:
    node = child(payment_information, "ReqdExctnDt")
    if node is None:
        return None
    if node.text and node.text.strip():  # 03: a date
        return node.text.strip()
    return text(node, "Dt") or (text(node, "DtTm") or "")[:10] or None  # 09: a choice of date or date-time


def _remittance(tx: etree._Element) -> dict[str, Any] | None:
    info = child(tx, "RmtInf")
    lines = [t.text.strip() for t in children(info, "Ustrd") if t.text and t.text.strip()]
    if lines:
        return {"unstructured": _SPACES.sub(" ", " ".join(lines))[:140]}
    reference = text(child(info, "Strd"), "CdtrRefInf", "Ref")
    if reference:
        return {"structured": {"creditor_reference": reference.replace(" ", ""), "type": "SCOR"}}
    return None


def _reference(message_id: str, pmt_inf_id: str, index: int, end_to_end_id: str) -> str:
    """The instruction's reference: the EndToEndId, unless the ERP left it ``NOTPROVIDED`` (or unusable)."""
    if end_to_end_id != "NOTPROVIDED" and _REFERENCE_OK.match(end_to_end_id):
        return end_to_end_id
    digest = hashlib.sha256(f"{message_id}\n{pmt_inf_id}\n{index}".encode()).hexdigest()
    return f"F{digest[:34]}"


def _check(header: etree._Element | None, where: str, count: int, total: Decimal) -> HeaderMismatch | None:
    stated = int(text(header, "NbOfTxs") or "0")
    if stated != count:
        return HeaderMismatch(f"{where}/NbOfTxs", f"NbOfTxs says {stated}, the file holds {count} transaction(s)")
    control = text(header, "CtrlSum")
    if control is not None and _decimal(control) != total:
        return HeaderMismatch(f"{where}/CtrlSum", f"CtrlSum says {control}, the transactions add up to {total}")
    return None


def read_pain001(body: bytes, *, max_bytes: int) -> PaymentFile:
    """Read a pain.001 file; ``ContractError`` (pointer = element path) if it is hostile, of another kind or invalid.

    A file whose control figures do not add up is returned with ``mismatch`` set: it is
    refused as a whole, but it is a file (it has a message id) and gets a pain.002.
    """
    if len(body) > max_bytes:
        raise ContractError(
            "file too large", errors=[FieldError("/Document", f"{len(body)} bytes; at most {max_bytes} are accepted")]
        )
    root = parse_xml(body, max_bytes=max_bytes)
    version = _version(root)
    _validate(root, version)
    initiation = child(root, "CstmrCdtTrfInitn")
    header = child(initiation, "GrpHdr")
    message_id = text(header, "MsgId") or ""
    payments: list[Payment] = []
    informations: list[tuple[str, int, str | None]] = []
    mismatch: HeaderMismatch | None = None
    grand_total = Decimal(0)
    infos = children(initiation, "PmtInf")
    for p, info in enumerate(infos, 1):
        where = f"{_ROOT}/{_indexed('PmtInf', p, len(infos))}"
        pmt_inf_id = text(info, "PmtInfId") or ""
        txs = children(info, "CdtTrfTxInf")
        total = sum((_decimal(text(tx, "Amt", "InstdAmt")) for tx in txs), Decimal(0))
        grand_total += total
        informations.append((pmt_inf_id, int(text(info, "NbOfTxs") or "0"), text(info, "CtrlSum")))
        mismatch = mismatch or _check(info, where, len(txs), total)
        debtor = _party(child(info, "Dbtr"), child(info, "DbtrAcct"), child(info, "DbtrAgt"))
        execution_date = _execution_date(info)
        purpose_default = text(child(info, "PmtTpInf"), "CtgyPurp", "Cd")
        ultimate_debtor = _ultimate(child(info, "UltmtDbtr"))
        for t, tx in enumerate(txs, 1):
            pointer = f"{where}/{_indexed('CdtTrfTxInf', t, len(txs))}"
            end_to_end_id = text(tx, "PmtId", "EndToEndId") or "NOTPROVIDED"
            amount_node = child(child(tx, "Amt"), "InstdAmt")
            amount = (amount_node.text or "").strip() if amount_node is not None else ""
            currency = amount_node.get("Ccy", "") if amount_node is not None else ""
            doc: dict[str, Any] = {
                "reference": _reference(message_id, pmt_inf_id, len(payments), end_to_end_id),
                "type": "credit_transfer",
                "amount": _amount_text(amount),
                "currency": currency,
                "debtor": debtor,
                "creditor": _party(child(tx, "Cdtr"), child(tx, "CdtrAcct"), child(tx, "CdtrAgt")),
                "metadata": {
                    "file_message_id": message_id,
                    "payment_information_id": pmt_inf_id[:256],
                    "end_to_end_id": end_to_end_id,
                },
            }
            remittance = _remittance(tx)
            if remittance:
                doc["remittance_information"] = remittance
            purpose = text(child(tx, "Purp"), "Cd") or purpose_default
            if purpose and re.fullmatch(r"[A-Z]{4}", purpose):
                doc["purpose"] = purpose
            for role, node in (
                ("ultimate_debtor", child(tx, "UltmtDbtr")),
                ("ultimate_creditor", child(tx, "UltmtCdtr")),
            ):
                found = _ultimate(node) or (ultimate_debtor if role == "ultimate_debtor" else None)
                if found:
                    doc[role] = found
            if execution_date:
                doc["requested_execution_date"] = execution_date
            payments.append(Payment(pmt_inf_id, end_to_end_id, pointer, amount, currency, doc))
    mismatch = _check(header, f"{_ROOT}/GrpHdr", len(payments), grand_total) or mismatch
    return PaymentFile(
        version=version,
        message_id=message_id,
        created_at=text(header, "CreDtTm") or "",
        number_of_transactions=int(text(header, "NbOfTxs") or "0"),
        control_sum=text(header, "CtrlSum"),
        payment_informations=informations,
        payments=payments,
        sha256=hashlib.sha256(body).hexdigest(),
        mismatch=mismatch,
    )


def _amount_text(amount: str) -> str:
    """The amount as the contract writes it: ISO allows ``5.`` and leading zeros, the contract does not."""
    value = _decimal(amount)
    if not value.is_finite():
        return amount
    return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
