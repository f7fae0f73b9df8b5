"""The ``rebates`` report: one statement per distributor for a rebate period (docs/credit-and-rebates.md).

Over a month (``2026-11``) or a quarter (``2026-Q4``): per distributor, a table of its
rows (program, currency, volume, rate reached, accrued, final, true-up, settlement,
state, payout reference) and a bar chart of its volume against the program's tier
thresholds. The CSV and HTML renderers of the reports package write it; the final
amount of a row not settled yet is what the settlement would post now.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.money import Money
from gateway.finance.rebates import lines
from gateway.reports.model import Chart, Context, Period, Report, Section, register

__all__ = ["rebates"]

_COLUMNS = (
    "program",
    "currency",
    "volume",
    "rate",
    "accrued",
    "final",
    "true_up",
    "settlement",
    "state",
    "reference",
    "instruction_id",
)


@register("rebates", "Rebate statements")
async def rebates(engine: AsyncEngine, period: Period, now: datetime, context: Context) -> Report:
    """A statement per distributor: its rebate rows for the period, and its volume against the tiers."""
    report = Report("rebates", "Rebate statements", period, now)
    if len(period.text) == 10:
        report.notes.append("Rebate periods are months (2026-11) or quarters (2026-Q4); a day has no statements.")
        return report
    views = await lines(engine, context.rebates, period.text)
    by_distributor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in views:
        by_distributor[v["distributor"]].append(v)
    report.notes.append(
        "One statement per distributor. Rows not settled yet show the final amount and true-up the settlement "
        "would post now; settled rows show what it posted."
    )
    for distributor, rows in sorted(by_distributor.items()):
        report.sections.append(
            Section(
                f"statement-{distributor}",
                f"Rebate statement: {distributor}",
                _COLUMNS,
                [
                    (
                        v["program"],
                        v["currency"],
                        v["volume"],
                        v["rate"] or "",
                        v["accrued"],
                        v["final"] or "",
                        v["true_up"] or "",
                        v["settlement"] or "",
                        "settled" if v["settled"] else "open",
                        v["reference"] if v["settlement"] == "payout" else "",
                        v["instruction_id"] or "",
                    )
                    for v in rows
                ],
            )
        )
        for v in rows:
            program = context.rebates.get(v["program"])
            if program is None:
                continue
            cur = v["currency"]
            labels = ["volume", *(f"tier {t.rate * 100:f}% from" for t in program.tiers)]
            values: list[Decimal | int] = [
                Decimal(v["volume"]),
                *(Money.from_minor(program.to_minor(t.start, cur), cur).amount for t in program.tiers),
            ]
            report.charts.append(Chart(f"{distributor}: volume against the tiers of {program.id}", labels, values, cur))
    return report
