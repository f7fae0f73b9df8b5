"""ACH business days and cut-off windows: weekends, bank holidays, cut-off times in the ODFI's zone.

Holidays are either an explicit list of dates or the Federal Reserve's rule set
(``federal_reserve``): fixed-date holidays falling on a Sunday are observed on
the Monday; on a Saturday the Fed stays open the Friday before, so nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["CutoffCalendar", "federal_reserve_holidays"]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def federal_reserve_holidays(year: int) -> set[date]:
    """The days the Federal Reserve (and so FedACH) is closed in ``year``."""
    mon, thu = 0, 3
    fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
    days = {d + timedelta(days=1) if d.weekday() == 6 else d for d in fixed}
    days |= {
        _nth_weekday(year, 1, mon, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, mon, 3),  # Washington's Birthday
        _last_weekday(year, 5, mon),  # Memorial Day
        _nth_weekday(year, 9, mon, 1),  # Labor Day
        _nth_weekday(year, 10, mon, 2),  # Columbus Day
        _nth_weekday(year, 11, thu, 4),  # Thanksgiving Day
    }
    return days


@dataclass(frozen=True)
class CutoffCalendar:
    """Cut-off times on business days, in one time zone."""

    cutoffs: Sequence[time]
    timezone: ZoneInfo
    #: explicit holidays (always closed)
    holidays: frozenset[date] = frozenset()
    #: add the Federal Reserve's holidays to ``holidays``
    federal_reserve: bool = True
    _cache: dict[int, set[date]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, cutoffs: Iterable[str], timezone: str, holidays: str | Iterable[str]) -> CutoffCalendar:
        times = sorted(time.fromisoformat(c) for c in cutoffs)
        if isinstance(holidays, str):
            return cls(times, ZoneInfo(timezone), frozenset(), federal_reserve=holidays == "federal_reserve")
        return cls(times, ZoneInfo(timezone), frozenset(date.fromisoformat(d) for d in holidays), federal_reserve=False)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5 or day in self.holidays:
            return False
        if self.federal_reserve:
            if day.year not in self._cache:
                self._cache[day.year] = federal_reserve_holidays(day.year)
            return day not in self._cache[day.year]
        return True

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def cutoffs_on(self, day: date) -> list[datetime]:
        if not self.is_business_day(day):
            return []
        return [datetime.combine(day, t, tzinfo=self.timezone) for t in self.cutoffs]

    def next_cutoff(self, after: datetime) -> datetime:
        """The first cut-off strictly after ``after`` (an aware datetime), skipping closed days."""
        local = after.astimezone(self.timezone)
        day = local.date()
        for _ in range(400):
            for cutoff in self.cutoffs_on(day):
                if cutoff > local:
                    return cutoff
            day += timedelta(days=1)
        raise ValueError("no business day within 400 days: check the holiday calendar")

    def last_cutoff(self, at: datetime) -> datetime | None:
        """The latest cut-off at or before ``at`` within the last 14 days, if any."""
        local = at.astimezone(self.timezone)
        day = local.date()
        for _ in range(14):
            passed = [c for c in self.cutoffs_on(day) if c <= local]
            if passed:
                return passed[-1]
            day -= timedelta(days=1)
        return None

    def effective_date(self, cutoff: datetime) -> date:
        """The effective entry date of a file sent at ``cutoff``: the next business day (no same-day ACH)."""
        return self.next_business_day(cutoff.astimezone(self.timezone).date())
