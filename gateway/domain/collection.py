"""From a contract-valid collection document to domain values, and what an adapter sees of one.

The JSON contract (``contracts/collection``) checks shape; this module checks
meaning (IBAN checksum, currency minor units, a positive amount, no card number
hidden in free text) and reports every failing field at once, like
``gateway.domain.instruction``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from stdnum import luhn

from gateway.domain.accounts import IbanAccount, mask
from gateway.domain.errors import DomainError, FieldError, MoneyError
from gateway.domain.money import Money

__all__ = [
    "COLLECTION_KINDS",
    "CollectionData",
    "CollectionOrder",
    "Mandate",
    "Payer",
    "parse_collection",
]

COLLECTION_KINDS = ("card_charge", "wallet_charge", "direct_debit")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: 13-19 digits, possibly grouped by spaces or dashes: what a card number looks like in free text
_PAN_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
#: free-text fields, where a card number pasted by mistake would otherwise be stored
_PAN_MESSAGE = "looks like a card number: send the acquirer's card token, never the number"
_FREE_TEXT = ("/description", "/metadata/", "/payer/name")


@dataclass(frozen=True, slots=True)
class Mandate:
    """A SEPA direct debit mandate as the payer signed it."""

    id: str
    signature_date: date
    sequence_type: str  # FRST | RCUR

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "signature_date": self.signature_date.isoformat(), "sequence_type": self.sequence_type}


@dataclass(frozen=True, slots=True)
class Payer:
    """Who pays: a name and exactly one instrument (card token, wallet id or IBAN)."""

    name: str
    card_token: str | None = None
    wallet: str | None = None
    iban: IbanAccount | None = None
    bic: str | None = None

    @property
    def instrument(self) -> str:
        """The instrument in clear (a token, a wallet id or an IBAN): stored encrypted, never shown."""
        return self.card_token or self.wallet or (self.iban.iban if self.iban else "")

    def as_dict(self) -> dict[str, str]:
        out = {"name": self.name}
        if self.card_token:
            out["card_token"] = self.card_token
        if self.wallet:
            out["wallet"] = self.wallet
        if self.iban:
            out["iban"] = self.iban.iban
        if self.bic:
            out["bic"] = self.bic
        return out

    def masked(self) -> dict[str, str]:
        """The payer for display: the instrument masked to its last four characters."""
        return {k: (v if k in ("name", "bic") else mask(v)) for k, v in self.as_dict().items()}


@dataclass(frozen=True)
class CollectionData:
    """A business unit's collection after contract and domain validation."""

    reference: str
    kind: str
    money: Money
    payer: Payer
    description: str | None = None
    capture: str = "auto"
    mandate: Mandate | None = None
    #: direct_debit only: the day the business unit asked the payer to be debited (else the earliest)
    due_date: date | None = None
    channel: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionOrder:
    """What an adapter receives to collect money: the stored collection, decrypted, nothing more.

    ``id`` is the gateway's collection id and the partner idempotency key.
    """

    id: str
    business_unit: str
    reference: str
    kind: str
    money: Money
    payer: Payer
    description: str | None = None
    capture: str = "auto"
    mandate: Mandate | None = None
    #: direct_debit only: the asked debit day; ``None`` for the earliest the scheme allows
    due_date: date | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def _free_text_problems(node: Any, pointer: str = "") -> list[FieldError]:
    """Control characters anywhere, and card numbers in free text (tokens only, never a PAN)."""
    if isinstance(node, str):
        if _CONTROL.search(node):
            return [FieldError(pointer, "control characters (line breaks, tabs) are not allowed")]
        for found in _PAN_LIKE.finditer(node) if pointer.startswith(_FREE_TEXT) else ():
            digits = re.sub(r"\D", "", found.group())
            if luhn.is_valid(digits):
                return [FieldError(pointer, _PAN_MESSAGE)]
        return []
    if isinstance(node, Mapping):
        out: list[FieldError] = []
        for key, value in node.items():
            out += _free_text_problems(value, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")
        return out
    return []


def _money(doc: Mapping[str, Any]) -> Money:
    try:
        money = Money(doc["value"], doc["currency"])
    except MoneyError as exc:
        pointer = "/amount/currency" if exc.slug == "invalid-currency" else "/amount/value"
        raise type(exc)(exc.message, pointer=pointer) from None
    if money.amount <= Decimal(0):
        raise MoneyError("amount must be greater than zero", pointer="/amount/value")
    return money


#: the payer instrument each kind takes
_INSTRUMENT = {"card_charge": "card_token", "wallet_charge": "wallet", "direct_debit": "iban"}


def _kind_problems(doc: Mapping[str, Any]) -> list[FieldError]:
    """What does not go with the document's kind: the payer's instrument, the mandate, capture."""
    kind = doc["kind"]
    errors = []
    instrument = _INSTRUMENT[kind]
    if instrument not in doc["payer"]:
        errors.append(FieldError(f"/payer/{instrument}", f"a {kind} needs payer.{instrument}"))
    if kind == "direct_debit" and "mandate" not in doc:
        errors.append(FieldError("/mandate", "a direct_debit needs the mandate (id, signature_date, sequence_type)"))
    if kind != "direct_debit" and "mandate" in doc:
        errors.append(FieldError("/mandate", f"only a direct_debit has a mandate, not a {kind}"))
    if kind != "direct_debit" and "due_date" in doc:
        errors.append(FieldError("/due_date", f"only a direct_debit has a due date, not a {kind}"))
    if kind != "card_charge" and "capture" in doc:
        errors.append(FieldError("/capture", f"only a card_charge is captured; leave capture out of a {kind}"))
    return errors


def parse_collection(doc: Mapping[str, Any]) -> CollectionData:
    """Build ``CollectionData`` from a contract-valid document; ``DomainError`` listing every failing field."""
    errors = _kind_problems(doc) + _free_text_problems(doc)
    due_date: date | None = None
    try:
        due_date = date.fromisoformat(doc["due_date"]) if doc.get("due_date") else None
    except ValueError:
        errors.append(FieldError("/due_date", f"{doc['due_date']!r} is not a date (YYYY-MM-DD)"))
    money: Money | None = None
    try:
        money = _money(doc["amount"])
    except DomainError as exc:
        errors.extend(exc.errors)
    raw_payer = doc["payer"]
    iban = None
    if "iban" in raw_payer:
        try:
            iban = IbanAccount.parse(raw_payer["iban"], "/payer/iban")
        except DomainError as exc:
            errors.extend(exc.errors)
    if errors or money is None:
        raise DomainError(errors[0].message, pointer=errors[0].pointer, errors=errors)
    raw_mandate = doc.get("mandate")
    mandate = (
        Mandate(raw_mandate["id"], date.fromisoformat(raw_mandate["signature_date"]), raw_mandate["sequence_type"])
        if raw_mandate
        else None
    )
    return CollectionData(
        reference=doc["reference"],
        kind=doc["kind"],
        money=money,
        payer=Payer(
            name=raw_payer["name"],
            card_token=raw_payer.get("card_token"),
            wallet=raw_payer.get("wallet"),
            iban=iban,
            bic=raw_payer.get("bic"),
        ),
        description=doc.get("description"),
        capture=doc.get("capture", "auto") if doc["kind"] == "card_charge" else "auto",
        mandate=mandate,
        due_date=due_date,
        channel=doc.get("channel"),
        metadata=dict(doc.get("metadata") or {}),
    )
