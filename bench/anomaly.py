"""Anomaly detection benchmark: synthetic hourly traffic with injected incidents, EWMA detector vs a fixed threshold.

Per partner, ``--days`` of hourly buckets with a daily volume curve (about 30 outcomes an hour at night,
300 at midday).
Normal: 3 % of outcomes rejected, 1 % failed, time to settle log-normal around 10 minutes. Incidents
(``--incidents``, spread over partners and time, 1 to 6 hours long) raise one series: the reject rate to
12-35 %, the error rate to 6-20 %, or the time to settle 2-4 x.

Both detectors see the same buckets and the same rules as the gateway's job (``anomaly.*`` defaults: a
bucket with fewer than ``min_events`` outcomes never alarms on a rate, an alarm opens one incident
until the series is back):

* **ewma**: ``gateway.reports.anomaly.ewma_verdicts`` (the detector the scheduled job runs) with the
  configured alpha, sigmas, warm-up and minimum increase;
* **fixed**: a fixed threshold per series (reject > 10 %, error > 5 %, settle > 20 min), the baseline.

Recall: injected incidents with an alarm of their series during the incident (or the hour after).
False alarms: incidents a detector opened outside any injected incident of that series, per day
(all partners together).

    .venv/bin/python bench/anomaly.py [--json] [--days 30] [--partners 4] [--incidents 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gateway.config import AnomalySettings, load_settings  # noqa: E402
from gateway.reports.anomaly import ewma_verdicts  # noqa: E402

METRICS = ("reject_rate", "error_rate", "settle_time")
NIGHT, PEAK = 30, 300  # outcomes per partner per hour
FIXED = {"reject_rate": 10.0, "error_rate": 5.0, "settle_time": 1200.0}


@dataclass(frozen=True)
class Incident:
    partner: int
    metric: str
    start: int  # bucket
    hours: int
    level: float  # the rate (%) or the settle-time factor during it

    def covers(self, bucket: int) -> bool:
        return self.start <= bucket <= self.start + self.hours  # the hour after it still counts


def volume(rng: random.Random, hour: int) -> int:
    """Outcomes in one hour: a daily curve from ~NIGHT at night to ~PEAK at midday, with noise."""
    curve = NIGHT + (PEAK - NIGHT) * math.sin(math.pi * ((hour % 24) - 6) / 14) if 6 <= hour % 24 <= 20 else NIGHT
    return max(0, int(rng.gauss(curve, math.sqrt(curve))))


def simulate(
    days: int, partners: int, incidents: int, seed: int
) -> tuple[dict[tuple[int, str], list[Any]], list[Incident]]:
    """Per (partner, metric): per bucket (outcomes, value) where value is the rate in % or the mean settle seconds."""
    rng = random.Random(seed)
    buckets = days * 24
    injected: list[Incident] = []
    busy: set[tuple[int, int]] = set()
    warm = 48  # the first two days are history only
    while len(injected) < incidents:
        partner, metric = rng.randrange(partners), rng.choice(METRICS)
        start, hours = rng.randrange(warm, buckets - 7), rng.randint(1, 6)
        if any((partner, b) in busy for b in range(start - 6, start + hours + 7)):
            continue
        level = {"reject_rate": rng.uniform(12, 35), "error_rate": rng.uniform(6, 20), "settle_time": rng.uniform(2, 4)}
        injected.append(Incident(partner, metric, start, hours, level[metric]))
        busy.update((partner, b) for b in range(start, start + hours))
    series: dict[tuple[int, str], list[Any]] = {(p, m): [] for p in range(partners) for m in METRICS}
    for partner in range(partners):
        for bucket in range(buckets):
            active = {i.metric: i for i in injected if i.partner == partner and i.start <= bucket < i.start + i.hours}
            n = volume(rng, bucket)
            p_reject = (active["reject_rate"].level if "reject_rate" in active else 3.0) / 100
            p_error = (active["error_rate"].level if "error_rate" in active else 1.0) / 100
            factor = active["settle_time"].level if "settle_time" in active else 1.0
            rejected = failed = 0
            settle = 0.0
            for _ in range(n):
                draw = rng.random()
                if draw < p_reject:
                    rejected += 1
                elif draw < p_reject + p_error:
                    failed += 1
                else:
                    settle += 600 * factor * rng.lognormvariate(0, 0.35)
            settled = n - rejected - failed
            series[(partner, "reject_rate")].append((n, 100 * rejected / n if n else None))
            series[(partner, "error_rate")].append((n, 100 * failed / n if n else None))
            series[(partner, "settle_time")].append((settled, settle / settled if settled else None))
    return series, injected


def alarms_ewma(points: list[Any], metric: str, s: AnomalySettings) -> list[bool]:
    values = [v if n >= s.min_events else None for n, v in points]
    floor = s.min_settle_increase_seconds if metric == "settle_time" else s.min_rate_increase_pct
    sizes = None if metric == "settle_time" else [n for n, _ in points]
    verdicts = ewma_verdicts(values, alpha=s.alpha, sigmas=s.sigmas, warmup=s.warmup_buckets, floor=floor, counts=sizes)
    return [v.alarm for v in verdicts]


def alarms_fixed(points: list[Any], metric: str, s: AnomalySettings) -> list[bool]:
    return [n >= s.min_events and v is not None and v > FIXED[metric] for n, v in points]


def score(
    series: dict[tuple[int, str], list[Any]], injected: list[Incident], detector: Any, s: AnomalySettings, days: int
) -> dict[str, Any]:
    detected = 0
    false_alarms = 0
    by_metric: dict[str, list[int]] = {m: [0, 0] for m in METRICS}
    for (partner, metric), points in series.items():
        alarms = detector(points, metric, s)
        mine = [i for i in injected if i.partner == partner and i.metric == metric]
        for incident in mine:
            hit = any(alarms[b] for b in range(incident.start, min(len(alarms), incident.start + incident.hours + 1)))
            detected += hit
            by_metric[metric][0] += hit
            by_metric[metric][1] += 1
        # incidents the detector opens: an alarm after a bucket without one (the job keeps one open incident)
        for b, alarm in enumerate(alarms):
            if alarm and (b == 0 or not alarms[b - 1]) and not any(i.covers(b) for i in mine):
                false_alarms += 1
    return {
        "recall": round(detected / len(injected), 3),
        "detected": detected,
        "false_alarms": false_alarms,
        "false_alarms_per_day": round(false_alarms / days, 3),
        "recall_by_metric": {m: round(d / t, 3) if t else None for m, (d, t) in by_metric.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--partners", type=int, default=4)
    parser.add_argument("--incidents", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = parser.parse_args()
    settings = load_settings(env={}).anomaly
    began = time.perf_counter()
    series, injected = simulate(args.days, args.partners, args.incidents, args.seed)
    results = {
        "ewma": score(series, injected, alarms_ewma, settings, args.days),
        "fixed": score(series, injected, alarms_fixed, settings, args.days),
    }
    seconds = time.perf_counter() - began
    print(
        f"{args.days} days x {args.partners} partners, hourly buckets, {len(injected)} injected incidents "
        f"(seed {args.seed}, {seconds:.1f} s)"
    )
    print(f"{'detector':<10}{'recall':>8}{'false alarms':>14}{'per day':>9}   recall by series")
    for name, r in results.items():
        per = ", ".join(f"{m} {v}" for m, v in r["recall_by_metric"].items())
        print(f"{name:<10}{r['recall']:>8}{r['false_alarms']:>14}{r['false_alarms_per_day']:>9}   {per}")
    if args.json:
        summary = {
            "days": args.days,
            "partners": args.partners,
            "incidents": len(injected),
            "seed": args.seed,
            "settings": {k: getattr(settings, k) for k in ("alpha", "sigmas", "warmup_buckets", "min_events")},
            **results,
        }
        print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
