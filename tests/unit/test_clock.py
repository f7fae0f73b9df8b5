"""Clocks: the gateway's time is injectable, and can jump forward without stopping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.domain.clock import ManualClock, OffsetClock


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    assert clock() == clock()
    assert clock.advance(90) == datetime(2026, 11, 26, 9, 1, 30, tzinfo=UTC)


def test_offset_clock_keeps_ticking_and_jumps_forward_never_back() -> None:
    clock = OffsetClock()
    start = clock()
    assert abs(start - datetime.now(UTC)) < timedelta(seconds=1)
    target = start + timedelta(hours=5)
    assert clock.advance_to(target) >= target
    assert clock() >= target
    assert clock.advance_to(start) >= target  # never backwards
    later = clock()
    assert clock() >= later
