"""Money: Decimal + ISO 4217 currency with its minor units; never float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain.money import Money, minor_units
from gateway.errors import CurrencyError, MoneyError

# Known-good values: (amount, currency, minor units as int)
GOOD = [
    ("1250.00", "EUR", 125000),
    ("1250", "EUR", 125000),
    ("0.01", "USD", 1),
    ("5", "JPY", 5),
    ("12.345", "BHD", 12345),
    ("999999999999.99", "EUR", 99999999999999),
]

# Known-bad values: (amount, currency, error class)
BAD = [
    (1.5, "EUR", MoneyError),
    (True, "EUR", MoneyError),
    ("1.234", "EUR", MoneyError),
    ("1.5", "JPY", MoneyError),
    ("1,50", "EUR", MoneyError),
    ("-1.00", "EUR", MoneyError),
    ("01.00", "EUR", MoneyError),
    ("1e3", "EUR", MoneyError),
    ("NaN", "EUR", MoneyError),
    ("1.00", "EUX", CurrencyError),
    ("1.00", "eur", CurrencyError),
    ("1.00", "XAU", CurrencyError),
]


@pytest.mark.parametrize(("amount", "currency", "minor"), GOOD)
def test_valid_amounts_keep_their_value_in_minor_units(amount: str, currency: str, minor: int) -> None:
    money = Money(amount, currency)
    assert money.minor == minor
    assert Money.from_minor(minor, currency) == money
    assert money.amount.as_tuple().exponent == -minor_units(currency)


@pytest.mark.parametrize(("amount", "currency", "error"), BAD)
def test_invalid_amounts_are_refused(amount: object, currency: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Money(amount, currency)  # type: ignore[arg-type]


def test_minor_units_come_from_iso4217_data() -> None:
    assert (minor_units("EUR"), minor_units("JPY"), minor_units("BHD"), minor_units("CLF")) == (2, 0, 3, 4)


def test_arithmetic_refuses_mixed_currencies_and_floats() -> None:
    assert Money("1.10", "EUR") + Money("2.20", "EUR") == Money("3.30", "EUR")
    assert Money("5.00", "EUR") - Money("2.50", "EUR") == Money("2.50", "EUR")
    with pytest.raises(MoneyError):
        Money("1.00", "EUR") + Money("1.00", "USD")
    with pytest.raises(TypeError):
        Money("1.00", "EUR") + 1.0  # type: ignore[operator]
    assert Money("1.00", "EUR") < Money("1.01", "EUR")


def test_money_is_immutable_and_hashable() -> None:
    money = Money(Decimal("10.50"), "EUR")
    with pytest.raises(AttributeError):
        money._amount = Decimal(0)  # type: ignore[misc]
    assert {money, Money("10.5", "EUR")} == {money}
    assert repr(money) == "Money('10.50', 'EUR')"
