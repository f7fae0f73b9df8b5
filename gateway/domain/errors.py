"""The domain's errors, and the root every gateway error derives from.

``gateway.errors`` re-exports them beside the errors of the other layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AccountError",
    "CollectionDateError",
    "CreditorIdentifierError",
    "CurrencyError",
    "DomainError",
    "FieldError",
    "GatewayError",
    "IdentifierError",
    "MandateError",
    "MandateIdError",
    "MoneyError",
    "PreNotificationError",
    "SequenceTypeError",
    "SignatureDateError",
    "pointer_of",
]


def _escape(part: object) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer_of(path: Any) -> str:
    """RFC 6901 JSON pointer of a path (e.g. a jsonschema error's ``absolute_path``)."""
    return "".join("/" + _escape(p) for p in path)


@dataclass(frozen=True)
class FieldError:
    """One failing field: its JSON pointer and what is wrong with it."""

    pointer: str
    message: str
    #: the 1-based line in the source file (a YAML scenario, a config file), when known
    line: int | None = None

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "detail": self.message}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    default_message = "gateway error"
    #: HTTP status the API answers with; the CLI always exits 2.
    status = 500
    #: short stable slug used in the problem ``type`` URI.
    slug = "gateway-error"

    def __init__(self, message: str | None = None, *, errors: list[FieldError] | None = None):
        self.message = message or self.default_message
        self.errors: list[FieldError] = list(errors or [])
        super().__init__(self.message)

    @property
    def title(self) -> str:
        return self.default_message[:1].upper() + self.default_message[1:]


class DomainError(GatewayError, ValueError):
    """A value breaks a domain rule (money, account, party)."""

    default_message = "invalid value"
    status = 422
    slug = "invalid-value"

    def __init__(self, message: str | None = None, *, pointer: str = "", **kw: Any):
        errors = kw.pop("errors", None) or [FieldError(pointer, message or self.default_message)]
        super().__init__(message, errors=errors)
        self.pointer = pointer


class MoneyError(DomainError):
    """An amount is not a valid amount of money in its currency."""

    default_message = "invalid amount"
    slug = "invalid-amount"


class CurrencyError(MoneyError):
    """A currency code is not an active ISO 4217 code."""

    default_message = "unknown currency"
    slug = "invalid-currency"


class AccountError(DomainError):
    """An account identifier (IBAN, BIC, routing number, wallet) is invalid."""

    default_message = "invalid account"
    slug = "invalid-account"


class IdentifierError(DomainError):
    """A reference or identifier (ISO 11649 creditor reference, LEI) fails its check digits."""

    default_message = "invalid identifier"
    slug = "invalid-identifier"


class MandateError(DomainError):
    """A SEPA direct debit mandate or its collection breaks a scheme rule."""

    default_message = "invalid mandate"
    slug = "invalid-mandate"


class MandateIdError(MandateError):
    """A mandate id is empty, longer than 35 characters, or outside the EPC character set."""

    default_message = "invalid mandate id"


class SignatureDateError(MandateError):
    """A mandate's signature date lies in the future (or after the collection)."""

    default_message = "invalid mandate signature date"


class SequenceTypeError(MandateError):
    """A sequence type is not one of FRST, RCUR, OOFF, FNAL."""

    default_message = "invalid sequence type"


class CreditorIdentifierError(IdentifierError):
    """A SEPA creditor identifier (CI, AT-02) fails its format or ISO 7064 MOD 97-10 check."""

    default_message = "invalid creditor identifier"


class CollectionDateError(MandateError):
    """A collection's due date is too early to reach the debtor bank in time (D-1 TARGET2 day)."""

    default_message = "collection due date too early"


class PreNotificationError(MandateError):
    """The debtor was pre-notified later than the agreed number of days before the due date."""

    default_message = "pre-notification too late"
