"""The gateway's one injectable clock (tests and demos move time instead of sleeping)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "ManualClock", "OffsetClock", "system_clock"]

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class OffsetClock:
    """Real time plus an offset that only grows: ``advance`` jumps forward (demos, QA runs).

    Unlike ``ManualClock`` it keeps ticking, so leases, backoffs and timeouts
    behave as in production between jumps.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=max(0.0, seconds))
        return self()

    def advance_to(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (never backwards)."""
        return self.advance((moment - self()).total_seconds())
