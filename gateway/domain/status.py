"""The instruction status state machine: one table, in one place.

``received → accepted → (held →) routed → submitted → settled``, with terminal
``rejected``, ``failed``, ``returned`` and ``cancelled``. A transition not in the
table is never applied: ``decide`` says why (duplicate, stale or illegal), and
the caller records that as an ignored event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

__all__ = ["TERMINAL", "TRANSITIONS", "Decision", "Status", "decide", "decide_in"]

_T = TypeVar("_T")


class Status(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    HELD = "held"
    ROUTED = "routed"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    REJECTED = "rejected"
    FAILED = "failed"
    RETURNED = "returned"
    CANCELLED = "cancelled"


S = Status

#: Every legal move. A partner may report a final status before the gateway
#: has recorded its own submission (callback faster than the HTTP response),
#: so ``routed`` may jump straight to a partner outcome. ``routed → accepted``
#: is failover: the partner confirmed it did not execute the payment and asked
#: for another rail, so it goes back to routing (only the dispatcher does this).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.ACCEPTED: frozenset({S.HELD, S.ROUTED, S.REJECTED, S.CANCELLED, S.FAILED}),
    S.HELD: frozenset({S.ACCEPTED, S.ROUTED, S.REJECTED, S.CANCELLED}),
    S.ROUTED: frozenset({S.ACCEPTED, S.SUBMITTED, S.SETTLED, S.REJECTED, S.FAILED}),
    S.SUBMITTED: frozenset({S.SETTLED, S.REJECTED, S.FAILED}),
    S.SETTLED: frozenset({S.RETURNED}),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
    S.RETURNED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[Status] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt) | {S.SETTLED}
"""Statuses a payment may rest in for good (settled can still be returned later)."""

#: Progress order along the happy path; used to tell "stale" from "illegal".
_RANK: dict[Status, int] = {
    S.RECEIVED: 0,
    S.ACCEPTED: 1,
    S.HELD: 2,
    S.ROUTED: 3,
    S.SUBMITTED: 4,
    S.SETTLED: 5,
    S.REJECTED: 5,
    S.FAILED: 5,
    S.CANCELLED: 5,
    S.RETURNED: 6,
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a requested transition is applied, and if not, why."""

    applied: bool
    reason: str  # "applied" | "duplicate" | "stale" | "illegal"

    def __bool__(self) -> bool:
        return self.applied


_APPLIED = Decision(True, "applied")


def decide_in(transitions: Mapping[_T, frozenset[_T]], rank: Mapping[_T, int], current: _T, requested: _T) -> Decision:
    """Decide ``current → requested`` in one state machine (its table and happy-path ranks); never raises."""
    if requested in transitions[current]:
        return _APPLIED
    if requested == current:
        return Decision(False, "duplicate")
    if rank[requested] < rank[current]:
        return Decision(False, "stale")
    return Decision(False, "illegal")


def decide(current: Status, requested: Status) -> Decision:
    """Decide whether ``current → requested`` is applied; never raises."""
    return decide_in(TRANSITIONS, _RANK, current, requested)
