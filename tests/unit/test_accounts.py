"""Accounts: IBAN/BIC via schwifty, US account + ABA routing number, wallets."""

from __future__ import annotations

import pytest

from gateway.domain.accounts import (
    IbanAccount,
    UsAccount,
    WalletAccount,
    aba_check_digit_ok,
    mask,
    parse_account,
    parse_party,
)
from gateway.errors import AccountError

# Routing numbers with a correct ABA check digit (published Federal Reserve / test numbers).
GOOD_ROUTING = ["011000015", "021000021", "231380104", "122105278"]
BAD_ROUTING = ["011000016", "231380105", "12345678", "12345678a", ""]


@pytest.mark.parametrize("routing", GOOD_ROUTING)
def test_aba_check_digit_accepts_valid_routing_numbers(routing: str) -> None:
    assert aba_check_digit_ok(routing)


@pytest.mark.parametrize("routing", BAD_ROUTING)
def test_aba_check_digit_rejects_invalid_routing_numbers(routing: str) -> None:
    assert not aba_check_digit_ok(routing)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"iban": "DE89 3704 0044 0532 0130 00"}, IbanAccount("DE89370400440532013000")),
        ({"number": "000123456789", "routing": "021000021"}, UsAccount("000123456789", "021000021")),
        ({"wallet": "wal_7Hq2"}, WalletAccount("wal_7Hq2")),
    ],
)
def test_accounts_parse_to_their_kind(data: dict[str, str], expected: object) -> None:
    assert parse_account(data, "/creditor/account") == expected


@pytest.mark.parametrize(
    ("data", "pointer"),
    [
        ({"iban": "DE89370400440532013001"}, "/x/iban"),
        ({"iban": "XX89370400440532013000"}, "/x/iban"),
        ({"number": "123", "routing": "011000016"}, "/x/routing"),
        ({"number": "12 34", "routing": "011000015"}, "/x/number"),
        ({"wallet": "a"}, "/x/wallet"),
    ],
)
def test_invalid_accounts_name_the_failing_field(data: dict[str, str], pointer: str) -> None:
    with pytest.raises(AccountError) as info:
        parse_account(data, "/x")
    assert info.value.pointer == pointer


def test_party_with_bad_bic_names_the_agent_field() -> None:
    with pytest.raises(AccountError) as info:
        parse_party(
            {"name": "A", "account": {"iban": "DE89370400440532013000"}, "agent": {"bic": "COBADEF"}}, "/debtor"
        )
    assert info.value.pointer == "/debtor/agent/bic"


def test_masking_keeps_only_the_last_four_characters() -> None:
    assert mask("DE89370400440532013000") == "******************3000"
    assert IbanAccount("DE89370400440532013000").masked() == {"iban": "DE89**************3000"}
    assert UsAccount("000123456789", "021000021").masked()["number"] == "********6789"
    assert mask("abc") == "***"
