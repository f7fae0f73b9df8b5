"""Money: an immutable ``Decimal`` amount in an ISO 4217 currency.

Minor units come from the ``iso4217`` package's data, never a hand-typed table.
Floats are refused outright; so are mixed-currency arithmetic and amounts with
more decimals than the currency has.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import iso4217

from gateway.domain.errors import CurrencyError, MoneyError

__all__ = [
    "Money",
    "amount_text",
    "minor_units",
    "validate_currency",
]

_AMOUNT_RE = re.compile(r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,6})?$")


@lru_cache(maxsize=512)
def _currency(code: str) -> iso4217.Currency:
    try:
        currency = iso4217.Currency(code)
    except (ValueError, KeyError) as exc:
        raise CurrencyError(f"{code!r} is not an ISO 4217 currency code") from exc
    if currency.exponent is None:
        # Funds and metals (XAU, XDR, ...) have no minor units: not payable.
        raise CurrencyError(f"{code!r} is not a payable currency")
    return currency


def validate_currency(code: str) -> str:
    """Return ``code`` if it is an active, payable ISO 4217 currency; raise otherwise."""
    if not isinstance(code, str) or len(code) != 3 or not code.isupper():
        raise CurrencyError(f"{code!r} is not an ISO 4217 currency code (three capitals)")
    _currency(code)
    return code


def minor_units(code: str) -> int:
    """Number of decimals the currency allows (EUR 2, JPY 0, BHD 3)."""
    return _exponent(validate_currency(code))


@lru_cache(maxsize=512)
def _exponent(code: str) -> int:
    return int(_currency(code).exponent)


class Money:
    """An amount of money: ``Decimal`` + currency, immutable, never float."""

    __slots__ = ("_amount", "_currency")

    _amount: Decimal
    _currency: str

    def __init__(self, amount: Decimal | str | int, currency: str):
        if isinstance(amount, float | bool):
            raise MoneyError(f"amount must be a decimal string or Decimal, not {type(amount).__name__}")
        exponent = minor_units(currency)
        if isinstance(amount, str):
            if not _AMOUNT_RE.fullmatch(amount):
                raise MoneyError(f"{amount!r} is not a decimal amount like '1250.00'")
            value = Decimal(amount)
        elif isinstance(amount, int):
            value = Decimal(amount)
        elif isinstance(amount, Decimal):
            if not amount.is_finite():
                raise MoneyError("amount must be finite")
            value = amount
        else:
            raise MoneyError(f"amount must be a decimal string or Decimal, not {type(amount).__name__}")
        try:
            quantised = value.quantize(Decimal(1).scaleb(-exponent))
        except InvalidOperation as exc:
            raise MoneyError(f"{amount} is too large") from exc
        if quantised != value:
            raise MoneyError(f"{currency} allows {exponent} decimals, {amount} has more")
        object.__setattr__(self, "_amount", quantised)
        object.__setattr__(self, "_currency", currency)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Money is immutable")

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        """Build from an integer count of minor units (cents)."""
        return cls(Decimal(minor).scaleb(-minor_units(currency)), currency)

    @property
    def amount(self) -> Decimal:
        return self._amount

    @property
    def currency(self) -> str:
        return self._currency

    @property
    def minor(self) -> int:
        """The amount as an integer count of minor units."""
        return int(self._amount.scaleb(minor_units(self._currency)))

    def __str__(self) -> str:
        return f"{self._amount} {self._currency}"

    def __repr__(self) -> str:
        return f"Money('{self._amount}', '{self._currency}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self._currency == other._currency and self._amount == other._amount

    def __hash__(self) -> int:
        return hash((self._amount, self._currency))

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other._currency != self._currency:
            raise MoneyError(f"cannot combine {self._currency} with {other._currency}")
        return other

    def __add__(self, other: object) -> Money:
        return Money(self._amount + self._same(other)._amount, self._currency)

    def __sub__(self, other: object) -> Money:
        return Money(self._amount - self._same(other)._amount, self._currency)

    def __lt__(self, other: object) -> bool:
        return self._amount < self._same(other)._amount

    def __le__(self, other: object) -> bool:
        return self._amount <= self._same(other)._amount

    def __gt__(self, other: object) -> bool:
        return self._amount > self._same(other)._amount

    def __ge__(self, other: object) -> bool:
        return self._amount >= self._same(other)._amount

    def __bool__(self) -> bool:
        return bool(self._amount)


def amount_text(minor: int, currency: str) -> str:
    """Minor units as a decimal amount in the currency's exponent (``12345, EUR`` → ``"123.45"``; signs kept)."""
    return str(Decimal(minor).scaleb(-minor_units(currency)))
