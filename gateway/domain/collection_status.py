"""The collection status state machine: one table, in one place (money the enterprise pulls in).

``received → accepted → submitted → collected``, with terminal ``rejected``,
``failed`` and ``cancelled``; a collected payment may later come back as
``returned`` (a direct debit R-transaction) or ``charged_back`` (a card
dispute). As for instructions (``gateway.domain.status``), a transition not in
the table is never applied: ``decide`` says why (duplicate, stale or illegal)
and the caller records it as an ignored event.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.domain.status import Decision, decide_in

__all__ = ["CANCELLABLE", "COLLECTION_TERMINAL", "COLLECTION_TRANSITIONS", "CollectionStatus", "decide_collection"]


class CollectionStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    COLLECTED = "collected"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETURNED = "returned"
    CHARGED_BACK = "charged_back"


C = CollectionStatus

#: Every legal move. A partner may report the outcome before the gateway has
#: recorded its own submission (a webhook faster than the HTTP answer), so
#: ``accepted`` may jump straight to a partner outcome.
COLLECTION_TRANSITIONS: dict[CollectionStatus, frozenset[CollectionStatus]] = {
    C.RECEIVED: frozenset({C.ACCEPTED, C.REJECTED, C.CANCELLED, C.FAILED}),
    C.ACCEPTED: frozenset({C.SUBMITTED, C.COLLECTED, C.REJECTED, C.FAILED}),
    C.SUBMITTED: frozenset({C.COLLECTED, C.REJECTED, C.FAILED}),
    C.COLLECTED: frozenset({C.RETURNED, C.CHARGED_BACK}),
    C.REJECTED: frozenset(),
    C.FAILED: frozenset(),
    C.CANCELLED: frozenset(),
    C.RETURNED: frozenset(),
    C.CHARGED_BACK: frozenset(),
}

COLLECTION_TERMINAL: frozenset[CollectionStatus] = frozenset(
    s for s, nxt in COLLECTION_TRANSITIONS.items() if not nxt
) | {C.COLLECTED}
"""Statuses a collection may rest in for good (collected can still come back later)."""

#: statuses a business unit may still cancel from: before the dispatcher has taken it (its
#: ``received → accepted`` and a cancellation exclude each other under the row lock)
CANCELLABLE: frozenset[CollectionStatus] = frozenset({C.RECEIVED})

#: progress along the happy path; tells "stale" from "illegal"
_RANK: dict[CollectionStatus, int] = {
    C.RECEIVED: 0,
    C.ACCEPTED: 1,
    C.SUBMITTED: 2,
    C.COLLECTED: 3,
    C.REJECTED: 3,
    C.FAILED: 3,
    C.CANCELLED: 3,
    C.RETURNED: 4,
    C.CHARGED_BACK: 4,
}


def decide_collection(current: CollectionStatus, requested: CollectionStatus) -> Decision:
    """Decide whether ``current → requested`` is applied; never raises."""
    return decide_in(COLLECTION_TRANSITIONS, _RANK, current, requested)
