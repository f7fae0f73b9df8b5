"""SEPA direct debit R-transactions: reason code → kind and collection status, and the refund windows."""

from __future__ import annotations

from datetime import date

import pytest

from gateway_adapters.iso20022_bank.reasons import (
    DIRECT_DEBIT_REASON_CODES,
    classify_r_transaction,
    refund_admissible,
    refund_deadline,
)

# code, settled?, kind, status
MAPPING = [
    # before settlement (pain.002 RJCT, or a camt.054 information entry): rejects and refusals
    ("AC01", False, "reject", "rejected"),
    ("AC04", False, "reject", "rejected"),
    ("AC06", False, "reject", "rejected"),
    ("AG01", False, "reject", "rejected"),
    ("AM04", False, "reject", "rejected"),
    ("MD01", False, "reject", "rejected"),
    ("MD07", False, "reject", "rejected"),
    ("FF01", False, "reject", "rejected"),
    ("MS03", False, "reject", "rejected"),
    ("RR01", False, "reject", "rejected"),
    ("RR02", False, "reject", "rejected"),
    ("RR03", False, "reject", "rejected"),
    ("RR04", False, "reject", "rejected"),
    ("MS02", False, "refusal", "rejected"),
    ("SL01", False, "refusal", "rejected"),
    # after settlement (camt.054 booked debit with RtrInf): returns, and the two refunds
    ("AC01", True, "return", "returned"),
    ("AC04", True, "return", "returned"),
    ("AC06", True, "return", "returned"),
    ("AG01", True, "return", "returned"),
    ("AM04", True, "return", "returned"),
    ("MD07", True, "return", "returned"),
    ("MS02", True, "return", "returned"),
    ("MS03", True, "return", "returned"),
    ("SL01", True, "return", "returned"),
    ("RR04", True, "return", "returned"),
    ("MD06", True, "refund", "returned"),
    ("MD01", True, "refund", "returned"),
]


@pytest.mark.parametrize(("code", "settled", "kind", "status"), MAPPING)
def test_reason_codes_map_to_kind_and_status(code: str, settled: bool, kind: str, status: str) -> None:
    r = classify_r_transaction(code, settled=settled)

    assert (r.kind, r.status, r.reason_code) == (kind, status, code)
    assert r.reason == DIRECT_DEBIT_REASON_CODES[code]


def test_refunds_know_whether_the_mandate_was_authorised() -> None:
    assert classify_r_transaction("MD06", settled=True).authorised is True
    assert classify_r_transaction("MD01", settled=True).authorised is False
    assert classify_r_transaction("AM04", settled=True).authorised is None


def test_the_banks_text_wins_and_unknown_codes_are_kept_not_guessed() -> None:
    assert classify_r_transaction("AM04", settled=True, text="Konto ungedeckt").reason == "Konto ungedeckt"
    unknown = classify_r_transaction("ZZ99", settled=True)
    assert (unknown.kind, unknown.reason_code, unknown.reason) == ("return", "ZZ99", "reason code ZZ99")
    assert classify_r_transaction(" md06 ", settled=True).reason_code == "MD06"
    assert classify_r_transaction("", settled=False).reason_code == "NARR"


@pytest.mark.parametrize(
    ("code", "settled", "claimed", "admissible"),
    [
        ("MD06", date(2026, 3, 2), date(2026, 4, 27), True),  # 8 weeks after the debit: last day
        ("MD06", date(2026, 3, 2), date(2026, 4, 28), False),
        ("MD01", date(2026, 3, 2), date(2027, 4, 2), True),  # 13 months: last day
        ("MD01", date(2026, 3, 2), date(2027, 4, 3), False),
        ("MD01", date(2026, 3, 2), date(2026, 5, 1), True),
        ("AM04", date(2026, 3, 2), date(2026, 3, 3), False),  # not a refund at all
    ],
)
def test_refund_claims_inside_and_outside_their_window(
    code: str, settled: date, claimed: date, admissible: bool
) -> None:
    assert refund_admissible(code, settled, claimed) is admissible


def test_refund_deadlines_by_code() -> None:
    assert refund_deadline("MD06", date(2026, 3, 2)) == date(2026, 4, 27)
    assert refund_deadline("MD01", date(2026, 3, 2)) == date(2027, 4, 2)
    assert refund_deadline("AC04", date(2026, 3, 2)) is None
