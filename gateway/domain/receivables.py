"""Receivables and receipts as values: structured references, remittance text, allocation.

A receivable is what a distributor owes a business unit for one invoice; a
receipt is an incoming credit on a bank statement. ``allocate`` spreads a
receipt over the receivables it was matched to (earliest due first), and what
is left over stays on the distributor's account. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from stdnum import iso11649
from stdnum.exceptions import ValidationError

from gateway.domain.errors import DomainError

__all__ = [
    "DISTRIBUTOR_RE",
    "Allocation",
    "OpenItem",
    "ReceiptState",
    "ReceivableStatus",
    "StructuredReferenceError",
    "allocate",
    "receivable_status",
    "references_in",
    "structured_reference",
    "tokens_of",
]

#: a distributor's id as business units and credit lines name it
DISTRIBUTOR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RF_IN_TEXT = re.compile(r"\bRF\s?[0-9]{2}(?:\s?[0-9A-Z]){1,21}\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._-]{0,34}")


class StructuredReferenceError(DomainError):
    """A creditor reference is not a valid ISO 11649 (RF) reference."""

    default_message = "not a valid ISO 11649 creditor reference"
    slug = "invalid-reference"


class ReceivableStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    WRITTEN_OFF = "written_off"


class ReceiptState(StrEnum):
    UNMATCHED = "unmatched"  # waits in finance's queue
    MATCHED = "matched"  # every cent applied to receivables
    ON_ACCOUNT = "on_account"  # (what is left of it) stays on a distributor's account
    REFUNDED = "refunded"  # (what was left of it) paid back through a payout instruction


def structured_reference(value: str) -> str:
    """The compact form of an ISO 11649 reference (``RF18539007547034``); ``StructuredReferenceError`` if invalid."""
    try:
        return str(iso11649.validate(value))
    except ValidationError as exc:
        raise StructuredReferenceError(f"{value[:40]!r} is not a valid ISO 11649 reference: {exc.message}") from None


def references_in(text: str | None) -> list[str]:
    """Every valid ISO 11649 reference written in a remittance text, compact, in order."""
    found = []
    for m in _RF_IN_TEXT.finditer(text or ""):
        candidate = m.group(0).upper()
        if iso11649.is_valid(candidate):
            found.append(str(iso11649.compact(candidate)))
    return found


def tokens_of(text: str | None) -> list[str]:
    """The words of a remittance text that could be invoice numbers (upper-cased, at most 50, de-duplicated)."""
    seen: dict[str, None] = {}
    for m in _TOKEN.finditer(text or ""):
        seen.setdefault(m.group(0).upper().rstrip("./-"), None)
        if len(seen) >= 50:
            break
    return [t for t in seen if t]


def receivable_status(amount_minor: int, paid_minor: int) -> ReceivableStatus:
    """The status a receivable's payments give it."""
    if paid_minor <= 0:
        return ReceivableStatus.OPEN
    return ReceivableStatus.PAID if paid_minor >= amount_minor else ReceivableStatus.PARTIALLY_PAID


@dataclass(frozen=True, slots=True)
class OpenItem:
    """A receivable as allocation sees it: what is still owed, and when it was due."""

    receivable_id: str
    outstanding_minor: int
    due_on: str  # ISO date: sorts like the date


@dataclass(frozen=True, slots=True)
class Allocation:
    receivable_id: str
    amount_minor: int


def allocate(amount_minor: int, items: Iterable[OpenItem]) -> tuple[list[Allocation], int]:
    """Apply ``amount_minor`` to the items, earliest due first; the allocations and what is left over."""
    left = amount_minor
    out: list[Allocation] = []
    ordered: Sequence[OpenItem] = sorted(items, key=lambda i: (i.due_on, i.receivable_id))
    for item in ordered:
        if left <= 0:
            break
        take = min(left, item.outstanding_minor)
        if take > 0:
            out.append(Allocation(item.receivable_id, take))
            left -= take
    return out, left
