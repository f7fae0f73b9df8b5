"""Money-in values: ISO 11649 references, remittance text, allocation (known-good and known-bad values as tables)."""

from __future__ import annotations

import pytest

from gateway.domain.receivables import (
    Allocation,
    OpenItem,
    ReceivableStatus,
    StructuredReferenceError,
    allocate,
    receivable_status,
    references_in,
    structured_reference,
    tokens_of,
)

GOOD = [
    ("RF18 5390 0754 7034", "RF18539007547034"),
    ("rf712348231", "RF712348231"),
    ("RF18000000000539007547034", None),
]
BAD = ["RF19539007547034", "RF18", "INV-1", "RF18 5390 0754 703X"]


@pytest.mark.parametrize(("given", "compact"), GOOD)
def test_valid_references_are_compacted(given: str, compact: str | None) -> None:
    assert structured_reference(given) == (compact or given.replace(" ", "").upper())


@pytest.mark.parametrize("given", BAD)
def test_invalid_references_are_refused_with_one_line(given: str) -> None:
    with pytest.raises(StructuredReferenceError) as caught:
        structured_reference(given)
    assert "\n" not in str(caught.value) and "ISO 11649" in str(caught.value)


def test_references_and_invoice_numbers_are_found_in_remittance_text() -> None:
    text = "Pay INV-1, inv-2 and RF18 5390 0754 7034; not RF19539007547034."
    assert references_in(text) == ["RF18539007547034"]
    assert {"INV-1", "INV-2", "RF18"} <= set(tokens_of(text))
    assert tokens_of(None) == [] and references_in(None) == []


def test_allocation_pays_the_earliest_due_first_and_returns_the_excess() -> None:
    items = [OpenItem("rcv_b", 300, "2026-12-31"), OpenItem("rcv_a", 200, "2026-11-30")]
    assert allocate(250, items) == ([Allocation("rcv_a", 200), Allocation("rcv_b", 50)], 0)
    assert allocate(600, items) == ([Allocation("rcv_a", 200), Allocation("rcv_b", 300)], 100)
    assert allocate(0, items) == ([], 0)


@pytest.mark.parametrize(
    ("amount", "paid", "status"),
    [(100, 0, ReceivableStatus.OPEN), (100, 1, ReceivableStatus.PARTIALLY_PAID), (100, 100, ReceivableStatus.PAID)],
)
def test_a_receivable_status_follows_what_was_paid(amount: int, paid: int, status: ReceivableStatus) -> None:
    assert receivable_status(amount, paid) is status
