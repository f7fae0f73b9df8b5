"""The status state machine: one table; illegal and stale moves are never applied."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.status import TERMINAL, TRANSITIONS, Status, decide

S = Status

HAPPY_PATH = [S.RECEIVED, S.ACCEPTED, S.ROUTED, S.SUBMITTED, S.SETTLED]


def test_happy_path_applies_step_by_step() -> None:
    for current, nxt in itertools.pairwise(HAPPY_PATH):
        assert decide(current, nxt).applied


@pytest.mark.parametrize(
    ("current", "requested", "reason"),
    [
        (S.SUBMITTED, S.SUBMITTED, "duplicate"),
        (S.SETTLED, S.SUBMITTED, "stale"),
        (S.SETTLED, S.ROUTED, "stale"),
        (S.REJECTED, S.SETTLED, "illegal"),
        (S.CANCELLED, S.ROUTED, "stale"),
        (S.SUBMITTED, S.CANCELLED, "illegal"),
        (S.RECEIVED, S.SETTLED, "illegal"),
        (S.RETURNED, S.SETTLED, "stale"),
    ],
)
def test_disallowed_transitions_are_ignored_with_a_reason(current: Status, requested: Status, reason: str) -> None:
    decision = decide(current, requested)
    assert not decision.applied
    assert decision.reason == reason


def test_terminal_statuses_only_allow_return_after_settlement() -> None:
    assert {S.SETTLED, S.REJECTED, S.FAILED, S.RETURNED, S.CANCELLED} == TERMINAL
    for status in TERMINAL - {S.SETTLED}:
        assert TRANSITIONS[status] == frozenset()
    assert TRANSITIONS[S.SETTLED] == {S.RETURNED}


def test_partner_outcome_may_overtake_the_submit_response() -> None:
    # a callback can arrive before the synchronous answer is recorded
    assert decide(S.ROUTED, S.SETTLED).applied
    assert decide(S.ROUTED, S.REJECTED).applied
    assert decide(S.SETTLED, S.SUBMITTED).reason == "stale"


def test_cancel_is_only_possible_before_routing() -> None:
    allowed = {s for s in Status if decide(s, S.CANCELLED).applied}
    assert allowed == {S.RECEIVED, S.ACCEPTED, S.HELD}


def test_every_status_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_ids_are_ulid_shaped_and_sort_by_creation_time() -> None:
    import re
    import time

    from gateway.domain.ids import new_id

    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    first = new_id("ins")
    time.sleep(0.002)
    later = new_id("ins")
    assert re.fullmatch(r"ins_[0-9A-Z]{26}", first) and first < later
    stamp = 0
    for char in later[4:14]:  # the first ten digits are the milliseconds since the epoch
        stamp = stamp * 32 + alphabet.index(char)
    assert abs(stamp - time.time_ns() // 1_000_000) < 5_000
    assert len({new_id("ins") for _ in range(2000)}) == 2000
