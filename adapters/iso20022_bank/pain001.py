"""pain.001.001.09 (customer credit transfer initiation): build one for a payment or many, read it back.

Built with lxml rather than ``sepaxml.SepaTransfer``: sepaxml generates its own
random MsgId/PmtInfId, has no InstrId, and formats amounts as cents (two
decimals for every currency), while the gateway must send its instruction id as
MsgId/PmtInfId/InstrId and respect each currency's minor units. The output is
validated against sepaxml's copy of the official XSD before it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from lxml import etree

from gateway.adapter import PaymentOrder
from gateway.contracts.safexml import child, children, clean_text, text
from gateway.domain.accounts import IbanAccount, Party
from gateway.domain.money import minor_units
from gateway.errors import ContractError, FieldError
from gateway_adapters.iso20022_bank.schemas import PAIN001_NAMESPACE, validate_pain001

__all__ = [
    "NOT_PROVIDED",
    "Pain001Message",
    "Pain001Transaction",
    "build_pain001",
    "build_pain001_many",
    "read_pain001",
]

#: EPC convention for an agent whose BIC is not known
NOT_PROVIDED = "NOTPROVIDED"

_NS = PAIN001_NAMESPACE


def _el(parent: etree._Element, tag: str, value: str | None = None, **attrib: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{_NS}}}{tag}", attrib)
    if value is not None:
        node.text = value
    return node


def _amount(order: PaymentOrder) -> str:
    exponent = minor_units(order.money.currency)
    return f"{order.money.amount:.{exponent}f}"


def _iban(party: Party, role: str) -> str:
    if not isinstance(party.account, IbanAccount):
        raise ContractError(
            f"{role} account must be an IBAN",
            errors=[FieldError(f"/{role}/account", f"{party.account.kind} accounts not supported")],
        )
    return party.account.iban


def _agent(parent: etree._Element, tag: str, party: Party, *, required: bool) -> None:
    if party.agent is None and not required:
        return  # CdtrAgt is optional: omit it rather than invent one
    fin = _el(_el(parent, tag), "FinInstnId")
    if party.agent is not None:
        _el(fin, "BICFI", party.agent.bic)
    else:
        _el(_el(fin, "Othr"), "Id", NOT_PROVIDED)


def build_pain001(order: PaymentOrder, *, created_at: datetime, execution_date: date) -> bytes:
    """One pain.001.001.09 message carrying ``order`` alone; XSD-valid or ``ContractError``.

    MsgId, PmtInfId and InstrId are ``order.id`` (the partner's idempotency key),
    EndToEndId is the business unit's ``order.reference``.
    """
    return build_pain001_many([(order, execution_date)], message_id=order.id, created_at=created_at)


def build_pain001_many(orders: Sequence[tuple[PaymentOrder, date]], *, message_id: str, created_at: datetime) -> bytes:
    """One pain.001.001.09 message carrying many payments (order, requested execution date); XSD-valid or
    ``ContractError``.

    Each payment is a payment information block of its own (PmtInfId and InstrId: ``order.id``,
    the partner's idempotency key for that payment), so debtors and execution dates may differ;
    the group header counts them all under ``message_id``.
    """
    amounts = [_amount(order) for order, _ in orders]
    root = etree.Element(f"{{{_NS}}}Document", nsmap={None: _NS})
    initiation = _el(root, "CstmrCdtTrfInitn")

    header = _el(initiation, "GrpHdr")
    _el(header, "MsgId", message_id)
    _el(header, "CreDtTm", created_at.replace(microsecond=0).isoformat())
    _el(header, "NbOfTxs", str(len(orders)))
    _el(header, "CtrlSum", amounts[0] if len(orders) == 1 else str(sum((Decimal(a) for a in amounts), Decimal(0))))
    _el(_el(header, "InitgPty"), "Nm", clean_text(orders[0][0].debtor.name, 140))
    for (order, execution_date), amount in zip(orders, amounts, strict=True):
        _payment_information(initiation, order, amount, execution_date)
    validate_pain001(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _payment_information(initiation: etree._Element, order: PaymentOrder, amount: str, execution_date: date) -> None:
    """The PmtInf block of one payment (its own PmtInfId: ``order.id``)."""
    currency = order.money.currency
    debtor_name = clean_text(order.debtor.name, 140)
    info = _el(initiation, "PmtInf")
    _el(info, "PmtInfId", order.id)
    _el(info, "PmtMtd", "TRF")
    _el(info, "BtchBookg", "false")
    _el(info, "NbOfTxs", "1")
    _el(info, "CtrlSum", amount)
    sepa = currency == "EUR"
    if sepa:
        _el(_el(_el(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _el(_el(info, "ReqdExctnDt"), "Dt", execution_date.isoformat())
    _el(_el(info, "Dbtr"), "Nm", debtor_name)
    _el(_el(_el(info, "DbtrAcct"), "Id"), "IBAN", _iban(order.debtor, "debtor"))
    _agent(info, "DbtrAgt", order.debtor, required=True)
    _el(info, "ChrgBr", "SLEV" if sepa else "SHAR")

    tx = _el(info, "CdtTrfTxInf")
    pmt_id = _el(tx, "PmtId")
    _el(pmt_id, "InstrId", order.id)
    _el(pmt_id, "EndToEndId", order.reference)
    _el(_el(tx, "Amt"), "InstdAmt", amount, Ccy=currency)
    _agent(tx, "CdtrAgt", order.creditor, required=False)
    _el(_el(tx, "Cdtr"), "Nm", clean_text(order.creditor.name, 140))
    _el(_el(_el(tx, "CdtrAcct"), "Id"), "IBAN", _iban(order.creditor, "creditor"))
    if order.remittance_information and clean_text(order.remittance_information, 140):
        _el(_el(tx, "RmtInf"), "Ustrd", clean_text(order.remittance_information, 140))


@dataclass(frozen=True)
class Pain001Transaction:
    """One credit transfer read from a pain.001 (what a bank books); IBANs stay out of repr."""

    message_id: str
    payment_information_id: str
    instruction_id: str | None
    end_to_end_id: str
    amount: Decimal
    currency: str
    debtor_name: str | None
    debtor_iban: str | None = field(repr=False)
    creditor_name: str | None
    creditor_iban: str | None = field(repr=False)
    creditor_bic: str | None
    remittance_information: str | None
    execution_date: str | None

    @property
    def key(self) -> str:
        """How the bank files the payment: InstrId, else PmtInfId."""
        return self.instruction_id or self.payment_information_id

    def fingerprint(self) -> tuple[str | None, ...]:
        """The business content: what must match for a resend to be 'the same payment'.

        Creation time and execution date are left out: a retry rebuilt a day
        later is still the same payment.
        """
        return (
            self.instruction_id,
            self.end_to_end_id,
            str(self.amount),
            self.currency,
            self.debtor_iban,
            self.creditor_iban,
            self.creditor_name,
            self.creditor_bic,
            self.remittance_information,
        )


@dataclass(frozen=True)
class Pain001Message:
    """A pain.001 as the simulator reads it."""

    message_id: str
    transactions: tuple[Pain001Transaction, ...]


def read_pain001(body: bytes | etree._Element) -> Pain001Message:
    """Validate against the XSD, then read every CdtTrfTxInf; ``ContractError`` if invalid."""
    root = validate_pain001(body)
    initiation = child(root, "CstmrCdtTrfInitn")
    message_id = text(initiation, "GrpHdr", "MsgId") or ""
    transactions: list[Pain001Transaction] = []
    for info in children(initiation, "PmtInf"):
        for tx in children(info, "CdtTrfTxInf"):
            instd = child(child(tx, "Amt"), "InstdAmt")
            try:
                amount = Decimal((instd.text or "").strip()) if instd is not None else None
            except InvalidOperation:
                amount = None
            if instd is None or amount is None:
                raise ContractError(
                    "pain.001 transaction without an instructed amount",
                    errors=[FieldError("/Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf/Amt", "missing")],
                )
            transactions.append(
                Pain001Transaction(
                    message_id=message_id,
                    payment_information_id=text(info, "PmtInfId") or "",
                    instruction_id=text(tx, "PmtId", "InstrId"),
                    end_to_end_id=text(tx, "PmtId", "EndToEndId") or "",
                    amount=amount,
                    currency=instd.get("Ccy", ""),
                    debtor_name=text(info, "Dbtr", "Nm"),
                    debtor_iban=text(info, "DbtrAcct", "Id", "IBAN"),
                    creditor_name=text(tx, "Cdtr", "Nm"),
                    creditor_iban=text(tx, "CdtrAcct", "Id", "IBAN"),
                    creditor_bic=text(tx, "CdtrAgt", "FinInstnId", "BICFI"),
                    remittance_information=text(tx, "RmtInf", "Ustrd"),
                    execution_date=text(info, "ReqdExctnDt", "Dt"),
                )
            )
    return Pain001Message(message_id=message_id, transactions=tuple(transactions))
