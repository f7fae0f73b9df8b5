"""The collection status table as data: every legal move applies; every other request is a duplicate,
stale or illegal, and is never applied."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.collection_status import (
    COLLECTION_TERMINAL,
    COLLECTION_TRANSITIONS,
    CollectionStatus,
    decide_collection,
)

C = CollectionStatus

LEGAL = [
    (C.RECEIVED, C.ACCEPTED),
    (C.RECEIVED, C.CANCELLED),
    (C.RECEIVED, C.REJECTED),
    (C.ACCEPTED, C.SUBMITTED),
    (C.ACCEPTED, C.COLLECTED),  # the partner answered with the outcome at once
    (C.SUBMITTED, C.COLLECTED),
    (C.SUBMITTED, C.REJECTED),
    (C.COLLECTED, C.CHARGED_BACK),
    (C.COLLECTED, C.RETURNED),
]
REFUSED = [
    (C.COLLECTED, C.COLLECTED, "duplicate"),
    (C.COLLECTED, C.SUBMITTED, "stale"),  # a late "pending" webhook
    (C.CHARGED_BACK, C.COLLECTED, "stale"),  # the capture report arriving after the chargeback
    (C.SUBMITTED, C.CHARGED_BACK, "illegal"),  # a chargeback needs the collection first (the applier implies it)
    (C.SUBMITTED, C.CANCELLED, "illegal"),  # at the partner: too late to cancel
    (C.CANCELLED, C.ACCEPTED, "stale"),  # the dispatcher lost the race with the cancel
    (C.REJECTED, C.COLLECTED, "illegal"),
]


@pytest.mark.parametrize(("current", "requested"), LEGAL)
def test_legal_moves_apply(current: CollectionStatus, requested: CollectionStatus) -> None:
    assert decide_collection(current, requested).applied


@pytest.mark.parametrize(("current", "requested", "why"), REFUSED)
def test_other_requests_are_recorded_not_applied(
    current: CollectionStatus, requested: CollectionStatus, why: str
) -> None:
    decision = decide_collection(current, requested)
    assert (decision.applied, decision.reason) == (False, why)


def test_the_table_is_total_and_only_its_moves_apply() -> None:
    for current, requested in itertools.product(CollectionStatus, repeat=2):
        assert decide_collection(current, requested).applied == (requested in COLLECTION_TRANSITIONS[current])
    assert {C.COLLECTED, C.REJECTED, C.FAILED, C.CANCELLED, C.RETURNED, C.CHARGED_BACK} == COLLECTION_TERMINAL
