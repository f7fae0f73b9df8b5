"""What a report is: a period, tables and charts, and the registry of report definitions.

A report definition is a name, a title and an async ``build(engine, period, now, context)`` that reads
the store and returns a ``Report``. Adding a report is one module that calls ``register``
(the built-in ones are in ``gateway.reports.builtin``). Amounts are Decimal strings in the
currency's minor units, never floats.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import ReconciliationSettings
from gateway.domain.rebates import Program
from gateway.errors import ConfigError

__all__ = [
    "NAME_RE",
    "PERIOD_RE",
    "REGISTRY",
    "Chart",
    "Context",
    "Definition",
    "Period",
    "Report",
    "Section",
    "parse_period",
    "percentile",
    "period_containing",
    "register",
]

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
PERIOD_RE = re.compile(r"^\d{4}-(?:(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?|Q[1-4])$")

Cell = str | int | None


@dataclass(frozen=True)
class Period:
    """A day (``2026-12-05``), a month (``2026-12``) or a quarter (``2026-Q4``): [start, end) in UTC."""

    text: str
    start: datetime
    end: datetime

    def days(self) -> list[date]:
        out, day = [], self.start.date()
        while day < self.end.date():
            out.append(day)
            day += timedelta(days=1)
        return out


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def parse_period(text: str) -> Period:
    """``2026-12-05`` | ``2026-12`` | ``2026-Q4``; anything else is a ``ConfigError`` saying what to write."""
    if not PERIOD_RE.fullmatch(text):
        raise ConfigError(f"period {text!r}: write a day (2026-12-05), a month (2026-12) or a quarter (2026-Q4)")
    year = int(text[:4])
    if text[5] == "Q":
        first = (int(text[6]) - 1) * 3 + 1
        return Period(text, _month_start(year, first), _month_start(year, first + 3))
    if len(text) == 7:
        month = int(text[5:7])
        return Period(text, _month_start(year, month), _month_start(year, month + 1))
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"period {text!r} is not a calendar day") from None
    return Period(text, day, day + timedelta(days=1))


def period_containing(kind: str, instant: datetime) -> str:
    """The ``day`` | ``month`` | ``quarter`` period text that holds ``instant`` (UTC)."""
    at = instant.astimezone(UTC)
    if kind == "day":
        return at.strftime("%Y-%m-%d")
    if kind == "month":
        return at.strftime("%Y-%m")
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


@dataclass(frozen=True)
class Section:
    """One table of a report: column names and rows of strings (Decimal amounts as text) and integers."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "columns": list(self.columns),
            "rows": [dict(zip(self.columns, row, strict=True)) for row in self.rows],
        }


@dataclass(frozen=True)
class Chart:
    """A bar chart drawn on the server: one bar per label; values are Decimals or integers."""

    title: str
    labels: list[str]
    values: list[Decimal | int]
    unit: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "unit": self.unit,
            "bars": [{"label": k, "value": str(v)} for k, v in zip(self.labels, self.values, strict=True)],
        }


@dataclass
class Report:
    """A built report: what it is over, its tables and its charts."""

    name: str
    title: str
    period: Period
    generated_at: datetime
    sections: list[Section] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.name}.{self.period.text}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title,
            "period": self.period.text,
            "from": self.period.start.isoformat(),
            "to": self.period.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "notes": list(self.notes),
            "sections": [s.as_dict() for s in self.sections],
            "charts": [c.as_dict() for c in self.charts],
        }


@dataclass(frozen=True)
class Context:
    """What a report may read besides the connection."""

    reconciliation: ReconciliationSettings
    rebates: Mapping[str, Program] = field(default_factory=dict)  # the rebate programs (the ``rebates`` report)


Builder = Callable[[AsyncEngine, Period, datetime, Context], Awaitable[Report]]


@dataclass(frozen=True)
class Definition:
    name: str
    title: str
    build: Builder


#: name → definition; ``register`` adds one
REGISTRY: dict[str, Definition] = {}


def register(name: str, title: str) -> Callable[[Builder], Builder]:
    """Decorate an async builder to make it a report called ``name``."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"report name {name!r} must match {NAME_RE.pattern}")

    def add(build: Builder) -> Builder:
        REGISTRY[name] = Definition(name, title, build)
        return build

    return add
