"""Identifiers: one at a time or many at once, the same layout."""

from __future__ import annotations

import os
import re
import time

import pytest

from gateway.domain.ids import new_id, new_ids

ID_RE = re.compile(r"^ins_[0-9A-HJKMNP-TV-Z]{26}$")


def _ms(value: str) -> int:
    """The millisecond an id was made, read back from its first 10 Crockford digits (48 bits + 2 zero bits)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    number = 0
    for char in value.split("_", 1)[1][:10]:
        number = number * 32 + alphabet.index(char)
    return number


def test_many_ids_have_the_layout_of_one_and_are_all_different() -> None:
    before = time.time_ns() // 1_000_000
    many = new_ids("ins", 5000)
    one = new_id("ins")
    after = time.time_ns() // 1_000_000
    assert len(many) == len(set(many)) == 5000
    assert all(ID_RE.fullmatch(i) for i in [*many, one])
    assert before <= _ms(many[0]) == _ms(many[-1]) <= _ms(one) <= after
    assert max(many) < one or _ms(one) == _ms(many[0])  # later millisecond, later id
    assert new_ids("bat", 0) == []


def test_the_last_16_digits_are_the_80_random_bits_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    random = bytes(range(1, 31))  # three ids' 10 bytes each
    monkeypatch.setattr(os, "urandom", lambda n: random[:n])
    for k, value in enumerate(new_ids("ins", 3)):
        number = 0
        for char in value[-16:]:
            number = number * 32 + alphabet.index(char)
        assert number.to_bytes(10, "big") == random[10 * k : 10 * k + 10]
    assert new_id("ins")[-16:] == "041061050R3GG28A"  # the bytes 01 … 0a in base32 (RFC 4648), Crockford digits
