"""Risk screening quality benchmark: recall and precision per anomaly kind on a labelled synthetic stream.

A seeded, deterministic generator builds a year of payments of four business
units, each with its own debtor accounts and population of creditors:

* ``emea-distribution`` (EUR, some GBP/CHF; Europe/Berlin): distributors paid
  several times a week, weekly/biweekly/monthly suppliers, month-end settlement
  peaks, quarter-end settlements of strategic suppliers;
* ``us-orders`` (USD; America/New_York): carriers billing per shipment (several
  payments per run), suppliers, refunds to (new, small) customer accounts;
* ``procurement`` (EUR, some USD/GBP; Europe/Berlin): monthly suppliers, leases,
  licences and rents (identical amount and remittance every month), round
  advance payments, new small suppliers every week, now and then a large one;
* ``payroll`` (EUR; salary runs at night): salaries on the same amount every
  month, raises in January, Christmas bonus in November, profit sharing in
  March, joiners, leavers (final settlements), employees changing bank, wage
  tax and social insurance.

Amounts are pair-specific (a typical amount per debtor -> creditor pair plus
noise) with yearly and month-end seasonality; payments happen in payment runs and
manually during business hours on working days (public holidays of the unit's
country), with a small share of legitimate late and weekend payments.

Into the scored year it injects anomalies of each rule's kind (``--anomaly-rate``
of ``--count``; each payment is labelled with its kind, or ``normal``):
velocity (a burst of 12-40 payments to one creditor within the hour), amount
outlier (a known pair paid 20-100x its usual), new beneficiary (a first payment
of 30k-400k to a new account), duplicate (the same payment re-sent within hours;
near duplicates: edited remittance, a fee deducted, or the cash discount taken
once and not the other time), round amount, business hours (night, weekend,
public holiday), account change (a known creditor's name with a new account) and
blocklist (names of config/blocklist.yaml in other spellings, the blocked wallet).

All payments run in time order through one ``RiskEngine`` and one ``History``
(three months of warm-up traffic first, screened but not scored), as the gateway
would: held normal payments are approved by finance (``History.learn_only``, as
``decide_hold`` does), held anomalies are rejected; the history is pruned daily.

Scoring. A payment counts as *detected* when its outcome is not ``pass`` and the
rule of its kind is among the findings (a flag counts: it raises an alert; the
table shows held and flag-only separately, and "any rule"). ``recall`` is
detected / injected; ``precision`` is the share of anomalies among all payments
with an alert (flag or hold); per kind, ``precision`` is the share of that kind
among the payments where that rule fired. ``normal_hold_rate`` is normal payments
held or rejected / normal payments, ``normal_flag_rate`` those flagged. Every
payment of a velocity burst is labelled ``velocity``, so the first ``max_count``
payments of each burst are misses by construction (``incident_recall`` counts a
burst as caught when any of its payments is). As the baseline measured in the
same run, a naive static threshold holds every payment above one amount, chosen
to hold the same share of normal payments as the engine does; the bench prints
the engine's recall against it (and, for information, "amount > 3x the median").

    .venv/bin/python bench/risk_quality.py                      # 100,000 payments, config/risk.yaml
    .venv/bin/python bench/risk_quality.py --json               # + one JSON object, last stdout line
    .venv/bin/python bench/risk_quality.py --count 5000 --seed 7 --config /tmp/risk.yaml

Not part of the test suite (a smoke test runs it on 5,000 payments); single process, no I/O.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import holidays  # noqa: E402

from gateway.domain.money import minor_units  # noqa: E402
from gateway.plugins.manager import Plugins  # noqa: E402
from gateway.risk.engine import RiskEngine, load_risk  # noqa: E402
from gateway.risk.history import History  # noqa: E402
from gateway.risk.model import Candidate, Outcome, normalise_name, normalise_text  # noqa: E402
from gateway.risk.rules import canonical_account  # noqa: E402

DEFAULT_CONFIG = ROOT / "config" / "risk.yaml"
DEFAULT_SEED = 20260601
WARMUP_START = date(2025, 4, 1)  # history the gateway already has (screened, not scored)
SCORED_START = date(2025, 7, 1)
SCORED_END = date(2026, 7, 1)  # exclusive
KINDS = (
    "velocity",
    "amount_outlier",
    "new_beneficiary",
    "duplicate",
    "round_amount",
    "business_hours",
    "account_change",
    "blocklist",
)
NORMAL = "normal"
#: rough conversion to EUR for the baseline's single amount threshold
EUR_RATE = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.05}
#: creditor-account history the rules need (the longest window is 24 h)
KEEP_SECONDS = 2 * 86_400
#: payments per business unit and year are scaled from these shares of the count
MONTH_SEASON = {  # amount and volume factor per month, per business unit
    "emea-distribution": [0.9, 0.9, 1.0, 1.0, 1.0, 1.05, 0.95, 0.8, 1.05, 1.1, 1.25, 1.3],
    "us-orders": [0.85, 0.85, 0.95, 1.0, 1.0, 1.0, 0.95, 0.95, 1.0, 1.1, 1.4, 1.45],
    "procurement": [1.0, 1.0, 1.05, 1.0, 1.0, 1.0, 0.9, 0.85, 1.0, 1.05, 1.1, 1.2],
    "payroll": [1.0] * 12,
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Anna Maria Julia Laura Sarah Lisa Katharina Lena Sophie Hannah Lea Johanna Marie Clara Emma Nina "
    "Sandra Petra Sabine Andrea Claudia Monika Susanne Stefanie Nicole Melanie Christina Daniela Jana Eva "
    "Thomas Michael Andreas Stefan Christian Markus Alexander Daniel Martin Peter Frank Tobias Jan Florian "
    "Matthias Sebastian Jonas Lukas Felix Paul Max David Simon Tim Jens Uwe Dirk Holger Sven Oliver Ralf "
    "Ahmet Mehmet Ayse Fatma Ali Elif Emre Can Luca Marco Giulia Francesca Piotr Anna Katarzyna Tomasz "
    "Ivan Olga Natalia Dmitri Sofia Mateo Lucia Carlos Ana Joao Ines Pierre Camille Louis Chloe Nils Ingrid "
    "Erik Astrid Lars Karin Timo Heike Birgit Jutta Gerhard Wolfgang Manfred Helmut Juergen Dieter Karl"
)
LAST_NAMES = _words(
    "Mueller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schaefer Koch Bauer Richter "
    "Klein Wolf Schroeder Neumann Schwarz Zimmermann Braun Krueger Hofmann Hartmann Lange Schmitt Werner "
    "Schmitz Krause Meier Lehmann Schmid Schulze Maier Koehler Herrmann Koenig Walter Mayer Huber Kaiser "
    "Fuchs Peters Lang Scholz Moeller Weiss Jung Hahn Schubert Vogel Friedrich Keller Guenther Frank Berger "
    "Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon Ludwig Boehm Winter Kraus Martin "
    "Schumacher Kraemer Vogt Stein Jaeger Otto Sommer Gross Seidel Heinrich Brandt Haas Schreiber Graf "
    "Schulte Dietrich Ziegler Kuhn Kuehn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold Wolff "
    "Pfeiffer Yilmaz Kaya Demir Sahin Celik Rossi Russo Ferrari Nowak Kowalski Wisniewski Ivanov Petrov "
    "Garcia Martinez Lopez Silva Santos Dubois Laurent Moreau Johansson Andersson Nielsen Hansen Larsen "
    "Brinkmann Ostermann Lindner Ebert Kuhlmann Wendt Thiel Marx Kessler Hein Barth Buchholz Behrens"
)
US_FIRST = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan "
    "Joseph Jessica Thomas Sarah Charles Karen Chris Nancy Daniel Lisa Matthew Betty Anthony Margaret Mark "
    "Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua Michelle Kevin Carol Brian Amanda"
)
US_LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams "
    "Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker"
)
COMPANY_A = _words(
    "Nordic Alpine Rhein Baltic Atlas Orion Delta Vega Polar Hansa Isar Main Elbe Danube Adria Iberia "
    "Helvetia Albion Celtic Lumen Nova Terra Aqua Ferro Vita Agro Techno Euro Global Prime Union Central "
    "Pioneer Summit Harbor Granite Cedar Maple Oak Falcon Eagle Lynx Bison Kestrel Meridian Vertex Apex "
    "Crown Anchor Beacon Compass Sterling Bavaria Saxonia Westfalia Frisia Lombard Flanders Brabant Jutland"
)
COMPANY_B = _words(
    "Parts Logistics Packaging Components Freight Foods Metals Plastics Systems Electronics Chemicals "
    "Textiles Tools Machinery Services Distribution Supplies Industries Pharma Paper Print Energy Cargo "
    "Solutions Automation Hydraulics Fasteners Bearings Cables Coatings Labels Pallets Containers Optics"
)
LEGAL = {
    "EUR": ["GmbH", "AG", "GmbH & Co. KG", "BV", "SAS", "S.p.A.", "AB", "Oy", "NV", "SRL"],
    "GBP": ["Ltd", "Limited", "plc", "LLP"],
    "CHF": ["AG", "SA", "GmbH"],
    "USD": ["Inc.", "LLC", "Corp.", "Co."],
}
IBAN_COUNTRY = {
    "EUR": ["DE", "DE", "DE", "NL", "FR", "IT", "AT", "BE", "ES", "FI", "SE"],
    "GBP": ["GB"],
    "CHF": ["CH"],
    "USD": ["US"],
}
FRAUD_COUNTRIES = ["LT", "CY", "MT", "LV", "HK", "AE", "RO", "BG", "EE", "PL"]
#: normal creditors whose names share words with blocked names (must not match)
LOOKALIKE_NAMES = [
    "Example Trading GmbH",
    "Shell Deutschland Oil GmbH",
    "Blocked Drain Services Ltd",
    "Trading Example Partners BV",
    "Shell Energy Retail Ltd",
    "Company Example Logistics AG",
]


# -- model ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Payment:
    at: datetime  # UTC
    bu: str
    currency: str
    minor: int
    debtor: str  # debtor account (an IBAN-like string)
    account: tuple[tuple[str, str], ...]  # creditor account, canonical form as items
    name: str  # creditor name as sent
    remittance: str
    kind: str = NORMAL
    tag: str = ""  # what kind of normal payment (hard negatives) or which variant of an anomaly
    incident: int = -1  # velocity bursts: one incident, many payments
    warmup: bool = False
    pair: tuple[str, str, tuple[tuple[str, str], ...], str] | None = None


@dataclass(slots=True)
class Creditor:
    name: str
    accounts: list[tuple[date, str]]  # (valid from, iban) ascending
    alt_account: str | None = None  # a second account used now and then (e.g. a branch)
    seq: int = 0
    style: int = 0
    prefix: str = ""
    seen: set[str] = field(default_factory=set)  # accounts paid so far

    def account_on(self, day: date, rng: random.Random) -> str:
        if self.alt_account is not None and rng.random() < 0.25:
            return self.alt_account
        iban = self.accounts[0][1]
        for since, value in self.accounts:
            if since <= day:
                iban = value
        return iban

    def invoice(self, day: date) -> str:
        self.seq += 1
        n = self.seq
        if self.style == 0:
            return f"Invoice {self.prefix}-{day.year}-{n:05d}"
        if self.style == 1:
            return f"Rechnung Nr. {self.prefix}{n:06d} vom {day:%d.%m.%Y}"
        if self.style == 2:
            return f"INV{n:07d} PO 45{(n * 7919) % 100000:05d}"
        return f"{self.prefix}/{day:%y}/{n:04d}"


class Calendar:
    """Working days, public holidays and local times of one business unit."""

    def __init__(self, zone: str, country: str) -> None:
        self.zone = ZoneInfo(zone)
        self.country = country
        self.holidays = holidays.country_holidays(country, years=range(WARMUP_START.year, SCORED_END.year + 1))
        days = [WARMUP_START + timedelta(days=i) for i in range((SCORED_END - WARMUP_START).days)]
        self.days = days
        self.working = [d for d in days if d.weekday() < 5 and d not in self.holidays]
        self.working_set = set(self.working)
        by_month: dict[tuple[int, int], list[date]] = defaultdict(list)
        for d in self.working:
            by_month[(d.year, d.month)].append(d)
        self.by_month = dict(by_month)
        self.month_end = {d for days_ in by_month.values() for d in days_[-3:]}
        self.public_holidays = [d for d in days if d in self.holidays and d >= SCORED_START]

    def next_working(self, day: date) -> date | None:
        i = bisect.bisect_left(self.working, day)
        return self.working[i] if i < len(self.working) else None

    def nth_last(self, year: int, month: int, n: int) -> date:
        days = self.by_month[(year, month)]
        return days[-n] if len(days) >= n else days[0]

    def at(self, day: date, hour: float) -> datetime:
        seconds = max(0, min(86_399, int(hour * 3600)))
        local = datetime(
            day.year, day.month, day.day, seconds // 3600, seconds // 60 % 60, seconds % 60, tzinfo=self.zone
        )
        return local.astimezone(UTC)


def months() -> Iterator[tuple[int, int]]:
    y, m = WARMUP_START.year, WARMUP_START.month
    while date(y, m, 1) < SCORED_END:
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def to_minor(amount: float, currency: str) -> int:
    return max(1, round(amount * 10 ** minor_units(currency)))


# -- the generator ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class PairSpec:
    """A regular debtor -> creditor relationship with its schedule and usual amount."""

    creditor: Creditor
    currency: str
    debtor: str
    base: float
    sigma: float
    schedule: str  # frequent | weekly | biweekly | monthly | monthend | recurring
    param: float = 0.0  # per week (frequent), weekday (weekly), day of month (monthly)
    per_invoice: float = 0.0  # > 0: one payment per invoice, 1 + Poisson(per_invoice) per run
    quarterly: float = 0.0  # > 0: a quarter-end settlement of this many times the usual
    monthend_boost: bool = False
    fixed_remittance: str = ""  # recurring: the same text every month
    start: date = WARMUP_START
    end: date = SCORED_END
    manual: bool = False  # paid manually rather than in payment runs
    first_tag: str = ""  # the first payment's tag (new suppliers)


@dataclass
class Generator:
    seed: int
    scale: float
    rng: random.Random = field(init=False)
    payments: list[Payment] = field(default_factory=list)
    names_used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.cal = {
            "emea-distribution": Calendar("Europe/Berlin", "DE"),
            "procurement": Calendar("Europe/Berlin", "DE"),
            "payroll": Calendar("Europe/Berlin", "DE"),
            "us-orders": Calendar("America/New_York", "US"),
        }
        self.ibans: set[str] = set()

    # -- helpers --------------------------------------------------------------------------------------

    def n(self, base: float) -> int:
        """A population size scaled by ``scale`` (randomised rounding, so small scales stay unbiased)."""
        value = base * self.scale
        whole = int(value)
        return whole + (1 if self.rng.random() < value - whole else 0)

    def iban(self, country: str) -> str:
        while True:
            if country == "US":
                value = f"US{self.rng.randrange(10**11, 10**12)}{self.rng.randrange(10**8, 10**9)}"
            else:
                value = f"{country}{self.rng.randrange(10, 99)}{self.rng.randrange(10**17, 10**18)}"
            if value not in self.ibans:
                self.ibans.add(value)
                return value

    def company(self, currency: str) -> str:
        for _ in range(50):
            words = [self.rng.choice(COMPANY_A), self.rng.choice(COMPANY_B)]
            if self.rng.random() < 0.3:
                words.insert(1, self.rng.choice(COMPANY_A))
            name = " ".join(words) + " " + self.rng.choice(LEGAL[currency])
            if normalise_name(name) not in self.names_used:
                self.names_used.add(normalise_name(name))
                return name
        raise RuntimeError("ran out of company names")

    def creditor(self, currency: str, name: str | None = None) -> Creditor:
        name = name or self.company(currency)
        iban = self.iban(self.rng.choice(IBAN_COUNTRY[currency]))
        prefix = "".join(w[0] for w in name.split()[:3]).upper() + str(self.rng.randrange(1, 99))
        return Creditor(name, [(WARMUP_START, iban)], style=self.rng.randrange(4), prefix=prefix)

    def emit(
        self,
        bu: str,
        at: datetime,
        currency: str,
        amount: float,
        debtor: str,
        account: dict[str, str],
        name: str,
        remittance: str,
        tag: str,
    ) -> None:
        items = tuple(sorted(account.items()))
        self.payments.append(
            Payment(
                at,
                bu,
                currency,
                to_minor(amount, currency),
                debtor,
                items,
                name,
                remittance,
                tag=tag,
                warmup=at.date() < SCORED_START,
                pair=(bu, debtor, items, currency),
            )
        )

    def time_of_day(self, bu: str, run: bool) -> float:
        """Local hour: payment runs at fixed times, manual payments during the day, rarely late."""
        r = self.rng.random()
        if run:
            start = {"emea-distribution": 9.5, "us-orders": 10.5, "procurement": 11.0}.get(bu, 10.0)
            if bu == "emea-distribution" and r < 0.35:
                start = 15.0
            return start + self.rng.uniform(0, 0.6)
        if r < 0.004:
            return self.rng.uniform(22.1, 23.5)  # late (legitimate, urgent)
        if r < 0.006:
            return self.rng.uniform(5.0, 5.95)  # early
        if r < 0.05:
            return self.rng.uniform(18.0, 21.9)
        return self.rng.triangular(7.5, 18.0, 10.5)

    def day_of(self, bu: str, day: date) -> date | None:
        cal = self.cal[bu]
        return day if day in cal.working_set else cal.next_working(day)

    # -- suppliers ------------------------------------------------------------------------------------

    def supplier_pairs(
        self, bu: str, debtors: dict[str, str], currencies: dict[str, float], plan: dict[str, int]
    ) -> list[PairSpec]:
        rng = self.rng
        pairs: list[PairSpec] = []
        cur_list = list(currencies)
        weights = list(currencies.values())

        def new(schedule: str, median: float, spread: float, **kw: Any) -> PairSpec:
            currency = rng.choices(cur_list, weights)[0]
            cred = self.creditor(currency)
            sigma_roll = rng.random()
            sigma = 0.0 if sigma_roll < 0.08 else rng.uniform(0.05, 0.2) if sigma_roll < 0.45 else rng.uniform(0.2, 0.5)
            base = lognormal(rng, median, spread)
            return PairSpec(cred, currency, debtors[currency], base, sigma, schedule, **kw)

        for _ in range(self.n(plan.get("frequent", 0))):
            p = new("frequent", 5000, 0.8, param=rng.uniform(1.5, 4.0), monthend_boost=bu == "emea-distribution")
            if bu == "us-orders" and rng.random() < 0.4:  # carriers bill (and are paid) per shipment
                p.per_invoice = rng.uniform(0.5, 3.5)
            elif rng.random() < 0.12:
                p.per_invoice = rng.uniform(0.4, 1.6)
            pairs.append(p)
        for _ in range(self.n(plan.get("weekly", 0))):
            p = new("weekly", 4000, 1.0, param=rng.choice([0, 1, 1, 2, 3, 3, 4]))
            if rng.random() < 0.1:
                p.per_invoice = rng.uniform(0.3, 1.2)
            pairs.append(p)
        for _ in range(self.n(plan.get("biweekly", 0))):
            pairs.append(new("biweekly", 4500, 1.0, param=rng.choice([1, 3])))
        for _ in range(self.n(plan.get("monthly", 0))):
            pairs.append(new("monthly", 5000, 1.2, param=rng.choice([5, 10, 15, 15, 20, 25, 28, 31])))
        for _ in range(self.n(plan.get("monthend", 0))):
            pairs.append(new("monthend", 12000, 1.0, monthend_boost=True))
        for _ in range(self.n(plan.get("strategic", 0))):
            p = new("monthly", 50000, 0.4, param=rng.choice([10, 15, 20]), quarterly=rng.uniform(1.5, 3.2))
            p.sigma = rng.uniform(0.08, 0.2)
            pairs.append(p)
        for _ in range(self.n(plan.get("recurring", 0))):
            p = new("recurring", 3000, 1.0, param=rng.choice([1, 1, 3, 5, 15]), manual=rng.random() < 0.3)
            p.sigma = 0.0
            kind = rng.choice(["Leasing contract", "Licence agreement", "Rent", "Maintenance contract", "Service fee"])
            if kind == "Rent":
                p.base = max(1000.0, round(p.base * 3 / 500) * 500)  # rents are round more often than not
            else:
                p.base = round(p.base, 2)
            p.fixed_remittance = f"{kind} {p.creditor.prefix}-{rng.randrange(1000, 9999)} monthly payment"
            pairs.append(p)
        # suppliers with a second account (a branch, another currency's account) used now and then
        for p in pairs:
            if p.schedule in ("weekly", "monthly") and rng.random() < 0.006:
                p.creditor.alt_account = self.iban(rng.choice(IBAN_COUNTRY[p.currency]))
        # suppliers that change their bank account once (legitimately) during the year
        for p in pairs:
            if rng.random() < 0.02:
                change = SCORED_START + timedelta(days=rng.randrange(0, 360))
                p.creditor.accounts.append((change, self.iban(p.creditor.accounts[0][1][:2])))
        # suppliers starting during the year: mostly small first payments, now and then a large one
        cal = self.cal[bu]
        for y, m in months():
            for _ in range(poisson(rng, plan.get("new_per_month", 0) * self.scale)):
                day = rng.choice(cal.by_month[(y, m)])
                large = rng.random() < 0.1
                p = new(rng.choice(["monthly", "monthly", "weekly", "once"]), 1, 0)
                p.base = lognormal(rng, 40000, 0.5) if large else min(20000.0, lognormal(rng, 1200, 0.9))
                p.sigma = rng.uniform(0.1, 0.4)
                p.start = day
                p.param = day.weekday() if p.schedule == "weekly" else day.day
                p.first_tag = "new_supplier_large" if large else "new_supplier_small"
                pairs.append(p)
        # look-alikes of blocked names, paid like everybody else
        if bu == "procurement":
            for name in LOOKALIKE_NAMES:
                p = new("monthly", 3000, 0.8, param=rng.choice([10, 20]))
                p.creditor = self.creditor(p.currency, name)
                pairs.append(p)
        return pairs

    def run_pairs(self, bu: str, pairs: list[PairSpec]) -> None:
        rng = self.rng
        cal = self.cal[bu]
        season = MONTH_SEASON[bu]
        for p in pairs:
            days: list[tuple[date, str]] = []  # (due day, tag)
            if p.schedule == "once":
                days.append((p.start, "new_supplier"))
            elif p.schedule == "frequent":
                for d in cal.working:
                    if p.start <= d < p.end:
                        prob = (
                            p.param / 5 * season[d.month - 1] * (1.8 if p.monthend_boost and d in cal.month_end else 1)
                        )
                        if rng.random() < prob:
                            days.append((d, "frequent"))
            elif p.schedule in ("weekly", "biweekly"):
                d = p.start + timedelta(days=(int(p.param) - p.start.weekday()) % 7)
                step = 7 if p.schedule == "weekly" else 14
                while d < p.end:
                    days.append((d, p.schedule))
                    d += timedelta(days=step)
            else:  # monthly, monthend, recurring
                for y, m in months():
                    if p.schedule == "monthend":
                        d = cal.nth_last(y, m, 2)
                    else:
                        last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)).day
                        d = date(y, m, min(int(p.param) or 1, last))
                    if p.start <= d < p.end:
                        days.append((d, p.schedule))
                    if p.quarterly and m in (3, 6, 9, 12):
                        days.append((cal.nth_last(y, m, 2), "quarter_end"))
            first = True
            for due, tag in days:
                day = self.day_of(bu, due)
                if day is None or day >= p.end:
                    continue
                if first and p.first_tag:
                    tag = p.first_tag
                first = False
                n_inv = 1 + poisson(rng, p.per_invoice) if p.per_invoice and tag in ("frequent", "weekly") else 1
                run = not p.manual and rng.random() < 0.8
                hour = self.time_of_day(bu, run)
                if rng.random() < 0.0015 and tag in ("frequent", "weekly", "monthly"):
                    day = day + timedelta(days=(5 - day.weekday()) % 7 or 1)  # urgent weekend payment
                    tag = "weekend_urgent"
                for k in range(n_inv):
                    factor = season[day.month - 1]
                    if p.monthend_boost and day in cal.month_end:
                        factor *= rng.uniform(1.1, 1.5)
                    if tag == "quarter_end":
                        factor *= p.quarterly
                    amount = p.base * factor * (math.exp(rng.gauss(0, p.sigma)) if p.sigma else 1.0)
                    if p.schedule == "recurring":
                        amount, remittance, t = p.base, p.fixed_remittance, "recurring_identical"
                    else:
                        remittance = p.creditor.invoice(day)
                        if tag == "quarter_end":
                            remittance = f"Q{(day.month - 1) // 3 + 1}/{day.year} settlement {p.creditor.prefix}"
                        t = tag if n_inv == 1 else "per_invoice_run"
                    iban = p.creditor.account_on(day, rng)
                    if p.creditor.seen and iban not in p.creditor.seen:
                        t = "second_account" if iban == p.creditor.alt_account else "bank_change"
                    p.creditor.seen.add(iban)
                    at = cal.at(day, hour + k * rng.uniform(0.003, 0.02))
                    self.emit(bu, at, p.currency, amount, p.debtor, {"iban": iban}, p.creditor.name, remittance, t)

    def advance_payments(self, bu: str, pairs: list[PairSpec], per_month: float) -> None:
        """Round down payments for capital goods to known suppliers (a hard negative for round amounts)."""
        rng = self.rng
        cal = self.cal[bu]
        known = [p for p in pairs if p.schedule in ("monthly", "weekly") and p.start == WARMUP_START]
        for y, m in months():
            for _ in range(poisson(rng, per_month * self.scale)):
                p = rng.choice(known)
                day = rng.choice(cal.by_month[(y, m)])
                amount = rng.choice([5000, 10000, 10000, 20000, 25000, 50000]) * rng.choice([1, 1, 2, 3])
                self.emit(
                    bu,
                    cal.at(day, self.time_of_day(bu, False)),
                    p.currency,
                    amount,
                    p.debtor,
                    {"iban": p.creditor.account_on(day, rng)},
                    p.creditor.name,
                    f"Down payment order PO-{rng.randrange(10**6, 10**7)} 30 percent",
                    "advance_round",
                )

    def refunds(self, bu: str, debtor: str, per_year: float) -> None:
        """Refunds to customers: new accounts, small amounts, common names."""
        rng = self.rng
        cal = self.cal[bu]
        per_day = per_year * self.scale / 250
        for day in cal.working:
            for _ in range(poisson(rng, per_day)):
                name = f"{rng.choice(US_FIRST)} {rng.choice(US_LAST)}"
                account = {"number": str(rng.randrange(10**8, 10**10)), "routing": f"0{rng.randrange(10**7, 10**8)}"}
                self.emit(
                    bu,
                    cal.at(day, self.time_of_day(bu, False)),
                    "USD",
                    lognormal(rng, 120, 0.9),
                    debtor,
                    account,
                    name,
                    f"Refund order {rng.randrange(10**7, 10**8)}",
                    "refund",
                )

    # -- payroll ----------------------------------------------------------------------------------------

    def payroll(self, employees_base: float) -> None:
        rng = self.rng
        bu = "payroll"
        cal = self.cal[bu]
        debtor = self.iban("DE")
        all_months = list(months())
        staff = []
        for i in range(self.n(employees_base)):
            joined = 0 if rng.random() < 0.9 else rng.randrange(1, len(all_months))
            left = len(all_months) if rng.random() < 0.92 else rng.randrange(joined + 1, len(all_months) + 1)
            salary = min(14000.0, max(1500.0, lognormal(rng, 3100, 0.35)))
            change = rng.randrange(len(all_months)) if rng.random() < 0.04 else -1
            staff.append(
                (
                    i,
                    f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    self.iban("DE"),
                    self.iban("DE"),
                    salary,
                    rng.random() < 0.15,
                    joined,
                    left,
                    change,
                    rng.random() < 0.7,
                    rng.random(),
                )
            )
        totals: list[float] = []
        for mi, (y, m) in enumerate(all_months):
            payday = cal.nth_last(y, m, 3)
            start_hour = rng.uniform(0.5, 1.5)  # the salary run is scheduled at night
            total = 0.0
            for k, (i, name, iban, iban2, salary, hourly, joined, left, change, xmas, luck) in enumerate(staff):
                if not joined <= mi < left:
                    continue
                raises = sum(1 for yy, mm in all_months[1 : mi + 1] if mm == 1)
                amount = salary * (1.03**raises)
                tag = "salary"
                if hourly:
                    amount *= math.exp(rng.gauss(0, 0.08))
                    tag = "salary_hourly"
                if mi == joined and joined > 0:
                    amount *= rng.uniform(0.3, 1.0)
                    tag = "salary_joiner"
                elif mi == left - 1 and left < len(all_months) and luck < 0.6:
                    amount *= rng.uniform(1.3, 3.0)
                    tag = "salary_final_settlement"
                elif m == 11 and xmas:
                    amount *= rng.uniform(1.4, 1.9)
                    tag = "salary_christmas_bonus"
                elif m == 3 and luck < 0.3:
                    amount *= rng.uniform(1.2, 2.2) if salary < 6000 else rng.uniform(1.5, 3.0)
                    tag = "salary_profit_share"
                account = iban2 if change >= 0 and mi >= change else iban
                if change > 0 and mi == change:
                    tag = "salary_bank_change"
                total += amount
                at = cal.at(payday, start_hour + k * 4.0 / 3600)
                self.emit(
                    bu,
                    at,
                    "EUR",
                    round(amount, 2),
                    debtor,
                    {"iban": account},
                    name,
                    f"Gehalt {m:02d}/{y} PersNr {10000 + i}",
                    tag,
                )
            totals.append(total)
        # wage tax and social insurance on the 10th (for last month's payroll)
        bodies = [
            ("Finanzamt Muenchen Lohnsteuer", 0.27),
            ("AOK Bayern", 0.12),
            ("Techniker Krankenkasse", 0.11),
            ("Barmer", 0.07),
            ("DAK Gesundheit", 0.05),
            ("Versorgungswerk Pensionskasse", 0.04),
        ]
        accounts = [(name, share, self.iban("DE")) for name, share in bodies]
        for mi, (y, m) in enumerate(all_months[1:], start=1):
            day = self.day_of(bu, date(y, m, 10))
            if day is None:
                continue
            for name, share, iban in accounts:
                amount = totals[mi - 1] * share * math.exp(rng.gauss(0, 0.02))
                self.emit(
                    bu,
                    cal.at(day, rng.uniform(9, 11)),
                    "EUR",
                    amount,
                    debtor,
                    {"iban": iban},
                    name,
                    f"Beitragsnachweis {m - 1 or 12:02d}/{y if m > 1 else y - 1} BBNR {rng.randrange(10**7, 10**8)}",
                    "payroll_tax",
                )

    # -- the whole normal stream -----------------------------------------------------------------------

    def normal(self) -> None:
        emea_debtors = {"EUR": self.iban("DE"), "GBP": self.iban("GB"), "CHF": self.iban("CH")}
        emea = self.supplier_pairs(
            "emea-distribution",
            emea_debtors,
            {"EUR": 0.85, "GBP": 0.1, "CHF": 0.05},
            {
                "frequent": 50,
                "weekly": 220,
                "biweekly": 180,
                "monthly": 650,
                "monthend": 40,
                "strategic": 20,
                "recurring": 40,
                "new_per_month": 6,
            },
        )
        self.run_pairs("emea-distribution", emea)
        us_debtor = self.iban("US")
        us = self.supplier_pairs(
            "us-orders",
            {"USD": us_debtor},
            {"USD": 1.0},
            {"frequent": 35, "weekly": 150, "monthly": 400, "strategic": 10, "recurring": 20, "new_per_month": 4},
        )
        self.run_pairs("us-orders", us)
        self.refunds("us-orders", us_debtor, 7000)
        proc_debtors = {"EUR": self.iban("DE"), "USD": self.iban("DE"), "GBP": self.iban("DE")}
        proc = self.supplier_pairs(
            "procurement",
            proc_debtors,
            {"EUR": 0.9, "USD": 0.05, "GBP": 0.05},
            {"weekly": 60, "monthly": 700, "strategic": 15, "recurring": 60, "new_per_month": 15},
        )
        self.run_pairs("procurement", proc)
        self.advance_payments("procurement", proc, 2.0)
        self.advance_payments("emea-distribution", emea, 0.5)
        self.payroll(1000)


# -- anomalies ---------------------------------------------------------------------------------------------


class Injector:
    """Adds labelled anomalies to a normal stream (templates: real normal payments of the scored year)."""

    def __init__(self, gen: Generator, blocklist: dict[str, Any]) -> None:
        self.gen = gen
        self.rng = gen.rng
        self.out: list[Payment] = []
        self.incidents = 0
        self.blocked_names = [str(n) for n in blocklist.get("names") or []]
        self.blocked_accounts = [canonical_account(a, "blocklist") for a in blocklist.get("accounts") or []]
        # how many earlier payments each payment's pair had, and the pair's amounts so far
        ordered = sorted(gen.payments, key=lambda p: p.at)
        seen: dict[Any, list[int]] = defaultdict(list)
        self.known: list[tuple[Payment, int]] = []  # (scored normal payment of a known pair, its usual amount)
        self.scored: list[Payment] = []
        for p in ordered:
            history = seen[p.pair]
            if not p.warmup:
                self.scored.append(p)
                if len(history) >= 3 and not p.tag.startswith(("new_supplier", "refund")):
                    self.known.append((p, int(statistics.median(history[-12:]))))
            history.append(p.minor)

    def pick(self, pool: list[Any], exclude_payroll: bool) -> Any:
        while True:
            item = self.rng.choice(pool)
            p = item[0] if isinstance(item, tuple) else item
            if not (exclude_payroll and p.bu == "payroll"):
                return item

    def add(self, template: Payment, kind: str, tag: str, **changes: Any) -> Payment:
        fields = {
            "at": template.at + timedelta(seconds=self.rng.randrange(30, 1800)),
            "bu": template.bu,
            "currency": template.currency,
            "minor": template.minor,
            "debtor": template.debtor,
            "account": template.account,
            "name": template.name,
            "remittance": template.remittance,
        }
        fields.update(changes)
        p = Payment(**fields, kind=kind, tag=tag, incident=self.incidents)
        self.incidents += 1
        self.out.append(p)
        return p

    def invoice_text(self) -> str:
        return f"Invoice {self.rng.randrange(2025, 2027)}-{self.rng.randrange(10**4, 10**6)}"

    def new_account(self, currency: str) -> tuple[tuple[str, str], ...]:
        country = self.rng.choice(FRAUD_COUNTRIES)
        return (("iban", self.gen.iban(country)),)

    def inject(self, budget: dict[str, int]) -> None:
        rng = self.rng
        for kind in KINDS:
            n = budget[kind]
            if kind == "velocity":
                while n > 0:
                    size = min(n, rng.randint(12, 40))
                    if n - size < 12 and n - size > 0:
                        size = n
                    self.burst(size)
                    n -= size
                continue
            for _ in range(n):
                getattr(self, kind)()

    def burst(self, size: int) -> None:
        """Many payments to one creditor within the hour: a runaway re-send or a compromised login."""
        rng = self.rng
        template, usual = self.pick(self.known, exclude_payroll=True)
        incident = self.incidents
        if rng.random() < 0.5:
            account, name, tag = template.account, template.name, "burst_known_creditor"
            amounts = [usual * math.exp(rng.gauss(0, 0.3)) for _ in range(size)]
        else:
            account, name, tag = self.new_account(template.currency), self.gen.company("EUR"), "burst_new_account"
            amounts = [lognormal(rng, 6000, 0.6) * 10 ** minor_units(template.currency) for _ in range(size)]
        span = rng.uniform(15, 55) * 60
        offsets = sorted(rng.uniform(0, span) for _ in range(size))
        for off, amount in zip(offsets, amounts, strict=True):
            p = self.add(
                template,
                "velocity",
                tag,
                at=template.at + timedelta(seconds=off),
                minor=max(100, int(amount)),
                account=account,
                name=name,
                remittance=self.invoice_text(),
            )
            p.incident = incident
        self.incidents = incident + 1

    def amount_outlier(self) -> None:
        template, usual = self.pick(self.known, exclude_payroll=False)
        factor = math.exp(self.rng.uniform(math.log(20), math.log(100)))
        remittance = template.remittance if template.bu == "payroll" else self.invoice_text()
        self.add(
            template, "amount_outlier", f"x{int(factor // 10 * 10)}", minor=int(usual * factor), remittance=remittance
        )

    def new_beneficiary(self) -> None:
        template = self.pick(self.scored, exclude_payroll=True)
        amount = math.exp(self.rng.uniform(math.log(30_000), math.log(400_000)))
        self.add(
            template,
            "new_beneficiary",
            "new_large",
            minor=to_minor(amount, template.currency),
            account=self.new_account(template.currency),
            name=self.gen.company(template.currency),
            remittance=self.invoice_text(),
        )

    def duplicate(self) -> None:
        rng = self.rng
        template = self.pick(self.scored, exclude_payroll=False)
        at = template.at + timedelta(seconds=rng.randrange(600, 20 * 3600))
        roll = rng.random()
        if roll < 0.6:
            self.add(template, "duplicate", "exact_resend", at=at)
        elif roll < 0.75:  # the remittance typed again
            words = template.remittance.replace("Invoice", "Inv.").replace("Rechnung Nr.", "RE")
            self.add(template, "duplicate", "near_remittance", at=at, remittance=words.upper())
        elif roll < 0.9:  # a bank fee taken off
            fee = max(1, int(template.minor * rng.uniform(0.001, 0.006)))
            self.add(template, "duplicate", "near_fee", at=at, minor=template.minor - fee)
        else:  # paid once with and once without the 2 % cash discount
            self.add(template, "duplicate", "near_discount", at=at, minor=round(template.minor * 0.98))

    def round_amount(self) -> None:
        template, _ = self.pick(self.known, exclude_payroll=True)
        units = 10 ** minor_units(template.currency)
        step = self.rng.choice([1000, 5000])
        amount = max(10_000, round(math.exp(self.rng.uniform(math.log(10_000), math.log(150_000))) / step) * step)
        self.add(
            template,
            "round_amount",
            f"multiple_{step}",
            minor=amount * units,
            remittance=f"Advance payment {self.rng.randrange(10**5, 10**6)}",
        )

    def business_hours(self) -> None:
        rng = self.rng
        template, usual = self.pick(self.known, exclude_payroll=True)
        cal = self.gen.cal[template.bu]
        local_day = template.at.astimezone(cal.zone).date()
        roll = rng.random()
        if roll < 0.4:
            tag, day, hour = "night", local_day + timedelta(days=1), rng.uniform(0.0, 5.0)
        elif roll < 0.8:
            tag, day, hour = (
                "weekend",
                local_day + timedelta(days=5 - local_day.weekday() + rng.randrange(2)),
                rng.uniform(8, 20),
            )
        else:
            tag = "public_holiday"
            day, hour = rng.choice(cal.public_holidays), rng.uniform(9, 17)
        at = cal.at(day, hour)
        if at.date() >= SCORED_END:
            tag, at = "night", cal.at(local_day, 2.0)
        self.add(
            template,
            "business_hours",
            tag,
            at=at,
            minor=int(usual * math.exp(rng.gauss(0, 0.15))),
            remittance=self.invoice_text(),
        )

    def account_change(self) -> None:
        template, usual = self.pick(self.known, exclude_payroll=False)
        name = template.name.upper() if self.rng.random() < 0.3 else template.name
        self.add(
            template,
            "account_change",
            "payroll_diversion" if template.bu == "payroll" else "supplier_bank_details",
            account=self.new_account(template.currency),
            name=name,
            minor=int(usual * math.exp(self.rng.gauss(0, 0.05))),
            remittance=template.remittance if template.bu == "payroll" else self.invoice_text(),
        )

    def blocklist(self) -> None:
        rng = self.rng
        template = self.pick(self.scored, exclude_payroll=True)
        amount = lognormal(rng, 8000, 0.8)
        if self.blocked_accounts and rng.random() < 0.2:
            account = tuple(sorted(rng.choice(self.blocked_accounts).items()))
            name, tag = self.gen.company(template.currency), "blocked_account"
        else:
            name = rng.choice(self.blocked_names)
            variant = rng.randrange(4)
            if variant == 1:
                name = name.upper()
            elif variant == 2:  # another legal form
                name = (
                    " ".join(w for w in name.split() if normalise_name(w)) + " " + rng.choice(["Limited", "AG", "BV"])
                )
            elif variant == 3:  # more words around it
                name = f"{name} (Branch {rng.choice(['Cyprus', 'Dubai', 'Riga'])})"
            account, tag = self.new_account(template.currency), f"blocked_name_{variant}"
        self.add(
            template,
            "blocklist",
            tag,
            minor=to_minor(amount, template.currency),
            account=account,
            name=name,
            remittance=self.invoice_text(),
        )


def generate(count: int, anomaly_rate: float, seed: int, blocklist: dict[str, Any]) -> list[Payment]:
    """Warm-up plus exactly ``count`` scored payments, ``round(count * anomaly_rate)`` of them anomalies."""
    n_anomalies = round(count * anomaly_rate)
    target = count - n_anomalies
    scale = count / 96_000
    for _ in range(5):
        gen = Generator(seed, scale)
        gen.normal()
        scored = sum(1 for p in gen.payments if not p.warmup)
        if scored >= target:
            break
        scale *= 1.03 * target / max(1, scored)
    else:
        raise RuntimeError("could not generate enough normal payments")
    # trim the surplus from the frequent, interchangeable kinds (invoices of busy pairs, refunds)
    surplus = scored - target
    trimmable = [i for i, p in enumerate(gen.payments) if not p.warmup and p.tag in ("frequent", "refund", "weekly")]
    drop = set(gen.rng.sample(trimmable, surplus)) if surplus <= len(trimmable) else set(trimmable)
    gen.payments = [p for i, p in enumerate(gen.payments) if i not in drop]
    injector = Injector(gen, blocklist)
    base, extra = divmod(n_anomalies, len(KINDS))
    budget = {kind: base + (1 if i < extra else 0) for i, kind in enumerate(KINDS)}
    injector.inject(budget)
    stream = gen.payments + injector.out
    stream.sort(key=lambda p: p.at)
    return stream


# -- screening and scoring -------------------------------------------------------------------------------


def screen_all(
    engine: RiskEngine, stream: list[Payment]
) -> tuple[list[tuple[Payment, Outcome, tuple[str, ...]]], list[int], History]:
    history = engine.new_history()
    fp = engine.fingerprints
    keys: dict[Any, str] = {}
    results = []
    timings: list[int] = []
    last_prune = stream[0].at if stream else None
    perf = time.perf_counter_ns
    hold_like = (Outcome.HOLD, Outcome.REJECT)
    for ids, p in enumerate(stream, start=1):
        ckey = keys.get(p.account)
        if ckey is None:
            ckey = keys[p.account] = fp.account(dict(p.account))
        dkey = keys.get(p.debtor)
        if dkey is None:
            dkey = keys[p.debtor] = fp.account({"iban": p.debtor})
        c = Candidate(
            instruction_id=f"q{ids}",
            business_unit=p.bu,
            at=p.at,
            type="credit_transfer",
            currency=p.currency,
            amount=Decimal(p.minor).scaleb(-minor_units(p.currency)),
            amount_minor=p.minor,
            debtor_key=dkey,
            creditor_key=ckey,
            debtor_name=normalise_name(p.bu),
            creditor_name=normalise_name(p.name),
            remittance=normalise_text(p.remittance),
            creditor_account=dict(p.account),
        )
        t0 = perf()
        s = engine.screen(c, history)
        timings.append(perf() - t0)
        if s.outcome in hold_like and p.kind == NORMAL:
            history.learn_only(c)  # finance approves the held payment: it teaches what is usual
        if (p.at - last_prune).total_seconds() > 86_400:
            history.prune(p.at, KEEP_SECONDS)
            last_prune = p.at
        if not p.warmup:
            results.append((p, s.outcome, tuple(f.rule for f in s.findings)))
    return results, timings, history


def score(results: list[tuple[Payment, Outcome, tuple[str, ...]]]) -> dict[str, Any]:
    hold_like = (Outcome.HOLD, Outcome.REJECT)
    by_kind: dict[str, dict[str, Any]] = {}
    injected = Counter(p.kind for p, _, _ in results)
    fired = Counter()  # rule -> payments where it fired (and so the outcome was not pass)
    fired_right = Counter()  # ... of the rule's own kind
    fired_anomalous = Counter()
    for p, _outcome, rules in results:
        for r in set(rules):
            fired[r] += 1
            if p.kind == r:
                fired_right[r] += 1
            if p.kind != NORMAL:
                fired_anomalous[r] += 1
    for kind in KINDS:
        rows = [(p, o, r) for p, o, r in results if p.kind == kind]
        detected = [(p, o, r) for p, o, r in rows if o is not Outcome.PASS and kind in r]
        held = sum(1 for _, o, _ in detected if o in hold_like)
        n = len(rows)
        incidents = defaultdict(bool)
        for p, o, r in rows:
            incidents[p.incident] |= o is not Outcome.PASS and kind in r
        variants: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for p, o, r in rows:
            variants[p.tag][0] += 1
            variants[p.tag][1] += int(o is not Outcome.PASS and kind in r)
        by_kind[kind] = {
            "injected": n,
            "detected": len(detected),
            "recall": round(len(detected) / n, 4) if n else None,
            "precision": round(fired_right[kind] / fired[kind], 4) if fired[kind] else None,
            "held": held,
            "flagged_only": len(detected) - held,
            "detected_any_rule": sum(1 for _, o, _ in rows if o is not Outcome.PASS),
            "held_any_rule": sum(1 for _, o, _ in rows if o in hold_like),
            "incidents": len(incidents),
            "incident_recall": round(sum(incidents.values()) / len(incidents), 4) if incidents else None,
            "rule_alerts": fired[kind],
            "rule_alerts_on_anomalies": fired_anomalous[kind],
            "variants": {t: {"injected": a, "detected": b} for t, (a, b) in sorted(variants.items())},
        }
    normal = [(p, o, r) for p, o, r in results if p.kind == NORMAL]
    anomalies = [(p, o, r) for p, o, r in results if p.kind != NORMAL]
    n_normal = len(normal)
    normal_held = sum(1 for _, o, _ in normal if o in hold_like)
    normal_flagged = sum(1 for _, o, _ in normal if o is Outcome.FLAG)
    alerts = [(p, o) for p, o, _ in results if o is not Outcome.PASS]
    holds = [(p, o) for p, o in alerts if o in hold_like]
    detected = sum(v["detected"] for v in by_kind.values())
    by_tag: dict[str, dict[str, int]] = defaultdict(lambda: {"count": 0, "held": 0, "flagged": 0})
    normal_rules = Counter()
    for p, o, r in normal:
        row = by_tag[p.tag]
        row["count"] += 1
        row["held"] += int(o in hold_like)
        row["flagged"] += int(o is Outcome.FLAG)
        for rule in r:
            normal_rules[(rule, "held" if o in hold_like else "flagged")] += 1
    return {
        "anomalies": len(anomalies),
        "normal": n_normal,
        "injected": dict(injected),
        "recall": round(detected / len(anomalies), 4) if anomalies else None,
        "recall_any_rule": round(sum(1 for _, o, _ in anomalies if o is not Outcome.PASS) / len(anomalies), 4)
        if anomalies
        else None,
        "hold_recall": round(sum(1 for _, o, _ in anomalies if o in hold_like) / len(anomalies), 4)
        if anomalies
        else None,
        "precision": round(sum(1 for p, _ in alerts if p.kind != NORMAL) / len(alerts), 4) if alerts else None,
        "hold_precision": round(sum(1 for p, _ in holds if p.kind != NORMAL) / len(holds), 4) if holds else None,
        "normal_hold_rate": round(normal_held / n_normal, 5) if n_normal else None,
        "normal_flag_rate": round(normal_flagged / n_normal, 5) if n_normal else None,
        "normal_held": normal_held,
        "normal_flagged": normal_flagged,
        "by_kind": by_kind,
        "normal_by_tag": {t: v for t, v in sorted(by_tag.items())},
        "normal_alerts_by_rule": {f"{rule}/{how}": n for (rule, how), n in sorted(normal_rules.items())},
    }


def eur(p: Payment) -> float:
    return p.minor / 10 ** minor_units(p.currency) * EUR_RATE.get(p.currency, 1.0)


def baselines(results: list[tuple[Payment, Outcome, tuple[str, ...]]], hold_rate: float) -> dict[str, Any]:
    """Naive static thresholds on the amount alone, measured on the same stream."""
    normal = sorted(eur(p) for p, _, _ in results if p.kind == NORMAL)
    anomalies = [eur(p) for p, _, _ in results if p.kind != NORMAL]
    out: dict[str, Any] = {}
    # 1. one amount threshold that holds the same share of normal payments as the engine
    k = max(1, round(hold_rate * len(normal)))
    threshold = normal[-k] if normal else 0.0
    out["same_hold_rate"] = {
        "threshold_eur": round(threshold, 2),
        "recall": round(sum(1 for a in anomalies if a >= threshold) / len(anomalies), 4) if anomalies else None,
        "normal_hold_rate": round(sum(1 for a in normal if a >= threshold) / len(normal), 5) if normal else None,
    }
    # 2. hold everything above three times the median payment
    median = statistics.median(normal) if normal else 0.0
    out["three_x_median"] = {
        "threshold_eur": round(3 * median, 2),
        "recall": round(sum(1 for a in anomalies if a > 3 * median) / len(anomalies), 4) if anomalies else None,
        "normal_hold_rate": round(sum(1 for a in normal if a > 3 * median) / len(normal), 5) if normal else None,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="scored payments (default 100000)")
    parser.add_argument("--anomaly-rate", type=float, default=0.02, help="share of injected anomalies (default 0.02)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="risk file (default config/risk.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    parser.add_argument("--profile", action="store_true", help="profile the screening loop (top functions, stderr)")
    args = parser.parse_args(argv)
    if args.count < 1000 or not 0 < args.anomaly_rate < 0.5:
        parser.error("--count must be at least 1000 and --anomaly-rate between 0 and 0.5")

    import yaml

    started = time.perf_counter()
    config = Path(args.config)
    engine = load_risk(config, Plugins().risk_rule_classes(), b"k" * 32)
    blocklist: dict[str, Any] = {}
    blocklist_rule = next((r for p in engine.all_policies() for r in p.rules if r.name == "blocklist"), None)
    if blocklist_rule is not None and blocklist_rule.options.get("file"):
        blocklist = yaml.safe_load((config.resolve().parent / blocklist_rule.options["file"]).read_text()) or {}
    if not blocklist:
        blocklist = yaml.safe_load((ROOT / "config" / "blocklist.yaml").read_text()) or {}
    stream = generate(args.count, args.anomaly_rate, args.seed, blocklist)
    generated = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        results, timings, _ = screen_all(engine, stream)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        results, timings, _ = screen_all(engine, stream)
    screened = time.perf_counter()
    report = score(results)
    base = baselines(results, report["normal_hold_rate"] or 0.0)
    median_us = statistics.median(timings) / 1000 if timings else 0.0
    summary: dict[str, Any] = {
        "bench": "risk_quality",
        "count": len(results),
        "warmup": len(stream) - len(results),
        "anomalies": report["anomalies"],
        "recall": report["recall"],
        "precision": report["precision"],
        "normal_hold_rate": report["normal_hold_rate"],
        "normal_flag_rate": report["normal_flag_rate"],
        "recall_any_rule": report["recall_any_rule"],
        "hold_recall": report["hold_recall"],
        "hold_precision": report["hold_precision"],
        "by_kind": {
            k: {
                f: v[f]
                for f in (
                    "injected",
                    "detected",
                    "recall",
                    "precision",
                    "held",
                    "flagged_only",
                    "detected_any_rule",
                    "incident_recall",
                    "rule_alerts",
                )
            }
            | {"rule_alerts_on_normal": v["rule_alerts"] - v["rule_alerts_on_anomalies"]}
            for k, v in report["by_kind"].items()
        },
        "baseline": base,
        "recall_vs_baseline": round(report["recall"] / base["same_hold_rate"]["recall"], 3)
        if report["recall"] and base["same_hold_rate"]["recall"]
        else None,
        "hold_recall_vs_baseline": round(report["hold_recall"] / base["same_hold_rate"]["recall"], 3)
        if report["hold_recall"] and base["same_hold_rate"]["recall"]
        else None,
        "median_us_per_payment": round(median_us, 1),
        "generate_seconds": round(generated - started, 2),
        "screen_seconds": round(screened - generated, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "seed": args.seed,
        "config": str(config),
    }
    print_report(summary, report)
    if args.json:
        summary["normal_by_tag"] = report["normal_by_tag"]
        summary["normal_alerts_by_rule"] = report["normal_alerts_by_rule"]
        summary["variants"] = {k: v["variants"] for k, v in report["by_kind"].items()}
        print(json.dumps(summary, separators=(",", ":")))
    return 0


def print_report(summary: dict[str, Any], report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def pct(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{100 * value:.{digits}f} %"

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(
        title=f"Risk screening quality: {summary['count']:,} payments, {summary['anomalies']:,} injected "
        f"anomalies (seed {summary['seed']}, {summary['config']})"
    )
    for column in (
        "kind",
        "injected",
        "detected",
        "recall",
        "held",
        "flag only",
        "any rule",
        "incidents",
        "precision",
        "rule alerts",
        "on normal",
    ):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, v in report["by_kind"].items():
        table.add_row(
            kind,
            f"{v['injected']:,}",
            f"{v['detected']:,}",
            pct(v["recall"]),
            f"{v['held']:,}",
            f"{v['flagged_only']:,}",
            pct(v["detected_any_rule"] / v["injected"] if v["injected"] else None),
            pct(v["incident_recall"]),
            pct(v["precision"]),
            f"{v['rule_alerts']:,}",
            f"{v['rule_alerts'] - v['rule_alerts_on_anomalies']:,}",
        )
    table.add_section()
    detected = sum(v["detected"] for v in report["by_kind"].values())
    table.add_row(
        "all anomalies",
        f"{summary['anomalies']:,}",
        f"{detected:,}",
        pct(summary["recall"]),
        f"{sum(v['held'] for v in report['by_kind'].values()):,}",
        f"{sum(v['flagged_only'] for v in report['by_kind'].values()):,}",
        pct(summary["recall_any_rule"]),
        "",
        pct(summary["precision"]),
        "",
        f"{report['normal_held'] + report['normal_flagged']:,}",
    )
    console.print(table)

    tags = Table(title="Normal payments by type (hard negatives): share held / flagged")
    for column in ("type", "count", "held", "held %", "flagged", "flagged %"):
        tags.add_column(column, justify="left" if column == "type" else "right")
    for tag, v in report["normal_by_tag"].items():
        tags.add_row(
            tag,
            f"{v['count']:,}",
            f"{v['held']:,}",
            pct(v["held"] / v["count"], 2),
            f"{v['flagged']:,}",
            pct(v["flagged"] / v["count"], 2),
        )
    console.print(tags)

    base = summary["baseline"]["same_hold_rate"]
    three = summary["baseline"]["three_x_median"]
    lines = [
        f"recall {pct(summary['recall'])} (any rule {pct(summary['recall_any_rule'])}, "
        f"held {pct(summary['hold_recall'])}); "
        f"precision {pct(summary['precision'])} of alerts, {pct(summary['hold_precision'])} of holds",
        f"normal payments: held {pct(summary['normal_hold_rate'], 2)} ({report['normal_held']:,}), "
        f"flagged {pct(summary['normal_flag_rate'], 2)} ({report['normal_flagged']:,}) of {report['normal']:,}",
        f"normal alerts by rule: {', '.join(f'{k} {v:,}' for k, v in report['normal_alerts_by_rule'].items())}",
        f"baseline (hold every payment >= {base['threshold_eur']:,.0f} EUR, same normal hold rate "
        f"{pct(base['normal_hold_rate'], 2)}): recall {pct(base['recall'])}; engine/baseline recall "
        f"{summary['recall_vs_baseline']} (held only: {summary['hold_recall_vs_baseline']})",
        f"baseline (hold every payment > 3 x median = {three['threshold_eur']:,.0f} EUR): "
        f"recall {pct(three['recall'])} "
        f"at a normal hold rate of {pct(three['normal_hold_rate'], 2)}",
        f"time: median {summary['median_us_per_payment']} µs per payment screened "
        f"({summary['count'] + summary['warmup']:,} incl. {summary['warmup']:,} warm-up); generate "
        f"{summary['generate_seconds']} s, screen {summary['screen_seconds']} s, total {summary['seconds']} s",
    ]
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
