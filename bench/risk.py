"""Risk screening benchmark: cost per instruction of ``Screener.evaluate`` against a store of 1M payments.

Target (the issue): screening takes ≤ 1 ms median per instruction with 1,000,000
stored instructions.

**Preparation** (cached). The bench builds a database holding ``--stored``
instructions (default 1,000,000) and the risk history those payments left, by
running a generated stream through the shipped rules (``config/risk.yaml``) in
an in-memory ``History`` (``RiskEngine.screen``) and writing its state out with
bulk inserts: velocity counters, pair statistics (up to 32 amounts per pair),
known beneficiaries, names, recent payments. The world: 8 business units, 200
debtor accounts, 20,000 creditor accounts (popularity skewed), ~27,000 pairs,
``--days`` (30) of traffic ending on a fixed Tuesday afternoon, mostly in
business hours, with a sprinkle of outliers, round amounts, duplicates and
account changes. Counters and recent payments are kept as far back as the
gateway's pruner keeps them; ``--no-prune`` keeps all of
them (a gateway whose pruner never ran). Instruction rows carry placeholder
ciphertext (screening never reads stored accounts); a pool of ``--pool`` further
instructions is stored ``received``, with real encrypted accounts: those are
screened.

SQLite: the file is cached under ``var/bench/`` keyed by the parameters and by
what shapes the history (risk.yaml, the risk and schema code: ``SHAPING_FILES``),
so re-runs skip preparation (~4 min at 1M on a small VM); ``--fresh`` rebuilds.
PostgreSQL (``--database-url``): everything lives in the schema ``bench_risk``
(dropped and recreated when stale), nothing else in that database is touched.

**Measurement.** Candidates are built as the dispatcher builds them: the batch's
rows are loaded and decrypted (``Orders.load_many``' query), then
``Screener.candidate``. Pool payments mix known pairs (history hit), known
creditors with new debtors, new creditors, outliers, round amounts, duplicates
of stored recent payments and a credit-limited counterparty. Each measurement is
one transaction (``conn.begin()``: ``Screener.evaluate``: on SQLite the history
and credit limit reads, the rules, credit reservation and the history upserts in
one trip to the driver's thread; on PostgreSQL the reads as one statement, the
rules, credit reservation, the upserts as one statement;
``--statement-by-statement``: one round trip per statement, as before) that is
then **rolled back**, so
every run starts from the same state; the commit (WAL append + fsync on SQLite)
is therefore not included (``--commit`` includes it, on a throw-away copy).

* single: one instruction per transaction (latency; median, p90, p99);
* batch: 32 instructions per transaction (the dispatcher's batch): batch time / 32.

Baseline, measured interleaved in the same run on the same database: the
dispatcher's own load of the same instructions (``Orders.load_many``: one
``SELECT … WHERE id IN (…)`` joined to business units, plus decryption), also in
a rolled-back transaction. The ratio is screening / baseline.

    .venv/bin/python bench/risk.py                    # SQLite, 1M stored (first run prepares, ~minutes)
    .venv/bin/python bench/risk.py --json             # + one JSON object, last stdout line
    .venv/bin/python bench/risk.py --profile          # + cProfile of the screening loop (stderr)
    .venv/bin/python bench/risk.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Not part of the test suite (tests/risk/test_risk_bench.py runs it tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import math
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import load_settings
from gateway.domain.accounts import Party, parse_account
from gateway.domain.instruction import InstructionData
from gateway.domain.money import Money
from gateway.partners.adapter import PaymentOrder
from gateway.plugins.manager import Plugins
from gateway.risk import credit
from gateway.risk.engine import RiskEngine, fingerprint_key, load_risk
from gateway.risk.history import KEEP_BUCKETS, History, Recent
from gateway.risk.model import Candidate, Outcome, Screening
from gateway.risk.screening import Screener
from gateway.risk.store import HistoryQueries, counter_row, load_history, recent_row, save_history
from gateway.store.bulk import fetch_all, insert_rows
from gateway.store.codec import InstructionCodec
from gateway.store.db import create_engine
from gateway.store.encryption import FieldCipher, parse_key_ring
from gateway.store.migrate import head_revision, upgrade
from gateway.store.orders import fetch_orders
from gateway.store.tables import (
    business_units,
    instructions,
    risk_beneficiaries,
    risk_counters,
    risk_names,
    risk_pairs,
    risk_recent,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "gateway.yaml"
CACHE_DIR = ROOT / "var" / "bench"
PG_SCHEMA = "bench_risk"
#: bump when the generated data changes meaning (invalidates every cache)
DATA_VERSION = 3
BATCH = 32
TARGET_MS = 1.0
#: the stream ends here (a Tuesday, 14:00 in Berlin); the pool arrives right after
T_END = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
PLACEHOLDER = "bench$not-encrypted"  # instruction rows of the stream: screening never reads accounts
HISTORY_TABLES = (risk_counters, risk_pairs, risk_beneficiaries, risk_names, risk_recent)

#: (name, currency); one business unit per currency-ish, "payroll" has its own policy in risk.yaml
UNITS: tuple[tuple[str, str], ...] = (
    ("procurement", "EUR"),
    ("payroll", "EUR"),
    ("treasury", "EUR"),
    ("marketplace", "EUR"),
    ("logistics", "EUR"),
    ("facilities", "EUR"),
    ("uk-services", "GBP"),
    ("us-orders", "USD"),  # has its own policy in risk.yaml (timezone, velocity) when configured
)


def _words(text: str) -> list[str]:
    return text.split()


_WORDS_A = _words(
    "Nordic Baltic Alpine Atlantic Central Coastal Delta Eastern Golden Green Harbor Iron Lakeside Lunar "
    "Metro Northern Pacific Polar Prime Rapid Royal Silver Solar Southern Summit United Urban Western "
    "Zenith Blue"
)
_WORDS_B = _words(
    "Parts Logistics Supplies Foods Metals Textiles Systems Energy Freight Paper Tools Chemicals Media "
    "Labs Motors Plastics Glass Timber Pharma Cables Optics Robotics Packaging Printing Fabrics Solutions "
    "Ceramics Components Instruments Services"
)
_WORDS_C = _words(
    "Trading Holding Industries Group Partners Works Supply Distribution International Consulting Europe "
    "Nord Sud Ost West One Plus Direct Express Global Networks Brothers Alliance Union Factory Company "
    "Enterprises Collective Associates Ventures"
)
_LEGAL = ("GmbH", "AB", "Ltd", "SA", "BV", "AG", "Oy", "SRL", "Inc", "")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """Something around the measurement failed (bad arguments, unreachable database, ...)."""


# -- the generated world -------------------------------------------------------------------


def _iban(country: str, bban: str) -> str:
    digits = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{country}{98 - int(digits) % 97:02d}{bban}"


def _routing(n: int) -> str:
    head = f"{n % 100_000_000:08d}"
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    return head + str(-sum(int(d) * w for d, w in zip(head, weights, strict=True)) % 10)


def account_for(currency: str, n: int) -> dict[str, str]:
    """A valid account (canonical form, as instructions store it) for the n-th party of a currency."""
    if currency == "USD":
        return {"number": f"{7_000_000_000 + n}", "routing": _routing(21_000_000 + n % 997)}
    if currency == "GBP":
        return {"iban": _iban("GB", f"NWBK{600000 + n % 400000:06d}{n % 100_000_000:08d}")}
    return {"iban": _iban("DE", f"{37040044 + (n % 50) * 1000:08d}{n:010d}")}


@dataclass(slots=True)
class Creditor:
    index: int
    unit: int
    name: str
    norm: str  # normalise_name(name)
    account: dict[str, str]
    key: str
    median_minor: int
    debtors: list[int]


@dataclass(slots=True)
class Debtor:
    index: int
    unit: int
    name: str
    norm: str
    account: dict[str, str]
    key: str


@dataclass
class World:
    """Business units, debtors and creditors, built deterministically from the seed."""

    units: list[tuple[str, str, str]]  # (id, name, currency)
    debtors: list[Debtor]
    creditors: list[Creditor]
    cum_weights: list[float]  # creditor popularity (cumulative, for random.choices)
    ghost_next: int = 10_000_000  # account numbers for accounts that appear only once

    def ghost_account(self, currency: str) -> dict[str, str]:
        self.ghost_next += 1
        return account_for(currency, self.ghost_next)


def build_world(risk: RiskEngine, rng: random.Random, debtors: int, creditors: int) -> World:
    from gateway.risk.model import normalise_name

    units = [(f"bu_bench_{name}", name, currency) for name, currency in UNITS]
    fp = risk.fingerprints
    ds: list[Debtor] = []
    for i in range(debtors):
        unit = i % len(units)
        name = f"HE {units[unit][1].replace('-', ' ').title()} Account {i // len(units) + 1} GmbH"
        account = account_for(units[unit][2], 9_000_000 + i)
        ds.append(Debtor(i, unit, name, normalise_name(name), account, fp.account(account)))
    by_unit: list[list[int]] = [[d.index for d in ds if d.unit == u] for u in range(len(units))]
    names: set[str] = set()
    cs: list[Creditor] = []
    for i in range(creditors):
        unit = rng.randrange(len(units))
        if i == 0:
            unit, name = 0, "Nordic Parts AB"  # the counterparty with a credit limit in risk.yaml
        else:
            while True:
                words = (rng.choice(_WORDS_A), rng.choice(_WORDS_B), rng.choice(_WORDS_C), rng.choice(_LEGAL))
                name = " ".join(w for w in words if w)
                if len(names) > 20_000:  # more creditors than word combinations: number them
                    name = f"{name} {i}"
                if normalise_name(name) not in names:
                    break
        norm = normalise_name(name)
        names.add(norm)
        account = account_for(units[unit][2], i)
        pool = by_unit[unit]
        k = 1 if rng.random() < 0.7 else (2 if rng.random() < 0.83 else 3)
        pays = rng.sample(pool, min(k, len(pool)))
        median = max(500, int(math.exp(rng.gauss(math.log(150_000), 1.0))))  # ~1,500.00 typical
        cs.append(Creditor(i, unit, name, norm, account, fp.account(account), median, pays))
    order = list(range(creditors))
    rng.shuffle(order)
    weights = [0.0] * creditors
    for rank, idx in enumerate(order):
        weights[idx] = 1.0 / (rank + 1) ** 0.6
    weights[0] = max(weights[0], 1.0 / 200**0.6)  # Nordic Parts is a regular supplier
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    return World(units, ds, cs, cum)


def _stream_times(rng: random.Random, n: int, days: int) -> list[float]:
    """Arrival times (epoch seconds, sorted): mostly weekday business hours, some at night and weekends."""
    end = T_END.timestamp()
    start = end - days * 86_400
    out: list[float] = []
    while len(out) < n:
        t = rng.uniform(start, end)
        dt = datetime.fromtimestamp(t, UTC)
        weekday = dt.weekday() < 5
        hour = dt.hour
        accept = (1.0 if 6 <= hour < 18 else 0.08) if weekday else 0.03
        if rng.random() < accept:
            out.append(t)
    out.sort()
    return out


class _Ids:
    """Instruction ids shaped like ``gateway.ids.new_id("ins")`` (ms time + random, Crockford), for a given time."""

    _ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def at(self, epoch: float) -> str:
        raw = ((int(epoch * 1000) << 80) | self.rng.getrandbits(80)) << 2  # 130 bits
        chars = []
        for _ in range(26):
            chars.append(self._ALPHABET[raw & 31])
            raw >>= 5
        return "ins_" + "".join(reversed(chars))


def _amount(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


@dataclass
class Payment:
    """One generated payment (stream or pool)."""

    unit: int
    debtor: Debtor
    creditor_name: str
    creditor_norm: str
    creditor_account: dict[str, str]
    creditor_key: str
    minor: int
    remittance: str
    kind: str = "known pair"


def _typical(rng: random.Random, c: Creditor) -> int:
    return max(100, int(c.median_minor * math.exp(rng.gauss(0.0, 0.25))))


def stream_payment(rng: random.Random, world: World, creditor: int, last: dict[int, Payment]) -> Payment:
    """A payment of the stream to this creditor (with outliers, round amounts, duplicates, account changes)."""
    c = world.creditors[creditor]
    u = rng.random()
    if u < 0.002 and creditor in last:  # the same payment again
        return last[creditor]
    debtor = world.debtors[rng.choice(c.debtors)]
    minor = _typical(rng, c)
    if u < 0.005:
        minor *= rng.randint(8, 20)
    elif u < 0.015 and UNITS[c.unit][0] != "payroll":
        minor = rng.randint(10, 50) * 100_000
    remittance = f"Invoice {rng.randrange(10**7):07d}"
    if u > 0.9995:  # same name, another account (fraud attempt or a real change)
        account = world.ghost_account(world.units[c.unit][2])
        return Payment(c.unit, debtor, c.name, c.norm, account, "", minor, remittance, "account change")
    p = Payment(c.unit, debtor, c.name, c.norm, c.account, c.key, minor, remittance)
    last[creditor] = p
    return p


# -- database helpers -----------------------------------------------------------------------


@dataclass
class Target:
    """Where the bench data lives: a SQLite file, or the bench_risk schema on PostgreSQL."""

    url: str
    backend: str  # sqlite | postgresql
    path: Path | None = None  # SQLite file
    schema: str | None = None  # PostgreSQL schema

    def engine(self, url: str | None = None) -> AsyncEngine:
        return create_engine(url or self.url, schema=self.schema)

    @property
    def label(self) -> str:
        return str(self.path) if self.path else f"{make_url(self.url).render_as_string()} schema {self.schema}"


#: what shapes the stored history besides the parameters: a change in any of these rebuilds the cache.
#: Not gateway/risk/store.py: it moves a History's state to and from the tables column for column
#: (counter_row, recent_row, save_history), so its SQL mechanics do not change what is stored; a change
#: to what a stored row holds bumps DATA_VERSION instead.
SHAPING_FILES = (
    "config/risk.yaml",
    "config/blocklist.yaml",
    "gateway/risk/engine.py",
    "gateway/risk/history.py",
    "gateway/risk/model.py",
    "gateway/risk/rules.py",
    "gateway/store/tables.py",
)


def cache_key(args: argparse.Namespace, risk_file: Path) -> str:
    shaping = hashlib.sha256()
    for path in (
        risk_file,
        *(ROOT / f for f in SHAPING_FILES),
        *sorted((ROOT / "gateway/migrations/versions").glob("*.py")),
    ):
        if path.exists():
            shaping.update(path.read_bytes())
    spec = {
        "version": DATA_VERSION,
        "stored": args.stored,
        "pool": args.pool,
        "debtors": args.debtors,
        "creditors": args.creditors,
        "days": args.days,
        "seed": args.seed,
        "prune": not args.no_prune,
        "code": shaping.hexdigest(),
        "schema": head_revision(),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


_META_DDL = "CREATE TABLE IF NOT EXISTS bench_meta (name VARCHAR(40) PRIMARY KEY, value TEXT NOT NULL)"


async def read_meta(engine: AsyncEngine) -> dict[str, Any] | None:
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT name, value FROM bench_meta"))).all()
    except Exception:
        return None
    meta = {name: json.loads(value) for name, value in rows}
    return meta if "cache_key" in meta else None


async def write_meta(conn: AsyncConnection, meta: dict[str, Any]) -> None:
    await conn.execute(text(_META_DDL))
    await conn.execute(text("DELETE FROM bench_meta"))
    await conn.execute(
        text("INSERT INTO bench_meta (name, value) VALUES (:n, :v)"),
        [{"n": k, "v": json.dumps(v)} for k, v in meta.items()],
    )


@contextlib.contextmanager
def progress_bar() -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        yield bar


# -- preparation ----------------------------------------------------------------------------


@dataclass
class Setup:
    settings: Any
    risk: RiskEngine
    codec: InstructionCodec
    #: how far back the gateway's pruner (``StatusPoller.prune_risk_history``) keeps counters / recent payments
    keep_counters: int
    keep_recent: int


def make_setup() -> Setup:
    settings = load_settings(CONFIG, env={})
    keys = parse_key_ring(settings.encryption_keys)
    key = fingerprint_key(settings.section("security").get("fingerprint_key"), keys)
    risk = load_risk(settings.risk_file, Plugins().risk_rule_classes(), key)
    codec = InstructionCodec(FieldCipher(keys))
    # as the scheduler's risk-prune job computes them
    return Setup(settings, risk, codec, *risk.retention())


def _stream_row(id_: str, p: Payment, unit_id: str, currency: str, at: datetime, n: int, status: str) -> dict:
    amount = _amount(p.minor)
    return {
        "id": id_,
        "business_unit_id": unit_id,
        "reference": f"S{n:010d}",
        "type": "credit_transfer",
        "amount": str(amount),
        "amount_minor": p.minor,
        "currency": currency,
        "status": status,
        "debtor_name": p.debtor.name,
        "debtor_account": PLACEHOLDER,
        "debtor_agent": None,
        "creditor_name": p.creditor_name,
        "creditor_account": PLACEHOLDER,
        "creditor_agent": None,
        "masked": {},
        "remittance_information": p.remittance,
        "creditor_reference": None,
        "purpose": None,
        "ultimate_debtor": None,
        "ultimate_creditor": None,
        "requested_execution_date": None,
        "urgency": "standard",
        "channel": None,
        "metadata": {},
        "contract_version": "1.0",
        "adapter": "iso20022_bank" if status == "settled" else None,
        "partner_reference": None,
        "event_count": 1,
        "created_at": at,
        "updated_at": at,
        "submitted_by": None,
    }


def _evict_counters(history: History, now: int, keep_from: int | None, archive: list[dict]) -> None:
    """Drop counter buckets no window reaches any more, for the keys touched since the last call.

    Keeps the in-memory stream fast (``History.velocity`` walks every bucket of a
    key). Buckets are created in time order, so the oldest come first. Dropped
    buckets the gateway's pruner would still keep (``keep_from``; None: all) go
    to ``archive``, to be written out too.
    """
    touched = {ckey for ckey, _ in history.changes.counters}
    history.changes.counters.clear()
    for ckey in touched:
        buckets = history.counters[ckey]
        size = ckey[4]
        cutoff = now - size * KEEP_BUCKETS
        old = []
        for b in buckets:
            if b >= cutoff:
                break
            old.append(b)
        for b in old:
            n, total = buckets.pop(b)
            if keep_from is None or b >= keep_from:
                archive.append(counter_row(ckey, b, n, total))


def _evict_recent(history: History, now: int, keep_from: int | None, log: list) -> None:
    """Move the recorded payments to ``log`` (those a pruned store keeps) and trim the in-memory lists.

    ``History.changes.recents`` has every screened payment in order: exactly what
    the gateway inserts into ``risk_recent``.
    """
    log.extend(item for item in history.changes.recents if keep_from is None or item[2].at.timestamp() >= keep_from)
    history.changes.recents.clear()  # pairs, beneficiaries and names changes stay, for save_history
    since = now - history.recent_seconds - 60
    for rkey, items in list(history.recent.items()):
        if items and items[0].at.timestamp() < since:
            kept = [r for r in items if r.at.timestamp() >= since]
            if kept:
                history.recent[rkey] = kept
            else:
                del history.recent[rkey]


async def prepare(target: Target, setup: Setup, args: argparse.Namespace, key: str) -> dict[str, Any]:
    """Build the database: schema, business units, the stream, its risk history, the pool."""
    started = time.perf_counter()
    risk = setup.risk
    rng = random.Random(args.seed)
    world = build_world(risk, rng, args.debtors, args.creditors)
    engine = target.engine()
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            if target.backend == "sqlite":
                await conn.exec_driver_sql("PRAGMA synchronous=OFF")
                await conn.exec_driver_sql("PRAGMA cache_size=-262144")
            await insert_rows(
                conn,
                business_units,
                [
                    {"id": i, "name": n, "default_contract_version": None, "created_at": T_END}
                    for i, n, _ in world.units
                ],
            )
            await credit.sync_config_limits(conn, risk.credit_limits, T_END)
        history = risk.new_history()
        ids = _Ids(rng)
        times = _stream_times(rng, args.stored, args.days)
        choices = rng.choices(range(len(world.creditors)), cum_weights=world.cum_weights, k=args.stored)
        last: dict[int, Payment] = {}
        archive: list[dict] = []
        recent_log: list = []
        end = int(T_END.timestamp())
        keep_from = None if args.no_prune else end - setup.keep_counters
        keep_recent_from = None if args.no_prune else end - setup.keep_recent
        outcomes: dict[str, int] = {}
        chunk = 20_000
        with progress_bar() as bar:
            task = bar.add_task("stream: screen + store instructions", total=args.stored)
            for lo in range(0, args.stored, chunk):
                rows = []
                for n in range(lo, min(lo + chunk, args.stored)):
                    p = stream_payment(rng, world, choices[n], last)
                    unit_id, unit_name, currency = world.units[p.unit]
                    at = datetime.fromtimestamp(times[n], UTC)
                    creditor_key = p.creditor_key or risk.fingerprints.account(p.creditor_account)
                    c = Candidate(
                        instruction_id=ids.at(times[n]),
                        business_unit=unit_name,
                        at=at,
                        type="credit_transfer",
                        currency=currency,
                        amount=_amount(p.minor),
                        amount_minor=p.minor,
                        debtor_key=p.debtor.key,
                        creditor_key=creditor_key,
                        debtor_name=p.debtor.norm,
                        creditor_name=p.creditor_norm,
                        remittance=p.remittance.lower(),
                    )
                    s = risk.screen(c, history)
                    outcomes[s.outcome.value] = outcomes.get(s.outcome.value, 0) + 1
                    status = "settled" if s.outcome in (Outcome.PASS, Outcome.FLAG) else "rejected"
                    row = _stream_row(c.instruction_id, p, unit_id, currency, at, n, status)
                    rows.append(row)
                    if n % 1000 == 999:
                        _evict_counters(history, int(times[n]), keep_from, archive)
                async with engine.begin() as conn:
                    if target.backend == "sqlite":
                        await conn.exec_driver_sql("PRAGMA synchronous=OFF")
                    await insert_rows(conn, instructions, rows)
                _evict_recent(history, int(times[min(lo + chunk, args.stored) - 1]), keep_recent_from, recent_log)
                bar.advance(task, len(rows))
            counts = await _write_history(engine, target, history, archive, recent_log, keep_from, bar)
            pool = await _write_pool(engine, target, setup, world, rng, history, args.pool, bar)
        prepare_s = time.perf_counter() - started
        meta = {
            "cache_key": key,
            "stored": args.stored,
            "pool": args.pool,
            "prepare_s": round(prepare_s, 1),
            "stream_outcomes": outcomes,
            "history_rows": counts,
            "pool_kinds": pool,
            "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        async with engine.begin() as conn:
            await write_meta(conn, meta)
        if target.backend == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("ANALYZE")  # what autovacuum would have done by now
        else:
            async with engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return meta
    finally:
        await engine.dispose()


async def _write_history(
    engine: AsyncEngine,
    target: Target,
    history: History,
    archive: list[dict],
    recent_log: list,
    keep_from: int | None,
    bar: Any,
) -> dict[str, int]:
    """Persist the in-memory history (plus what was evicted but a pruned store still holds).

    Counters and recent payments (the big tables) go in with bulk inserts; pairs,
    beneficiaries and names through the store's own ``save_history``, from the
    changes the stream accumulated, so their stored form is exactly the gateway's.
    """
    counters = list(archive)
    for ckey, buckets in history.counters.items():
        for b, (n, total) in buckets.items():
            if keep_from is None or b >= keep_from:
                counters.append(counter_row(ckey, b, n, total))
    recent_rows = [recent_row(bu, ck, r) for bu, ck, r in recent_log]
    changes = history.changes
    learned = len(changes.pairs) + len(changes.beneficiaries) + len(changes.names)
    task = bar.add_task("risk history: write", total=len(counters) + len(recent_rows) + learned)
    for table, rows in ((risk_counters, counters), (risk_recent, recent_rows)):
        for lo in range(0, len(rows), 50_000):
            async with engine.begin() as conn:
                if target.backend == "sqlite":
                    await conn.exec_driver_sql("PRAGMA synchronous=OFF")
                await insert_rows(conn, table, rows[lo : lo + 50_000])
            bar.advance(task, len(rows[lo : lo + 50_000]))
    changes.counters.clear()
    changes.recents.clear()
    async with engine.begin() as conn:
        await save_history(conn, history, T_END)
    bar.advance(task, learned)
    async with engine.connect() as conn:
        return {
            table.name: (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            for table in HISTORY_TABLES
        }


POOL_KINDS = (
    ("known pair", 0.60),
    ("known creditor, new debtor", 0.10),
    ("new creditor", 0.10),
    ("outlier amount", 0.05),
    ("round amount", 0.05),
    ("duplicate of a recent payment", 0.05),
    ("account change", 0.03),
    ("credit-limited counterparty", 0.02),
)


def pool_payment(rng: random.Random, world: World, recent: list[Recent], recent_owner: dict[str, int]) -> Payment:
    """One instruction waiting to be screened (see POOL_KINDS)."""
    kind = rng.choices([k for k, _ in POOL_KINDS], weights=[w for _, w in POOL_KINDS])[0]
    if kind == "new creditor":
        unit = rng.randrange(len(world.units))
        debtor = world.debtors[rng.choice([d.index for d in world.debtors if d.unit == unit])]
        name = f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)} Newco {rng.randrange(10**6)} Ltd"
        account = world.ghost_account(world.units[unit][2])
        minor = int(math.exp(rng.gauss(math.log(300_000), 1.2)))
        return Payment(unit, debtor, name, "", account, "", max(100, minor), f"Invoice {rng.randrange(10**7)}", kind)
    if kind == "duplicate of a recent payment" and recent:
        r = rng.choice(recent)
        c = world.creditors[recent_owner[r.instruction_id]]
        debtor = world.debtors[c.debtors[0]]
        remittance = r.remittance.replace("invoice", "Invoice")
        return Payment(c.unit, debtor, c.name, c.norm, c.account, c.key, r.amount_minor, remittance, kind)
    if kind == "credit-limited counterparty":
        creditor = 0
    else:
        creditor = rng.choices(range(len(world.creditors)), cum_weights=world.cum_weights)[0]
    c = world.creditors[creditor]
    debtor = world.debtors[rng.choice(c.debtors)]
    if kind == "known creditor, new debtor":
        others = [d.index for d in world.debtors if d.unit == c.unit and d.index not in c.debtors]
        debtor = world.debtors[rng.choice(others)] if others else debtor
    minor = _typical(rng, c)
    if kind == "outlier amount":
        minor *= rng.randint(8, 20)
    elif kind == "round amount":
        minor = rng.randint(10, 50) * 100_000
    account, key = c.account, c.key
    if kind == "account change":
        account, key = world.ghost_account(world.units[c.unit][2]), ""
    return Payment(c.unit, debtor, c.name, c.norm, account, key, minor, f"Invoice {rng.randrange(10**7):07d}", kind)


async def _write_pool(
    engine: AsyncEngine,
    target: Target,
    setup: Setup,
    world: World,
    rng: random.Random,
    history: History,
    size: int,
    bar: Any,
) -> dict[str, int]:
    """Store ``size`` received instructions (real encrypted accounts) arriving just after the stream."""
    key_owner = {c.key: c.index for c in world.creditors}
    since = T_END.timestamp() - 6 * 3600
    recent = []
    recent_owner: dict[str, int] = {}
    for (_, ck), items in history.recent.items():
        if ck in key_owner:
            for r in items:
                if r.at.timestamp() >= since:
                    recent.append(r)
                    recent_owner[r.instruction_id] = key_owner[ck]
    recent.sort(key=lambda r: r.instruction_id)
    ids = _Ids(rng)
    kinds: dict[str, int] = {}
    rows = []
    task = bar.add_task("pool: received instructions", total=size)
    for n in range(size):
        p = pool_payment(rng, world, recent, recent_owner)
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
        unit_id, _, currency = world.units[p.unit]
        at = T_END + timedelta(seconds=60 + n * 0.05)
        data = InstructionData(
            reference=f"P{n:010d}",
            type="credit_transfer",
            money=Money.from_minor(p.minor, currency),
            debtor=Party(p.debtor.name, parse_account(p.debtor.account, "/debtor/account")),
            creditor=Party(p.creditor_name, parse_account(p.creditor_account, "/creditor/account")),
            remittance_information=p.remittance,
        )
        rows.append(setup.codec.new_row(ids.at(at.timestamp()), unit_id, data, "1.0", at))
        bar.advance(task)
    async with engine.begin() as conn:
        await insert_rows(conn, instructions, rows)
    return kinds


async def ensure_prepared(target: Target, setup: Setup, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """The prepared database's metadata, and whether it came from the cache."""
    key = cache_key(args, setup.settings.risk_file)
    if not args.fresh:
        meta = await _cached(target, key)
        if meta is not None:
            log(f"using the prepared database {target.label} (prepared in {meta['prepare_s']} s; --fresh rebuilds)")
            return meta, True
    log(f"preparing {args.stored:,} stored instructions and their risk history in {target.label}")
    if target.backend == "sqlite":
        assert target.path is not None
        part = target.path.with_name(target.path.name + ".part")
        for p in (part, *_sqlite_files(part)):
            p.unlink(missing_ok=True)
        building = Target(f"sqlite+aiosqlite:///{part}", "sqlite", part)
        meta = await prepare(building, setup, args, key)
        for p in (target.path, *_sqlite_files(target.path)):
            p.unlink(missing_ok=True)
        part.rename(target.path)
        for p in _sqlite_files(part):
            p.unlink(missing_ok=True)
    else:
        admin = create_engine(target.url)
        try:
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
                await conn.exec_driver_sql(f"CREATE SCHEMA {PG_SCHEMA}")
        finally:
            await admin.dispose()
        meta = await prepare(target, setup, args, key)
    log(f"prepared in {meta['prepare_s']} s")
    return meta, False


def _sqlite_files(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


async def _cached(target: Target, key: str) -> dict[str, Any] | None:
    if target.path is not None and not target.path.exists():
        return None
    engine = target.engine()
    try:
        meta = await read_meta(engine)
    finally:
        await engine.dispose()
    return meta if meta is not None and meta.get("cache_key") == key else None


# -- measurement ----------------------------------------------------------------------------


async def load_orders(
    conn: AsyncConnection, codec: InstructionCodec, ids: Sequence[str]
) -> list[tuple[dict[str, Any], PaymentOrder]]:
    """``Orders.load_many`` on a given connection (``fetch_orders``), in id order."""
    found = await fetch_orders(conn, codec, ids)
    return [found[i] for i in ids]


@dataclass
class Samples:
    """Seconds per transaction, and how many instructions each one handled."""

    per_tx: list[float] = field(default_factory=list)
    size: int = 1

    def ms_per_instruction(self) -> list[float]:
        return [s * 1000 / self.size for s in self.per_tx]

    def stats(self) -> dict[str, float]:
        ms = sorted(self.ms_per_instruction())
        if len(ms) < 2:
            value = ms[0] if ms else 0.0
            return {"median": value, "p90": value, "p99": value, "n": len(ms)}
        q = statistics.quantiles(ms, n=100, method="inclusive")
        return {"median": statistics.median(ms), "p90": q[89], "p99": q[98], "n": len(ms)}


class Bench:
    """Runs the measurements on one engine (see module docstring)."""

    def __init__(self, engine: AsyncEngine, setup: Setup, commit: bool, one_hop: bool = True) -> None:
        self.engine = engine
        self.setup = setup
        self.screener = Screener(setup.risk, one_hop=one_hop)
        self.commit = commit
        self.pool: list[tuple[dict[str, Any], PaymentOrder]] = []
        self.candidates: list[Candidate] = []
        self.next = 0  # see take()
        self.now = T_END

    async def load_pool(self) -> None:
        async with self.engine.connect() as conn:
            ids = [
                r.id
                for r in await conn.execute(
                    select(instructions.c.id).where(instructions.c.status == "received").order_by(instructions.c.id)
                )
            ]
            self.pool = await load_orders(conn, self.setup.codec, ids)
        if not self.pool:
            raise BenchError("the prepared database holds no received instructions to screen")
        self.candidates = [self.screener.candidate(row, order) for row, order in self.pool]
        self.now = max(c.at for c in self.candidates) + timedelta(seconds=1)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            tx = await conn.begin()
            try:
                yield conn
            finally:
                if self.commit:
                    await tx.commit()
                else:
                    await tx.rollback()

    def take(self, size: int) -> list[int]:
        """The next ``size`` pool instructions: cycling when rolled back; each only once when committed."""
        start = self.next
        self.next += size
        if self.commit and self.next > len(self.candidates):
            raise BenchError(f"--commit screens each pool instruction once: the pool of {len(self.candidates)} ran out")
        return [(start + k) % len(self.candidates) for k in range(size)]

    async def timed(self, work: Callable[[AsyncConnection], Awaitable[Any]]) -> float:
        t0 = time.perf_counter()
        async with self.transaction() as conn:
            await work(conn)
        return time.perf_counter() - t0

    async def evaluate(self, idx: list[int]) -> float:
        cands = [self.candidates[k] for k in idx]
        return await self.timed(lambda conn: self.screener.evaluate(conn, cands, self.now))

    async def baseline(self, idx: list[int]) -> float:
        ids = [self.pool[k][1].id for k in idx]
        return await self.timed(lambda conn: load_orders(conn, self.setup.codec, ids))

    async def screen(self, idx: list[int]) -> float:
        batch = [self.pool[k] for k in idx]
        return await self.timed(lambda conn: self.screener.screen(conn, batch, self.now))

    async def run(self, singles: int, batches: int) -> dict[str, Samples]:
        """Interleaved: baseline and screening alternate, so drift hits both alike."""
        out = {
            name: Samples(size=size)
            for name, size in (
                ("evaluate_1", 1),
                ("baseline_1", 1),
                ("evaluate_32", BATCH),
                ("baseline_32", BATCH),
                ("screen_32", BATCH),
            )
        }
        for _ in range(min(20, singles)):  # warm-up: statement caches, page cache
            idx = self.take(1)
            await self.baseline(idx)
            await self.evaluate(idx)
        for _ in range(min(4, batches)):
            await self.evaluate(self.take(BATCH))
            await self.screen(self.take(BATCH))
        if not self.commit:
            self.next = 0  # rolled back: measure from the pool's start
        for _ in range(singles):
            idx = self.take(1)
            out["baseline_1"].per_tx.append(await self.baseline(idx))
            out["evaluate_1"].per_tx.append(await self.evaluate(idx))
        for _ in range(batches):
            idx = self.take(BATCH)
            out["baseline_32"].per_tx.append(await self.baseline(idx))
            out["evaluate_32"].per_tx.append(await self.evaluate(idx))
            out["screen_32"].per_tx.append(await self.screen(idx if not self.commit else self.take(BATCH)))
        return out

    async def breakdown(self, batches: int) -> dict[str, float]:
        """Where a batch's time goes: the steps of ``Screener.evaluate``, timed one by one (ms per batch)."""
        risk, one_hop = self.setup.risk, self.screener.one_hop
        parts: dict[str, list[float]] = {"reads: history + credit limits": [], "rules in memory": []}
        parts["save_history"] = []
        for _ in range(batches):
            cands = [self.candidates[k] for k in self.take(BATCH)]
            async with self.transaction() as conn:
                t0 = time.perf_counter()
                reads = HistoryQueries(conn.dialect, cands, risk.counters, risk.recent_seconds)
                limits = credit.limits_query(conn.dialect, {c.counterparty for c in cands if c.counterparty})
                fetched = await fetch_all(conn, [*reads.queries, *([limits] if limits else [])], one_hop=one_hop)
                history = reads.fill(fetched[: len(reads.queries)])
                t1 = time.perf_counter()
                for c in cands:
                    s = risk.evaluate(c, history)
                    history.record(c, learn=s.outcome in (Outcome.PASS, Outcome.FLAG))
                t2 = time.perf_counter()
                await save_history(conn, history, self.now, one_hop=one_hop)
                t3 = time.perf_counter()
            parts["reads: history + credit limits"].append(t1 - t0)
            parts["rules in memory"].append(t2 - t1)
            parts["save_history"].append(t3 - t2)
        return {name: statistics.median(v) * 1000 for name, v in parts.items()}

    async def census(self) -> dict[str, Any]:
        """What the pool's screening finds in the history, and the outcomes (batches of 32, rolled back)."""
        risk = self.setup.risk
        hits = {"pair": 0, "pair_with_6+_amounts": 0, "beneficiary": 0, "recent_24h": 0, "counters": 0}
        outcomes: dict[str, int] = {}
        rows = {"counters": 0, "recent": 0}
        for lo in range(0, len(self.candidates), BATCH):
            cands = self.candidates[lo : lo + BATCH]
            async with self.engine.connect() as conn:
                history = await load_history(conn, cands, risk.counters, risk.recent_seconds)
                await conn.rollback()
            rows["counters"] += sum(len(b) for b in history.counters.values())
            rows["recent"] += sum(len(v) for v in history.recent.values())
            for c in cands:
                pair = history.pair(c)
                hits["pair"] += pair is not None
                hits["pair_with_6+_amounts"] += pair is not None and len(pair.amounts) >= 6
                hits["beneficiary"] += history.beneficiary(c) is not None
                hits["recent_24h"] += bool(history.recent_to(c, 86_400))
                hits["counters"] += any(k[2] in (c.debtor_key, c.creditor_key) for k in history.counters)
            async with self.engine.connect() as conn:  # always rolled back: the census never changes the store
                tx = await conn.begin()
                screenings: list[Screening] = await self.screener.evaluate(conn, cands, self.now)
                await tx.rollback()
            for s in screenings:
                outcomes[s.outcome.value] = outcomes.get(s.outcome.value, 0) + 1
        total = len(self.candidates)
        batches = math.ceil(total / BATCH)
        return {
            "candidates": total,
            "history_hit_pct": {k: round(100 * v / total, 1) for k, v in hits.items()},
            "outcomes": outcomes,
            "loaded_rows_per_batch": {k: round(v / batches) for k, v in rows.items()},
        }


async def run_profile(bench: Bench, singles: int, batches: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for _ in range(singles):
            await bench.evaluate(bench.take(1))
        for _ in range(batches):
            await bench.evaluate(bench.take(BATCH))
    finally:
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(35)
    return out.getvalue()


# -- the run --------------------------------------------------------------------------------


def commit_pool(args: argparse.Namespace) -> int:
    """Pool instructions a --commit run screens (see Bench.run, breakdown, run_profile)."""
    warm = min(20, args.singles) + min(4, args.batches) * 2 * BATCH
    profile = (args.singles // 4 + args.batches // 4 * BATCH) if args.profile else 0
    return warm + args.singles + args.batches * 2 * BATCH + max(3, args.batches // 4) * BATCH + profile


def resolve_target(args: argparse.Namespace, key: str) -> Target:
    if args.database_url:
        url = make_url(args.database_url)
        if url.get_backend_name() != "postgresql":
            raise BenchError("--database-url must be a postgresql+asyncpg:// URL (SQLite: use --db-path)")
        return Target(args.database_url, "postgresql", schema=PG_SCHEMA)
    path = Path(args.db_path) if args.db_path else CACHE_DIR / f"risk-{args.stored}-{key}.db"
    path = path.resolve()
    return Target(f"sqlite+aiosqlite:///{path}", "sqlite", path=path)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    setup = make_setup()
    key = cache_key(args, setup.settings.risk_file)
    target = resolve_target(args, key)
    meta, cached = await ensure_prepared(target, setup, args)
    measured = target
    scratch: Path | None = None
    if args.commit and target.backend == "sqlite":
        assert target.path is not None
        scratch = Path(tempfile.mkdtemp(prefix="bench-risk-"))
        copy = scratch / target.path.name
        shutil.copyfile(target.path, copy)
        measured = Target(f"sqlite+aiosqlite:///{copy}", "sqlite", copy)
    elif args.commit:  # PostgreSQL: the schema changes under measurement; the next run rebuilds it
        engine = target.engine()
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM bench_meta"))
        await engine.dispose()
    if args.commit and args.pool < commit_pool(args):
        raise BenchError(f"--commit screens each pool instruction once: needs --pool {commit_pool(args)} or more")
    engine = measured.engine()
    try:
        bench = Bench(engine, setup, args.commit, one_hop=not args.statement_by_statement)
        await bench.load_pool()
        log(f"measuring: {args.singles} single-instruction and {args.batches} 32-instruction transactions")
        census = await bench.census()
        samples = await bench.run(args.singles, args.batches)
        breakdown = await bench.breakdown(max(3, args.batches // 4))
        async with engine.connect() as conn:
            stored_rows = (await conn.execute(select(func.count()).select_from(instructions))).scalar_one()
        profile = await run_profile(bench, args.singles // 4, args.batches // 4) if args.profile else None
    finally:
        await engine.dispose()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return summarize(args, target, meta, cached, census, samples, breakdown, stored_rows, profile)


def summarize(
    args: argparse.Namespace,
    target: Target,
    meta: dict[str, Any],
    cached: bool,
    census: dict[str, Any],
    samples: dict[str, Samples],
    breakdown: dict[str, float],
    stored_rows: int,
    profile: str | None,
) -> dict[str, Any]:
    st = {name: s.stats() for name, s in samples.items()}
    e1, b1, e32, b32, s32 = (st[k] for k in ("evaluate_1", "baseline_1", "evaluate_32", "baseline_32", "screen_32"))

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 2) if b > 0 else None

    def r3(x: float) -> float:
        return round(x, 4)

    return {
        "bench": "risk",
        "database": target.backend,
        "target_db": target.label,
        "stored": meta["stored"],
        "instructions_rows": stored_rows,
        "pool": census["candidates"],
        "cached": cached,
        "prepare_s": meta["prepare_s"],
        "history_rows": meta["history_rows"],
        "stream_outcomes": meta["stream_outcomes"],
        "pool_kinds": meta["pool_kinds"],
        "pruned": not args.no_prune,
        "commit": args.commit,
        "one_hop": not args.statement_by_statement,
        "median_ms_single": r3(e1["median"]),
        "p90_ms_single": r3(e1["p90"]),
        "p99_ms_single": r3(e1["p99"]),
        "median_ms_per_instruction_batch32": r3(e32["median"]),
        "p90_ms_per_instruction_batch32": r3(e32["p90"]),
        "p99_ms_per_instruction_batch32": r3(e32["p99"]),
        "median_ms_per_instruction_screen_batch32": r3(s32["median"]),
        "baseline": "Orders.load_many (SELECT instructions JOIN business_units WHERE id IN (...), decrypt)",
        "baseline_ms": r3(b1["median"]),
        "baseline_ms_per_instruction_batch32": r3(b32["median"]),
        "ratio": ratio(e1["median"], b1["median"]),
        "ratio_batch32": ratio(e32["median"], b32["median"]),
        "target_ms": TARGET_MS,
        "target_met_single": e1["median"] <= TARGET_MS,
        "target_met_batch32": e32["median"] <= TARGET_MS,
        "breakdown_ms_per_batch32": {k: round(v, 3) for k, v in breakdown.items()},
        "census": census,
        "samples": {k: v["n"] for k, v in st.items()},
        "detail": {k: {m: r3(x) for m, x in v.items() if m != "n"} for k, v in st.items()},
        "profile": profile,
    }


def print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    d = summary["detail"]
    tx = "committed" if summary["commit"] else "rolled back"
    trips = "reads in one round trip" if summary["one_hop"] else "statement by statement"
    table = Table(
        title=f"Risk screening — {summary['database']}, {summary['stored']:,} stored instructions, "
        f"one transaction per measurement ({tx}; {trips})"
    )
    for col in ("measurement", "n", "median ms/instr", "p90", "p99", "vs baseline"):
        table.add_column(col, justify="left" if col == "measurement" else "right")

    def row(label: str, name: str, base: str | None) -> None:
        s = d[name]
        vs = f"{s['median'] / d[base]['median']:.2f}x" if base and d[base]["median"] else ""
        table.add_row(
            label, str(summary["samples"][name]), f"{s['median']:.3f}", f"{s['p90']:.3f}", f"{s['p99']:.3f}", vs
        )

    row("Screener.evaluate, 1 per transaction", "evaluate_1", "baseline_1")
    row("baseline load_orders, 1 per transaction", "baseline_1", None)
    row("Screener.evaluate, batch of 32 (÷32)", "evaluate_32", "baseline_32")
    row("baseline load_orders, batch of 32 (÷32)", "baseline_32", None)
    row("Screener.screen (+ transitions), batch of 32 (÷32)", "screen_32", "baseline_32")
    console.print(table)

    ok1, ok32 = summary["target_met_single"], summary["target_met_batch32"]

    def verdict(ok: bool) -> str:
        return "[green]met[/]" if ok else "[red]missed[/]"

    console.print(
        f"target ≤ {summary['target_ms']} ms median per instruction: single {summary['median_ms_single']:.3f} ms "
        f"{verdict(ok1)}; batch of 32 {summary['median_ms_per_instruction_batch32']:.3f} ms {verdict(ok32)}; "
        f"ratio screening/baseline: single {summary['ratio']}, batch {summary['ratio_batch32']}"
    )
    parts = Table(title="Where a batch of 32 goes (steps of Screener.evaluate timed one by one, median ms per batch)")
    parts.add_column("step")
    parts.add_column("ms / batch", justify="right")
    parts.add_column("ms / instr", justify="right")
    for name, ms in summary["breakdown_ms_per_batch32"].items():
        parts.add_row(name, f"{ms:.3f}", f"{ms / BATCH:.3f}")
    console.print(parts)
    c = summary["census"]
    hits = ", ".join(f"{k} {v}%" for k, v in c["history_hit_pct"].items())
    console.print(f"pool of {c['candidates']:,}: history hits {hits}")
    console.print(
        f"pool outcomes {c['outcomes']}; rows loaded per batch of 32: {c['loaded_rows_per_batch']}; "
        f"pool kinds {summary['pool_kinds']}"
    )
    rows = ", ".join(f"{k} {v:,}" for k, v in summary["history_rows"].items())
    prepared = "cached" if summary["cached"] else "this run"
    console.print(
        f"store: {summary['instructions_rows']:,} instruction rows ({summary['stored']:,} screened + pool); "
        f"history: {rows}; {'pruned as the gateway prunes' if summary['pruned'] else 'never pruned'}; "
        f"prepared in {summary['prepare_s']} s ({prepared}); stream outcomes {summary['stream_outcomes']}"
    )
    console.print(f"database: {summary['target_db']}")
    if summary["profile"]:
        print(summary["profile"], file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/risk.py",
        description="Risk screening cost per instruction (Screener.evaluate) against a store of 1M payments.",
    )
    p.add_argument("--stored", type=int, default=1_000_000, help="stored (screened) instructions (1,000,000)")
    p.add_argument("--pool", type=int, default=4096, help="received instructions to screen (4096)")
    p.add_argument("--debtors", type=int, default=200, help="debtor accounts (200)")
    p.add_argument("--creditors", type=int, default=20_000, help="creditor accounts (20,000)")
    p.add_argument("--days", type=int, default=30, help="days of traffic the stored instructions span (30)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the generated data (1)")
    p.add_argument("--no-prune", action="store_true", help="keep all counters and recent payments (pruner never ran)")
    p.add_argument("--singles", type=int, default=2000, help="single-instruction transactions measured (2000)")
    p.add_argument("--batches", type=int, default=200, help="32-instruction transactions measured (200)")
    p.add_argument("--fresh", action="store_true", help="rebuild the prepared database even if cached")
    p.add_argument("--db-path", help="SQLite file to prepare/use (default: var/bench/risk-<stored>-<key>.db)")
    p.add_argument(
        "--database-url",
        help=f"a postgresql+asyncpg:// URL: prepare into schema {PG_SCHEMA} there (dropped/recreated when stale)",
    )
    p.add_argument("--commit", action="store_true", help="commit each measurement (on a copy) instead of rollback")
    p.add_argument(
        "--statement-by-statement",
        action="store_true",
        help="screen with one round trip per statement (Screener(one_hop=False)), for comparison",
    )
    p.add_argument("--profile", action="store_true", help="cProfile a quarter-size screening run, print to stderr")
    p.add_argument("--json", action="store_true", help="also print one JSON object as the last line of stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("stored", "pool", "debtors", "creditors", "days", "singles", "batches"):
        if getattr(args, name) < 1:
            print(f"bench/risk.py: --{name} must be positive", file=sys.stderr)
            return 2
    if args.creditors < 2 or args.debtors < len(UNITS):
        print(f"bench/risk.py: need at least {len(UNITS)} debtors and 2 creditors", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(run(args))
    except BenchError as exc:
        print(f"bench/risk.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/risk.py: interrupted", file=sys.stderr)
        return 130
    print_table(summary)
    if args.json:
        sys.stdout.flush()
        out = {k: v for k, v in summary.items() if k != "profile"}
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
