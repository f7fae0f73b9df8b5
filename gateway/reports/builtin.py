"""The built-in reports: settlement summary, risk, reconciliation, partner service levels.

Each reads the store over one period and returns tables and charts. Money is summed in
integer minor units per currency and shown as Decimal text (``amount_text``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.money import amount_text
from gateway.recon.breaks import BREAK_KINDS, OPEN_STATES
from gateway.reports.model import Chart, Context, Period, Report, Section, percentile, register
from gateway.store.tables import (
    business_units,
    holds,
    instruction_events,
    instructions,
    outbox,
    recon_breaks,
    recon_match_lines,
    recon_matches,
    risk_alerts,
    statement_lines,
    statements,
)

__all__ = ["AGE_BUCKETS", "OUTCOME_STATUSES", "partners", "reconciliation", "risk", "settlement"]

#: the statuses a settlement summary counts and sums separately; the rest are "in_flight"
OUTCOME_STATUSES = ("settled", "rejected", "failed", "returned", "cancelled")
#: age buckets of open reconciliation breaks, in days (upper bound inclusive; None: older)
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (("0-1", 1), ("2-7", 7), ("8-30", 30), (">30", None))


def _seconds(values: list[float], p: float) -> int | None:
    found = percentile(values, p)
    return None if found is None else round(found)


def _pct(part: int, whole: int) -> str:
    hundredths = (part * 10000 + whole // 2) // whole
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _first_status_at(status: str) -> Any:
    """Per instruction, when it first reached ``status`` (an applied event)."""
    return (
        select(
            instruction_events.c.instruction_id,
            func.min(instruction_events.c.occurred_at).label("at"),
        )
        .where(instruction_events.c.status == status, instruction_events.c.applied.is_(True))
        .group_by(instruction_events.c.instruction_id)
        .subquery()
    )


@register("settlement", "Settlement summary")
async def settlement(engine: AsyncEngine, period: Period, now: datetime, context: Context) -> Report:
    """Per business unit, partner, currency and day (of intake): counts and amounts by status, time to settle."""
    settled = _first_status_at("settled")
    query = (
        select(
            business_units.c.name.label("business_unit"),
            instructions.c.adapter,
            instructions.c.currency,
            instructions.c.status,
            instructions.c.amount_minor,
            instructions.c.created_at,
            settled.c.at.label("settled_at"),
        )
        .select_from(
            instructions.join(business_units, business_units.c.id == instructions.c.business_unit_id).outerjoin(
                settled, settled.c.instruction_id == instructions.c.id
            )
        )
        .where(instructions.c.created_at >= period.start, instructions.c.created_at < period.end)
    )
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    per_day: Counter[str] = Counter()
    all_times: list[float] = []
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            day = row.created_at.date().isoformat()
            key = (row.business_unit, row.adapter or "(unrouted)", row.currency, day)
            group = groups.setdefault(key, {"count": 0, "counts": Counter(), "minor": Counter(), "times": []})
            status = row.status if row.status in OUTCOME_STATUSES else "in_flight"
            group["count"] += 1
            group["counts"][status] += 1
            group["minor"][status] += row.amount_minor
            if row.settled_at is not None:
                seconds = (row.settled_at - row.created_at).total_seconds()
                group["times"].append(seconds)
                all_times.append(seconds)
            per_day[day] += 1
    columns = ["business_unit", "partner", "currency", "day", "count"]
    for status in (*OUTCOME_STATUSES, "in_flight"):
        columns += [status, f"{status}_amount"]
    columns += ["settle_p50_s", "settle_p90_s", "settle_p99_s"]
    rows = []
    for key in sorted(groups):
        group = groups[key]
        cells: list[str | int | None] = [*key, group["count"]]
        for status in (*OUTCOME_STATUSES, "in_flight"):
            cells += [group["counts"][status], amount_text(group["minor"][status], key[2])]
        times = sorted(group["times"])
        cells += [_seconds(times, 50), _seconds(times, 90), _seconds(times, 99)]
        rows.append(tuple(cells))
    all_times.sort()
    days = [d.isoformat() for d in period.days()]
    report = Report("settlement", "Settlement summary", period, now)
    report.sections.append(
        Section("summary", "Payments by business unit, partner, currency and day", tuple(columns), rows)
    )
    report.charts.append(Chart("Payments received per day", days, [per_day[d] for d in days], "payments"))
    labels = ["p50", "p90", "p99"]
    report.charts.append(
        Chart("Time to settle (seconds)", labels, [_seconds(all_times, p) or 0 for p in (50, 90, 99)], "s")
    )
    return report


@register("risk", "Risk: holds, decisions and alerts")
async def risk(engine: AsyncEngine, period: Period, now: datetime, context: Context) -> Report:
    """Per business unit: payments screened, alerts by outcome and their rate, holds placed and decided."""
    in_period = and_(instructions.c.created_at >= period.start, instructions.c.created_at < period.end)
    async with engine.connect() as conn:
        volume = dict(
            (
                await conn.execute(
                    select(business_units.c.name, func.count())
                    .select_from(
                        instructions.join(business_units, business_units.c.id == instructions.c.business_unit_id)
                    )
                    .where(in_period)
                    .group_by(business_units.c.name)
                )
            ).all()
        )
        alert_rows = (
            await conn.execute(
                select(business_units.c.name, risk_alerts.c.outcome, func.count())
                .select_from(risk_alerts.join(business_units, business_units.c.id == risk_alerts.c.business_unit_id))
                .where(risk_alerts.c.created_at >= period.start, risk_alerts.c.created_at < period.end)
                .group_by(business_units.c.name, risk_alerts.c.outcome)
            )
        ).all()
        hold_rows = (
            await conn.execute(
                select(business_units.c.name, holds.c.reason_code, holds.c.decision, func.count())
                .select_from(holds.join(business_units, business_units.c.id == holds.c.business_unit_id))
                .where(holds.c.held_at >= period.start, holds.c.held_at < period.end)
                .group_by(business_units.c.name, holds.c.reason_code, holds.c.decision)
            )
        ).all()
    alerts: dict[str, Counter[str]] = defaultdict(Counter)
    for unit, outcome, count in alert_rows:
        alerts[unit][outcome] += count
    outcomes = ("flag", "hold", "reject", "anomaly")
    units = sorted(set(volume) | set(alerts))
    rows = []
    for unit in units:
        screened = volume.get(unit, 0)
        payment_alerts = sum(alerts[unit][o] for o in ("flag", "hold", "reject"))
        rows.append(
            (unit, screened, *(alerts[unit][o] for o in outcomes), _pct(payment_alerts, screened) if screened else "")
        )
    hold_table = [
        (unit, reason, decision or "pending", count) for unit, reason, decision, count in sorted(hold_rows, key=str)
    ]
    report = Report("risk", "Risk: holds, decisions and alerts", period, now)
    report.sections.append(
        Section("alerts", "Alerts by business unit", ("business_unit", "payments", *outcomes, "alert_rate_pct"), rows)
    )
    report.sections.append(
        Section(
            "holds",
            "Holds placed in the period by reason and decision",
            ("business_unit", "reason", "decision", "holds"),
            hold_table,
        )
    )
    totals = Counter[str]()
    for unit in units:
        totals.update(alerts[unit])
    report.charts.append(Chart("Alerts by outcome", list(outcomes), [totals[o] for o in outcomes], "alerts"))
    decisions = Counter[str]()
    for _, _, decision, count in hold_table:
        decisions[str(decision)] += count
    names = ["pending", "approved", "rejected", "expired", "cancelled"]
    report.charts.append(Chart("Hold decisions", names, [decisions[n] for n in names], "holds"))
    return report


def _bucket(age: int | None) -> str:
    for name, upper in AGE_BUCKETS:
        if upper is None or (age or 0) <= upper:
            return name
    return AGE_BUCKETS[-1][0]


@register("reconciliation", "Reconciliation: matched share and open breaks")
async def reconciliation(engine: AsyncEngine, period: Period, now: datetime, context: Context) -> Report:
    """Statement lines imported in the period and how many are matched; every open break by kind and age."""
    async with engine.connect() as conn:
        lines = (
            await conn.execute(
                select(statements.c.source, statements.c.currency, recon_matches.c.status, func.count())
                .select_from(
                    statement_lines.join(statements, statements.c.id == statement_lines.c.statement_pk)
                    .outerjoin(
                        recon_match_lines,
                        and_(
                            recon_match_lines.c.statement_pk == statement_lines.c.statement_pk,
                            recon_match_lines.c.line == statement_lines.c.line,
                        ),
                    )
                    .outerjoin(recon_matches, recon_matches.c.id == recon_match_lines.c.match_id)
                )
                .where(statements.c.imported_at >= period.start, statements.c.imported_at < period.end)
                .group_by(statements.c.source, statements.c.currency, recon_matches.c.status)
            )
        ).all()
    found: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for source, currency, status, count in lines:
        found[(source, currency)][status or "unmatched"] += count
    rows = []
    for (source, currency), counts in sorted(found.items()):
        total = sum(counts.values())
        rows.append(
            (
                source,
                currency,
                total,
                counts["confirmed"],
                counts["suggested"],
                counts["unmatched"],
                _pct(counts["confirmed"], total),
            )
        )
    async with engine.connect() as conn:
        breaks = (
            await conn.execute(
                select(
                    recon_breaks.c.kind, recon_breaks.c.currency, recon_breaks.c.amount_minor, recon_breaks.c.opened_at
                ).where(recon_breaks.c.state.in_(OPEN_STATES))
            )
        ).all()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    amounts: dict[tuple[str, str], int] = defaultdict(int)
    for kind, currency, amount_minor, opened_at in breaks:
        by_kind[kind][_bucket((now.date() - opened_at.date()).days)] += 1
        amounts[(kind, currency)] += amount_minor
    buckets = [name for name, _ in AGE_BUCKETS]
    kind_rows = [(kind, sum(by_kind[kind].values()), *(by_kind[kind][n] for n in buckets)) for kind in BREAK_KINDS]
    amount_rows = [(kind, cur, amount_text(minor, cur)) for (kind, cur), minor in sorted(amounts.items())]
    report = Report("reconciliation", "Reconciliation: matched share and open breaks", period, now)
    report.notes.append(
        "Matched share covers statement lines imported in the period; breaks are every break open when the "
        "report was made (age in days since the break was opened)."
    )
    report.sections.append(
        Section(
            "lines",
            "Statement lines imported in the period",
            ("partner", "currency", "lines", "confirmed", "suggested", "unmatched", "matched_pct"),
            rows,
        )
    )
    report.sections.append(
        Section("breaks", "Open breaks by kind and age (days)", ("kind", "open", *buckets), kind_rows)
    )
    report.sections.append(
        Section("break_amounts", "Open breaks by kind and currency", ("kind", "currency", "amount"), amount_rows)
    )
    report.charts.append(
        Chart("Open breaks by kind", list(BREAK_KINDS), [sum(by_kind[k].values()) for k in BREAK_KINDS], "breaks")
    )
    return report


@register("partners", "Partner service levels")
async def partners(engine: AsyncEngine, period: Period, now: datetime, context: Context) -> Report:
    """Per partner: submissions, latency to the partner's acknowledgement, errors, unknown outcomes open now."""
    routed = _first_status_at("routed")
    submitted = _first_status_at("submitted")
    async with engine.connect() as conn:
        acks = (
            await conn.execute(
                select(instructions.c.adapter, routed.c.at.label("routed_at"), submitted.c.at.label("submitted_at"))
                .select_from(
                    instructions.join(routed, routed.c.instruction_id == instructions.c.id).join(
                        submitted, submitted.c.instruction_id == instructions.c.id
                    )
                )
                .where(submitted.c.at >= period.start, submitted.c.at < period.end)
            )
        ).all()
        outcomes = (
            await conn.execute(
                select(instruction_events.c.adapter, instruction_events.c.status, func.count())
                .where(
                    instruction_events.c.applied.is_(True),
                    instruction_events.c.adapter.is_not(None),
                    instruction_events.c.status.in_(("submitted", "settled", "rejected", "failed", "returned")),
                    instruction_events.c.occurred_at >= period.start,
                    instruction_events.c.occurred_at < period.end,
                )
                .group_by(instruction_events.c.adapter, instruction_events.c.status)
            )
        ).all()
        unknown = (
            await conn.execute(
                select(instructions.c.adapter, func.count())
                .select_from(outbox.join(instructions, instructions.c.id == outbox.c.instruction_id))
                .where(instructions.c.status == "routed", outbox.c.attempts > 0, outbox.c.last_error.is_not(None))
                .group_by(instructions.c.adapter)
            )
        ).all()
    latency: dict[str, list[float]] = defaultdict(list)
    for adapter, routed_at, submitted_at in acks:
        latency[adapter or "(none)"].append((submitted_at - routed_at).total_seconds() * 1000)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for adapter, status, count in outcomes:
        counts[adapter][status] += count
    open_unknown = {adapter or "(none)": count for adapter, count in unknown}
    rows = []
    for name in sorted(set(latency) | set(counts) | set(open_unknown)):
        times = sorted(latency[name])
        c = counts[name]
        finals = c["settled"] + c["rejected"] + c["failed"]
        errors = c["rejected"] + c["failed"]
        rows.append(
            (
                name,
                c["submitted"],
                _seconds(times, 50),
                _seconds(times, 90),
                _seconds(times, 99),
                c["settled"],
                c["rejected"],
                c["failed"],
                c["returned"],
                _pct(errors, finals) if finals else "",
                open_unknown.get(name, 0),
            )
        )
    report = Report("partners", "Partner service levels", period, now)
    report.notes.append(
        "Latency is from routing to the partner's acknowledgement (submitted), in milliseconds; unknown outcomes "
        "are payments whose submission got no answer and that are still being retried now."
    )
    report.sections.append(
        Section(
            "partners",
            "Service levels by partner",
            (
                "partner",
                "submitted",
                "latency_p50_ms",
                "latency_p90_ms",
                "latency_p99_ms",
                "settled",
                "rejected",
                "failed",
                "returned",
                "error_rate_pct",
                "unknown_open",
            ),
            rows,
        )
    )
    names = [r[0] for r in rows]
    report.charts.append(
        Chart("Latency p90 by partner (ms)", list(map(str, names)), [int(r[3] or 0) for r in rows], "ms")
    )
    report.charts.append(
        Chart("Unknown outcomes open by partner", list(map(str, names)), [int(r[10] or 0) for r in rows], "payments")
    )
    return report
