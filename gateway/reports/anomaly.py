"""Operational anomaly detection: per business unit and partner, on time series from the store.

Four kinds of incident, beside payment risk rules:

- ``settle_time``, ``reject_rate``, ``error_rate``: one point per bucket (``anomaly.bucket_minutes``)
  of the mean time to settle, the share of outcomes that are rejections, and the share that are
  failures. An EWMA with an upper control limit (``EWMA + sigmas x EWMA standard deviation``) is
  built over the history; the last complete bucket alarms when it is above the limit and also
  clearly above the mean (``min_rate_increase_pct`` / ``min_settle_increase_seconds``: a flat
  history has no variance). Points that alarm do not move the baseline, so a long incident
  stays an incident.
- ``unknown_open``: submissions whose outcome is unknown (no answer; the dispatcher keeps asking)
  and still unresolved after ``unknown_after_minutes``.
- ``stuck``: payments in ``routed`` or ``submitted`` for longer than ``stuck_factor`` x the usual
  (p99) time payments of the same partner spent there over the history.

Each (business unit, partner, metric) has at most one open incident: it raises one alert through
the alerts table (outcome ``anomaly``, no instruction) when it opens, is kept while the series
stays out of limits and resolved when it comes back; only then can a new alert be raised.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import AnomalySettings
from gateway.domain.ids import new_id
from gateway.reports.model import percentile
from gateway.store.tables import anomaly_incidents, instruction_events, instructions, outbox, risk_alerts

__all__ = ["METRICS", "AnomalyRun", "Incident", "Verdict", "binomial_limit", "check_anomalies", "ewma_verdicts"]

log = logging.getLogger(__name__)

METRICS = ("settle_time", "reject_rate", "error_rate", "unknown_open", "stuck")
_FINALS = ("settled", "rejected", "failed")
_WAITING = ("routed", "submitted")


@dataclass(frozen=True)
class Verdict:
    """One point of a series judged against what came before it."""

    alarm: bool
    value: float | None
    mean: float | None
    limit: float | None


def ewma_verdicts(
    values: Sequence[float | None],
    *,
    alpha: float,
    sigmas: float,
    warmup: int,
    floor: float,
    counts: Sequence[int] | None = None,
) -> list[Verdict]:
    """Judge every point of a series (None: no data in that bucket) against the EWMA of the points before it.

    Without ``counts``: an EWMA of the values and of their variance; the upper control limit is
    ``mean + sigmas x standard deviation``. With ``counts`` the values are rates in percent over that
    many outcomes: the normal rate is the ratio of the EWMAs of events and of outcomes (a quiet hour
    weighs less than a busy one), and the limit is the share a bucket of that size reaches by chance
    no more often than ``sigmas`` allows (the binomial tail: rare events are skewed), so one rejection
    among twelve at night is not an incident while the same share in a busy hour is.
    """
    out: list[Verdict] = []
    mean: float | None = None
    var = 0.0
    events = outcomes = 0.0  # EWMAs, for rates
    seen = 0
    for i, x in enumerate(values):
        if x is None:
            out.append(Verdict(False, None, mean, None))
            continue
        n = counts[i] if counts is not None else 0
        if mean is None:
            mean, seen, events, outcomes = x, 1, x * n / 100, float(n)
            out.append(Verdict(False, x, None, None))
            continue
        if counts is not None:
            limit = binomial_limit(n, mean / 100, sigmas) * 100 if n > 0 else math.inf
        else:
            limit = mean + sigmas * math.sqrt(var)
        alarm = seen >= warmup and x > limit and x - mean >= floor
        out.append(Verdict(alarm, x, mean, limit))
        if alarm:  # an alarming point does not become the new normal
            continue
        seen += 1
        if counts is not None:
            events += alpha * (x * n / 100 - events)
            outcomes += alpha * (n - outcomes)
            mean = 100 * events / outcomes if outcomes > 0 else mean
        else:
            diff = x - mean
            step = alpha * diff
            mean += step
            var = (1 - alpha) * (var + diff * step)
    return out


def binomial_limit(n: int, p: float, sigmas: float) -> float:
    """The smallest share k/n with P(X >= k) at most the one-sided normal tail of ``sigmas``, X ~ Binomial(n, p)."""
    tail = 0.5 * math.erfc(sigmas / math.sqrt(2))
    p = min(max(p, 1e-6), 1 - 1e-6)
    log_p, log_q = math.log(p), math.log1p(-p)

    def pmf(k: int) -> float:
        return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)

    below = 0.0  # P(X < k)
    for k in range(n + 1):
        if 1 - below <= tail:
            return k / n
        below += pmf(k)
    return 1.0


@dataclass(frozen=True)
class Incident:
    """What the detector found out of limits now."""

    business_unit_id: str
    partner: str
    metric: str
    value: Decimal
    limit: Decimal
    reason: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.business_unit_id, self.partner, self.metric)


@dataclass
class AnomalyRun:
    """One detection round: incidents opened (each with one new alert), still open, resolved."""

    opened: list[Incident] = field(default_factory=list)
    still_open: list[Incident] = field(default_factory=list)
    resolved: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": [_view(i) for i in self.opened],
            "still_open": [_view(i) for i in self.still_open],
            "resolved": [{"business_unit_id": b, "partner": p, "metric": m} for b, p, m in self.resolved],
        }


def _view(incident: Incident) -> dict[str, Any]:
    return {
        "business_unit_id": incident.business_unit_id,
        "partner": incident.partner,
        "metric": incident.metric,
        "value": str(incident.value),
        "limit": str(incident.limit),
        "reason": incident.reason,
    }


def _dec(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _bucket_start(now: datetime, minutes: int) -> datetime:
    """The end of the last complete bucket (buckets are aligned on the epoch)."""
    width = minutes * 60
    epoch = int(now.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % width, UTC)


async def _series_incidents(conn: AsyncConnection, s: AnomalySettings, now: datetime) -> list[Incident]:
    width = timedelta(minutes=s.bucket_minutes)
    end = _bucket_start(now, s.bucket_minutes)
    start = end - width * s.history_buckets
    partner = func.coalesce(instruction_events.c.adapter, instructions.c.adapter)
    rows = await conn.execute(
        select(
            instructions.c.business_unit_id,
            partner.label("partner"),
            instruction_events.c.status,
            instruction_events.c.occurred_at,
            instructions.c.created_at,
        )
        .select_from(instruction_events.join(instructions, instructions.c.id == instruction_events.c.instruction_id))
        .where(
            instruction_events.c.applied.is_(True),
            instruction_events.c.status.in_(_FINALS),
            instruction_events.c.occurred_at >= start,
            instruction_events.c.occurred_at < end,
            partner.is_not(None),
        )
    )
    n = s.history_buckets
    counts: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(
        lambda: [{"settled": 0, "rejected": 0, "failed": 0, "settle_s": 0.0} for _ in range(n)]
    )
    for bu, name, status, at, created in rows:
        i = int((at - start) / width)
        point = counts[(bu, name)][min(i, n - 1)]
        point[status] += 1
        if status == "settled":
            point["settle_s"] += (at - created).total_seconds()
    found: list[Incident] = []
    for (bu, name), points in sorted(counts.items()):
        finals = [int(p["settled"] + p["rejected"] + p["failed"]) for p in points]
        series: dict[str, tuple[list[float | None], float, str, list[int] | None]] = {
            "reject_rate": (
                [100 * p["rejected"] / f if f >= s.min_events else None for p, f in zip(points, finals, strict=True)],
                s.min_rate_increase_pct,
                "%",
                finals,
            ),
            "error_rate": (
                [100 * p["failed"] / f if f >= s.min_events else None for p, f in zip(points, finals, strict=True)],
                s.min_rate_increase_pct,
                "%",
                finals,
            ),
            "settle_time": (
                [p["settle_s"] / p["settled"] if p["settled"] >= s.min_events else None for p in points],
                s.min_settle_increase_seconds,
                " s",
                None,
            ),
        }
        for metric, (values, floor, unit, sizes) in series.items():
            verdicts = ewma_verdicts(
                values, alpha=s.alpha, sigmas=s.sigmas, warmup=s.warmup_buckets, floor=floor, counts=sizes
            )
            last = verdicts[-1]
            if last.alarm and last.value is not None and last.limit is not None and last.mean is not None:
                found.append(
                    Incident(
                        bu,
                        name,
                        metric,
                        _dec(last.value),
                        _dec(last.limit),
                        f"{name}: {metric.replace('_', ' ')} {last.value:.2f}{unit} in the {s.bucket_minutes} min "
                        f"to {end.isoformat()}, above the control limit {last.limit:.2f}{unit} "
                        f"(EWMA {last.mean:.2f}{unit})",
                    )
                )
    return found


async def _unknown_incidents(conn: AsyncConnection, s: AnomalySettings, now: datetime) -> list[Incident]:
    older = now - timedelta(minutes=s.unknown_after_minutes)
    rows = await conn.execute(
        select(instructions.c.business_unit_id, instructions.c.adapter, func.count())
        .select_from(outbox.join(instructions, instructions.c.id == outbox.c.instruction_id))
        .where(
            instructions.c.status == "routed",
            instructions.c.adapter.is_not(None),
            outbox.c.attempts > 0,
            outbox.c.last_error.is_not(None),
            instructions.c.updated_at < older,
        )
        .group_by(instructions.c.business_unit_id, instructions.c.adapter)
    )
    return [
        Incident(
            bu,
            name,
            "unknown_open",
            Decimal(count),
            Decimal(0),
            f"{name}: {count} submissions with an unknown outcome unresolved for over {s.unknown_after_minutes:g} min",
        )
        for bu, name, count in rows
    ]


async def _usual_minutes(conn: AsyncConnection, s: AnomalySettings, now: datetime) -> dict[tuple[str, str], float]:
    """(partner, status) → p99 of the minutes payments spent in the status, over the history window."""
    since = now - timedelta(minutes=s.bucket_minutes * s.history_buckets)
    rows = await conn.execute(
        select(
            instruction_events.c.instruction_id,
            instructions.c.adapter,
            instruction_events.c.status,
            instruction_events.c.occurred_at,
        )
        .select_from(instruction_events.join(instructions, instructions.c.id == instruction_events.c.instruction_id))
        .where(
            instruction_events.c.applied.is_(True),
            instruction_events.c.occurred_at >= since,
            instructions.c.adapter.is_not(None),
        )
        .order_by(instruction_events.c.instruction_id, instruction_events.c.sequence)
    )
    spent: dict[tuple[str, str], list[float]] = defaultdict(list)
    previous: Any = None
    for row in rows:
        if previous is not None and previous.instruction_id == row.instruction_id and previous.status in _WAITING:
            spent[(row.adapter, previous.status)].append((row.occurred_at - previous.occurred_at).total_seconds() / 60)
        previous = row
    return {key: percentile(sorted(values), 99) or 0.0 for key, values in spent.items()}


async def _stuck_incidents(conn: AsyncConnection, s: AnomalySettings, now: datetime) -> list[Incident]:
    usual = await _usual_minutes(conn, s, now)
    rows = await conn.execute(
        select(
            instructions.c.business_unit_id, instructions.c.adapter, instructions.c.status, instructions.c.updated_at
        ).where(
            instructions.c.status.in_(_WAITING),
            instructions.c.adapter.is_not(None),
            instructions.c.updated_at < now - timedelta(minutes=s.stuck_min_minutes),
        )
    )
    stuck: dict[tuple[str, str], list[float]] = defaultdict(list)
    limits: dict[tuple[str, str], float] = {}
    for bu, name, status, updated in rows:
        limit = max(s.stuck_min_minutes, s.stuck_factor * usual.get((name, status), 0.0))
        minutes = (now - updated).total_seconds() / 60
        if minutes > limit:
            stuck[(bu, name)].append(minutes)
            limits[(bu, name)] = max(limits.get((bu, name), 0.0), limit)
    return [
        Incident(
            bu,
            name,
            "stuck",
            Decimal(len(ages)),
            _dec(limits[(bu, name)]),
            f"{name}: {len(ages)} payments waiting in routed/submitted for up to {max(ages):.0f} min, "
            f"longer than usual ({limits[(bu, name)]:.0f} min)",
        )
        for (bu, name), ages in sorted(stuck.items())
    ]


async def check_anomalies(engine: AsyncEngine, settings: AnomalySettings, now: datetime) -> AnomalyRun:
    """One detection round: find what is out of limits, open incidents (one alert each), resolve the rest."""
    async with engine.connect() as conn:
        found = (
            await _series_incidents(conn, settings, now)
            + await _unknown_incidents(conn, settings, now)
            + await _stuck_incidents(conn, settings, now)
        )
    run = AnomalyRun()
    by_key = {i.key: i for i in found}
    async with engine.begin() as conn:
        open_rows = (
            await conn.execute(
                select(
                    anomaly_incidents.c.id,
                    anomaly_incidents.c.business_unit_id,
                    anomaly_incidents.c.partner,
                    anomaly_incidents.c.metric,
                ).where(anomaly_incidents.c.resolved_at.is_(None))
            )
        ).all()
        open_keys = {(r.business_unit_id, r.partner, r.metric): r.id for r in open_rows}
        for key, incident_id in open_keys.items():
            incident = by_key.get(key)
            if incident is None:
                await conn.execute(
                    update(anomaly_incidents).where(anomaly_incidents.c.id == incident_id).values(resolved_at=now)
                )
                run.resolved.append(key)
                log.info("anomaly resolved: %s %s %s", *key)
            else:
                await conn.execute(
                    update(anomaly_incidents)
                    .where(anomaly_incidents.c.id == incident_id)
                    .values(last_seen_at=now, value=str(incident.value), limit=str(incident.limit))
                )
                run.still_open.append(incident)
        for key, incident in by_key.items():
            if key in open_keys:
                continue
            alert_id = new_id("alr")
            await conn.execute(
                insert(risk_alerts).values(
                    id=alert_id,
                    instruction_id=None,
                    business_unit_id=incident.business_unit_id,
                    outcome="anomaly",
                    reason_code=f"ANOMALY_{incident.metric.upper()}",
                    findings=[
                        {
                            "rule": f"anomaly.{incident.metric}",
                            "score": float(incident.value),
                            "reason": incident.reason,
                        }
                    ],
                    created_at=now,
                )
            )
            await conn.execute(
                insert(anomaly_incidents).values(
                    id=new_id("inc"),
                    business_unit_id=incident.business_unit_id,
                    partner=incident.partner,
                    metric=incident.metric,
                    alert_id=alert_id,
                    opened_at=now,
                    last_seen_at=now,
                    resolved_at=None,
                    value=str(incident.value),
                    limit=str(incident.limit),
                )
            )
            run.opened.append(incident)
            log.warning("anomaly: %s", incident.reason)
    return run
