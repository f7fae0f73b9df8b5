"""From a contract-valid instruction document to domain values (Money, Party, date).

The JSON contract checks shape; this module checks meaning (IBAN checksums, ABA
check digits, currency minor units, ISO 11649 and LEI check digits) and reports
every failing field at once. It reads the *newest* contract shape only: older
versions are upcast first (``gateway.contracts.versions``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from stdnum import iso11649
from stdnum.exceptions import ValidationError as _StdnumError

from gateway.domain.accounts import Party, UltimateParty, parse_party, parse_ultimate_party
from gateway.domain.errors import DomainError, FieldError, IdentifierError, MoneyError
from gateway.domain.money import Money
from gateway.domain.order import PaymentOrder

__all__ = ["InstructionData", "has_control_characters", "parse_instruction", "payment_order"]

T = TypeVar("T")


@dataclass(frozen=True)
class InstructionData:
    """A business unit's instruction after contract and domain validation."""

    reference: str
    type: str
    money: Money
    debtor: Party
    creditor: Party
    #: unstructured remittance text (ISO 20022 Ustrd)
    remittance_information: str | None = None
    #: structured remittance: an ISO 11649 creditor reference (type SCOR), check digits validated
    creditor_reference: str | None = None
    purpose: str | None = None
    ultimate_debtor: UltimateParty | None = None
    ultimate_creditor: UltimateParty | None = None
    requested_execution_date: date | None = None
    urgency: str = "standard"
    channel: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def _collect(errors: list[FieldError], fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except DomainError as exc:
        errors.extend(exc.errors)
        return None


def _positive_money(doc: Mapping[str, Any]) -> Money:
    money = Money(doc["amount"], doc["currency"])
    if money.amount <= Decimal(0):
        raise MoneyError("amount must be greater than zero", pointer="/amount")
    return money


def _money(doc: Mapping[str, Any]) -> Money:
    try:
        return _positive_money(doc)
    except MoneyError as exc:
        if exc.pointer:
            raise
        pointer = "/currency" if exc.slug == "invalid-currency" else "/amount"
        raise type(exc)(exc.message, pointer=pointer) from None


def _creditor_reference(remittance: Mapping[str, Any]) -> str | None:
    structured = remittance.get("structured")
    if not structured:
        return None
    try:
        return str(iso11649.validate(structured["creditor_reference"]))
    except _StdnumError as exc:
        pointer = "/remittance_information/structured/creditor_reference"
        raise IdentifierError(f"invalid ISO 11649 creditor reference: {exc}", pointer=pointer) from None


def _ultimate(doc: Mapping[str, Any], role: str) -> UltimateParty | None:
    return parse_ultimate_party(doc[role], f"/{role}") if doc.get(role) else None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PARTIES = ("debtor", "creditor")


#: a control character as ``json.dumps`` writes it (``\n``, ``\u001f``, ``\u007f``), after an even run of backslashes
_ESCAPED_CONTROL = re.compile(r"(?<!\\)(?:\\\\)*\\(?:[nrtbf]|u00[01][0-9a-fA-F]|u007[fF])")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (a line break, a tab, NUL), which no instruction field may.

    A caller that finds none in all of a document's strings at once parses it with ``plain_text``.
    """
    return _CONTROL.search(text) is not None


def _has_control(node: Any) -> bool:
    """Whether any string in ``node`` may hold a control character (``False`` is certain; no pointers built).

    One ``json.dumps`` (C) and one search instead of a walk: every control character comes out
    escaped. Keys are searched too, so a key with one answers ``True`` and the exact walk decides.
    """
    try:
        text = json.dumps(node)
    except (TypeError, ValueError):
        return _has_control_walk(node)
    return "\\" in text and _ESCAPED_CONTROL.search(text) is not None


def _has_control_walk(node: Any) -> bool:
    if isinstance(node, str):
        return _CONTROL.search(node) is not None
    if isinstance(node, Mapping):
        return any(_has_control_walk(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_control_walk(item) for item in node)
    return False


def _control_characters(node: Any, pointer: str = "") -> list[FieldError]:
    """Fields holding control characters (line breaks, tabs, NUL).

    No payment message format carries them, and JSON Schema's ``$`` (Python
    ``re``) lets a trailing newline through a pattern, so they are refused here.
    """
    if not pointer and not _has_control(node):
        return []
    if isinstance(node, str):
        return (
            [FieldError(pointer, "control characters (line breaks, tabs) are not allowed")]
            if _CONTROL.search(node)
            else []
        )
    if isinstance(node, Mapping):
        found: list[FieldError] = []
        for key, value in node.items():
            found += _control_characters(value, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
        return found
    if isinstance(node, list):
        return [e for i, item in enumerate(node) for e in _control_characters(item, f"{pointer}/{i}")]
    return []


def parse_instruction(
    doc: Mapping[str, Any], parties: tuple[Party, Party] | None = None, *, plain_text: bool = False
) -> InstructionData:
    """Build ``InstructionData`` from a contract-valid document in the newest shape.

    Raise ``DomainError`` listing every failing field.

    ``parties``: the debtor and creditor this function already returned for documents
    whose ``debtor`` and ``creditor`` equal ``doc``'s (a caller that meets the same
    parties again, such as the history import, parses each once); they are taken as
    they are, and neither parsed nor searched for control characters again.

    ``plain_text``: the caller knows that no string in ``doc`` holds a control character
    (``decode_json`` of a body without a single backslash: JSON text cannot carry one
    unescaped, and the decoder refuses the rest), so they are not looked for again.
    """
    # the parties' fields are known good when given: only the rest of the document is searched
    rest = doc if parties is None else {k: v for k, v in doc.items() if k not in _PARTIES}
    try:
        if plain_text or not _has_control(rest):
            # the common case: nothing wrong, each field parsed once, in order
            money = _money(doc)
            if parties is None:
                debtor = parse_party(doc["debtor"], "/debtor")
                creditor = parse_party(doc["creditor"], "/creditor")
            else:
                debtor, creditor = parties
            return _instruction(
                doc,
                money,
                debtor,
                creditor,
                _ultimate(doc, "ultimate_debtor"),
                _ultimate(doc, "ultimate_creditor"),
                _creditor_reference(doc.get("remittance_information") or {}),
            )
    except DomainError:
        pass  # something is wrong: find every failing field
    errors: list[FieldError] = _control_characters(rest)
    money_or_none = _collect(errors, lambda: _money(doc))
    if parties is None:
        debtor_or_none = _collect(errors, lambda: parse_party(doc["debtor"], "/debtor"))
        creditor_or_none = _collect(errors, lambda: parse_party(doc["creditor"], "/creditor"))
    else:
        debtor_or_none, creditor_or_none = parties
    ultimate_debtor = _collect(errors, lambda: _ultimate(doc, "ultimate_debtor"))
    ultimate_creditor = _collect(errors, lambda: _ultimate(doc, "ultimate_creditor"))
    remittance: Mapping[str, Any] = doc.get("remittance_information") or {}
    creditor_reference = _collect(errors, lambda: _creditor_reference(remittance))
    if errors or money_or_none is None or debtor_or_none is None or creditor_or_none is None:
        raise DomainError(errors[0].message, pointer=errors[0].pointer, errors=errors)
    return _instruction(
        doc, money_or_none, debtor_or_none, creditor_or_none, ultimate_debtor, ultimate_creditor, creditor_reference
    )


def _instruction(
    doc: Mapping[str, Any],
    money: Money,
    debtor: Party,
    creditor: Party,
    ultimate_debtor: UltimateParty | None,
    ultimate_creditor: UltimateParty | None,
    creditor_reference: str | None,
) -> InstructionData:
    remittance: Mapping[str, Any] = doc.get("remittance_information") or {}
    raw_date = doc.get("requested_execution_date")
    return InstructionData(
        reference=doc["reference"],
        type=doc["type"],
        money=money,
        debtor=debtor,
        creditor=creditor,
        remittance_information=remittance.get("unstructured"),
        creditor_reference=creditor_reference,
        purpose=doc.get("purpose"),
        ultimate_debtor=ultimate_debtor,
        ultimate_creditor=ultimate_creditor,
        requested_execution_date=date.fromisoformat(raw_date) if raw_date else None,
        urgency=doc.get("urgency", "standard"),
        channel=doc.get("channel"),
        metadata=dict(doc.get("metadata") or {}),
    )


def payment_order(instruction_id: str, business_unit: str, data: InstructionData) -> PaymentOrder:
    """The ``PaymentOrder`` an adapter would receive for ``data`` (used where nothing is stored yet)."""
    return PaymentOrder(
        id=instruction_id,
        business_unit=business_unit,
        reference=data.reference,
        type=data.type,
        money=data.money,
        debtor=data.debtor,
        creditor=data.creditor,
        remittance_information=data.remittance_information or data.creditor_reference,
        requested_execution_date=data.requested_execution_date,
        urgency=data.urgency,
        metadata=dict(data.metadata),
        creditor_reference=data.creditor_reference,
        purpose=data.purpose,
        ultimate_debtor=data.ultimate_debtor,
        ultimate_creditor=data.ultimate_creditor,
    )
