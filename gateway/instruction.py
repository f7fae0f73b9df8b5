"""From a contract-valid instruction document to domain values (Money, Party, date).

The JSON contract checks shape; this module checks meaning (IBAN checksums, ABA
check digits, currency minor units) and reports every failing field at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from gateway.accounts import Party, parse_party
from gateway.errors import DomainError, FieldError, MoneyError
from gateway.money import Money

__all__ = ["InstructionData", "parse_instruction"]

T = TypeVar("T")


@dataclass(frozen=True)
class InstructionData:
    """A business unit's instruction after contract and domain validation."""

    reference: str
    type: str
    money: Money
    debtor: Party
    creditor: Party
    remittance_information: str | None = None
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


def parse_instruction(doc: Mapping[str, Any]) -> InstructionData:
    """Build ``InstructionData`` from a contract-valid document; raise ``DomainError`` with all errors."""
    errors: list[FieldError] = []
    money = _collect(errors, lambda: _money(doc))
    debtor = _collect(errors, lambda: parse_party(doc["debtor"], "/debtor"))
    creditor = _collect(errors, lambda: parse_party(doc["creditor"], "/creditor"))
    if errors or money is None or debtor is None or creditor is None:
        raise DomainError(errors[0].message, pointer=errors[0].pointer, errors=errors)
    raw_date = doc.get("requested_execution_date")
    return InstructionData(
        reference=doc["reference"],
        type=doc["type"],
        money=money,
        debtor=debtor,
        creditor=creditor,
        remittance_information=doc.get("remittance_information"),
        requested_execution_date=date.fromisoformat(raw_date) if raw_date else None,
        urgency=doc.get("urgency", "standard"),
        channel=doc.get("channel"),
        metadata=dict(doc.get("metadata") or {}),
    )
