"""Operational anomaly detection on stored history with injected incidents (SQLite and PostgreSQL).

A day of normal hourly traffic per partner, then an incident in the last complete hour: each kind
is found for the partner it was injected into and no other, raises one alert, stays one incident
while it lasts, and is resolved when traffic is normal again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import AnomalySettings, load_settings
from gateway.reports.anomaly import binomial_limit, check_anomalies, ewma_verdicts
from gateway.store.tables import anomaly_incidents, risk_alerts
from tests.reports.seed import FAILED, REJECTED, SETTLED, store_payments, unknown_outcome
from tests.support import load_bench

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
HOURS = 12


def settings(**changes: object) -> AnomalySettings:
    base = load_settings(env={}).with_overrides(
        anomaly__history_buckets=HOURS + 2, anomaly__warmup_buckets=6, anomaly__min_events=6
    )
    return base.with_overrides(**{f"anomaly__{k}": v for k, v in changes.items()}).anomaly


async def normal_history(engine: AsyncEngine, adapters: tuple[str, ...] = ("instant_rtp", "iso20022_bank")) -> None:
    """HOURS hours of 8 payments an hour per partner: 7 settle in 10 minutes, 1 is rejected (every other hour)."""
    for hour in range(HOURS):
        for adapter in adapters:
            paths = [SETTLED] * 7 + [REJECTED if hour % 2 else SETTLED]
            await store_payments(
                engine, business_unit="erp", adapter=adapter, received_at=T0 + timedelta(hours=hour), paths=paths
            )


async def alerts(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(risk_alerts).where(risk_alerts.c.outcome == "anomaly"))).mappings().all()
    return [dict(r) for r in rows]


def test_ewma_flags_a_jump_not_noise_and_a_long_incident_stays_out_of_the_baseline() -> None:
    noise = [10.0, 12.0, 9.0, 11.0, 10.0, 13.0, 9.0, 11.0, 10.0, 12.0]
    verdicts = ewma_verdicts([*noise, 40.0, 41.0, 39.0, None, 11.0], alpha=0.2, sigmas=3, warmup=6, floor=5)
    assert [v.alarm for v in verdicts] == [False] * 10 + [True, True, True, False, False]
    assert verdicts[12].mean is not None and verdicts[12].mean < 13  # the incident did not become the normal
    # warm-up: the same jump with too little history is not an alarm
    assert not any(v.alarm for v in ewma_verdicts([10.0, 11.0, 40.0], alpha=0.2, sigmas=3, warmup=6, floor=5))


async def test_a_reject_spike_opens_one_incident_with_one_alert_until_it_is_over(engine: AsyncEngine) -> None:
    await normal_history(engine)
    spike = T0 + timedelta(hours=HOURS)
    await store_payments(
        engine, business_unit="erp", adapter="instant_rtp", received_at=spike, paths=[SETTLED] * 8 + [REJECTED] * 8
    )
    await store_payments(engine, business_unit="erp", adapter="iso20022_bank", received_at=spike, paths=[SETTLED] * 8)
    after = spike + timedelta(hours=1, minutes=5)
    run = await check_anomalies(engine, settings(), after)
    assert [(i.partner, i.metric) for i in run.opened] == [("instant_rtp", "reject_rate")]
    assert run.opened[0].value == pytest.approx(50) and run.opened[0].limit < 50
    found = await alerts(engine)
    assert len(found) == 1
    assert found[0]["instruction_id"] is None and found[0]["reason_code"] == "ANOMALY_REJECT_RATE"
    assert found[0]["findings"][0]["rule"] == "anomaly.reject_rate"
    assert "instant_rtp" in found[0]["findings"][0]["reason"]

    again = await check_anomalies(engine, settings(), after + timedelta(minutes=5))  # same incident: no new alert
    assert again.opened == [] and [i.metric for i in again.still_open] == ["reject_rate"]
    assert len(await alerts(engine)) == 1

    calm = spike + timedelta(hours=1)
    await store_payments(engine, business_unit="erp", adapter="instant_rtp", received_at=calm, paths=[SETTLED] * 8)
    over = await check_anomalies(engine, settings(), calm + timedelta(hours=1, minutes=5))
    assert over.opened == [] and [k[1:] for k in over.resolved] == [("instant_rtp", "reject_rate")]
    async with engine.connect() as conn:
        (incident,) = (await conn.execute(select(anomaly_incidents))).mappings().all()
    assert incident["resolved_at"] is not None and incident["alert_id"] == found[0]["id"]


async def test_error_rate_and_settle_time_drift_are_found_for_their_partner(engine: AsyncEngine) -> None:
    await normal_history(engine)
    hour = T0 + timedelta(hours=HOURS)
    slow = [(*SETTLED[:-1], ("settled", 55))] * 8
    await store_payments(engine, business_unit="erp", adapter="iso20022_bank", received_at=hour, paths=slow)
    await store_payments(
        engine, business_unit="erp", adapter="instant_rtp", received_at=hour, paths=[SETTLED] * 5 + [FAILED] * 3
    )
    run = await check_anomalies(engine, settings(), hour + timedelta(hours=1, minutes=1))
    assert sorted((i.partner, i.metric) for i in run.opened) == [
        ("instant_rtp", "error_rate"),
        ("iso20022_bank", "settle_time"),
    ]
    assert len(await alerts(engine)) == 2


async def test_normal_traffic_raises_nothing(engine: AsyncEngine) -> None:
    await normal_history(engine)
    hour = T0 + timedelta(hours=HOURS)
    for adapter in ("instant_rtp", "iso20022_bank"):
        await store_payments(
            engine, business_unit="erp", adapter=adapter, received_at=hour, paths=[SETTLED] * 7 + [REJECTED]
        )
    run = await check_anomalies(engine, settings(), hour + timedelta(hours=1, minutes=1))
    assert (run.opened, run.still_open) == ([], [])
    assert await alerts(engine) == []


async def test_unresolved_unknown_outcomes_and_stuck_payments_are_incidents(engine: AsyncEngine) -> None:
    await normal_history(engine, adapters=("instant_rtp",))
    late = T0 + timedelta(hours=HOURS)
    (unknown,) = await store_payments(
        engine,
        business_unit="erp",
        adapter="card_acquirer",
        received_at=late,
        paths=[(("accepted", 0.1), ("routed", 0.2))],
    )
    await unknown_outcome(engine, unknown, late + timedelta(minutes=1))
    (stuck,) = await store_payments(
        engine, business_unit="erp", adapter="instant_rtp", received_at=late, paths=[SETTLED[:3]]
    )
    # 10 minutes later: the unknown outcome is not overdue (30 min), and nothing has waited 15 minutes ...
    limits = settings(stuck_min_minutes=15, unknown_after_minutes=30)
    early = await check_anomalies(engine, limits, late + timedelta(minutes=10))
    assert [i.metric for i in early.opened if i.metric in ("unknown_open", "stuck")] == []
    # ... after an hour both are: instant_rtp's usual time in submitted is 9.5 minutes (x 3 = 28.5 < 64.5),
    # card_acquirer has no history, so its payment is stuck past stuck_min_minutes
    run = await check_anomalies(engine, limits, late + timedelta(minutes=65))
    found = sorted((i.partner, i.metric, str(i.value)) for i in run.opened if i.metric in ("unknown_open", "stuck"))
    assert found == [
        ("card_acquirer", "stuck", "1"),
        ("card_acquirer", "unknown_open", "1"),
        ("instant_rtp", "stuck", "1"),
    ]
    assert stuck and len(await alerts(engine)) == len(run.opened)


def test_rate_limits_allow_for_the_size_of_the_bucket() -> None:
    # 3 % of outcomes rejected for a day; then 1 in 12 (8.3 %) in a quiet hour, and 25 in 300 in a busy one
    history = [3.0] * 24
    sizes = [100] * 24
    kwargs = {"alpha": 0.2, "sigmas": 3.0, "warmup": 6, "floor": 5.0}
    quiet = ewma_verdicts([*history, 100 / 12], counts=[*sizes, 12], **kwargs)[-1]
    busy = ewma_verdicts([*history, 100 * 25 / 300], counts=[*sizes, 300], **kwargs)[-1]
    assert (quiet.alarm, busy.alarm) == (False, True)
    assert quiet.limit is not None and busy.limit is not None and quiet.limit > busy.limit
    assert binomial_limit(300, 0.03, 3.0) == pytest.approx(0.06, abs=0.01)


def test_the_bench_finds_injected_incidents_with_fewer_false_alarms_than_a_fixed_threshold() -> None:
    bench = load_bench("anomaly")
    settings_ = load_settings(env={}).anomaly
    series, injected = bench.simulate(10, 2, 8, 3)
    ewma = bench.score(series, injected, bench.alarms_ewma, settings_, 10)
    fixed = bench.score(series, injected, bench.alarms_fixed, settings_, 10)
    assert len(injected) == 8 and ewma["recall"] >= 0.75
    assert ewma["false_alarms"] < fixed["false_alarms"]
