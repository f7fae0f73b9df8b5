"""Risk state in the database (SQLite and PostgreSQL): history round trip, atomic counters, race-free credit."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.money import Money
from gateway.domain.status import Status
from gateway.plugins.manager import Plugins
from gateway.risk import credit
from gateway.risk.engine import load_risk
from gateway.risk.history import SUBJECTS, Beneficiary, History, NameAccounts, PairStats, Recent, bucket_seconds
from gateway.risk.model import Candidate, Outcome
from gateway.risk.screening import Screener
from gateway.risk.store import load_history, prune_history, save_history
from gateway.store import repo
from gateway.store.sqlite_thread import sqlite_thread
from gateway.store.tables import (
    credit_limits,
    credit_reservations,
    risk_beneficiaries,
    risk_counters,
    risk_names,
    risk_pairs,
    risk_recent,
)
from tests.support import NOW, REPO, insert_instruction
from tests.support import RISK_T0 as T0
from tests.support import candidate as cand

HOUR = 3600
SIZES = {bucket_seconds(HOUR), bucket_seconds(86_400)}
COUNTERS = {(subject, size) for size in SIZES for subject in SUBJECTS}  # debtor and creditor counters at every size


def candidate(n: int, amount_minor: int = 100_00, creditor: str = "c1", name: str = "nordic parts") -> Candidate:
    return Candidate(
        instruction_id=f"ins_{n:026d}",
        business_unit="erp",
        at=NOW + timedelta(minutes=n),
        type="credit_transfer",
        currency="EUR",
        amount=Decimal(amount_minor).scaleb(-2),
        amount_minor=amount_minor,
        debtor_key="d1",
        creditor_key=creditor,
        debtor_name="he appliances europe",
        creditor_name=name,
        remittance=f"invoice {n}",
    )


async def test_history_survives_a_round_trip_through_the_store(engine: AsyncEngine) -> None:
    batch = [candidate(i, 100_00 + i) for i in range(5)]
    history = History(86_400, counters=COUNTERS)
    for c in batch:
        history.record(c, learn=True)
    async with engine.begin() as conn:
        await save_history(conn, history, NOW)
    probe = candidate(10, 100_00, creditor="c1")
    async with engine.connect() as conn:
        loaded = await load_history(conn, [probe], COUNTERS, 86_400)
    assert loaded.velocity(probe, "creditor", HOUR) == (5, sum(c.amount_minor for c in batch))
    assert loaded.velocity(probe, "debtor", HOUR) == (5, sum(c.amount_minor for c in batch))
    pair = loaded.pair(probe)
    assert pair is not None and pair.count == 5 and pair.amounts == [c.amount_minor for c in batch]
    beneficiary = loaded.beneficiary(probe)
    assert beneficiary is not None and beneficiary.count == 5 and beneficiary.max_minor == 100_04
    assert beneficiary.first_seen == batch[0].at
    named = loaded.accounts_for_name(probe)
    assert named is not None and named.accounts == {"c1": 5} and named.count == 5
    assert [r.instruction_id for r in loaded.recent_to(probe, 86_400)] == [c.instruction_id for c in batch]
    # another creditor's history is not loaded for this probe
    stranger = candidate(11, creditor="c2", name="someone else")
    assert loaded.beneficiary(stranger) is None and loaded.velocity(stranger, "creditor", HOUR) == (0, 0)


async def test_a_batch_to_ten_thousand_new_suppliers_loads_its_history_in_one_statement(engine: AsyncEngine) -> None:
    # PostgreSQL caps a statement at 32,767 parameters, and a long IN list of (creditor, debtor) rows ran its
    # parser out of stack from about 5,000 suppliers: the keys go as arrays there, so any batch size loads
    suppliers = [candidate(i, 100_00 + i, creditor=f"c{i:05d}", name=f"supplier {i}") for i in range(10_000)]
    history = History(86_400, counters=COUNTERS)
    for c in suppliers[::997]:  # a few of them known already
        history.record(c, learn=True)
    async with engine.begin() as conn:
        await save_history(conn, history, NOW)
    async with engine.connect() as conn:
        loaded = await load_history(conn, suppliers, COUNTERS, 86_400)
    known = {c.creditor_key for c in suppliers[::997]}
    assert {c.creditor_key for c in suppliers if loaded.beneficiary(c) is not None} == known
    assert {c.creditor_key for c in suppliers if loaded.pair(c) is not None} == known
    assert {c.creditor_key for c in suppliers if loaded.accounts_for_name(c) is not None} == known
    assert all(loaded.velocity(c, "creditor", HOUR)[0] == 1 for c in suppliers[::997])
    assert len([r for c in suppliers for r in loaded.recent_to(c, 86_400)]) == len(known)


async def test_concurrent_batches_never_lose_a_velocity_count(engine: AsyncEngine) -> None:
    async def batch(offset: int) -> None:
        history = History(0, counters=COUNTERS)
        for i in range(10):
            history.record(candidate(offset + i % 3), learn=False)  # same buckets across batches
        async with engine.begin() as conn:
            await save_history(conn, history, NOW)

    await asyncio.gather(*(batch(k * 100) for k in range(8)))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(risk_counters))).all()
    per_size = {
        size: sum(r.count for r in rows if r.bucket_seconds == size and r.subject == "debtor") for size in SIZES
    }
    assert per_size == {size: 80 for size in SIZES}


async def test_pruning_deletes_only_what_no_window_reaches(engine: AsyncEngine) -> None:
    history = History(86_400, counters=COUNTERS)
    history.record(candidate(0), learn=False)
    async with engine.begin() as conn:
        await save_history(conn, history, NOW)
        assert await prune_history(conn, NOW + timedelta(hours=1), 26 * 3600, 2 * 86_400) == 0
        deleted = await prune_history(conn, NOW + timedelta(days=3), 26 * 3600, 2 * 86_400)
    assert deleted == len(SIZES) * 2 + 1  # debtor and creditor counters per bucket size, one recent payment


async def test_credit_reservations_never_pass_the_limit_under_concurrency(engine: AsyncEngine) -> None:
    ids = [await insert_instruction(engine) for _ in range(30)]
    async with engine.begin() as conn:
        await credit.set_limit(conn, "nordic-parts", "EUR", Money("10000.00", "EUR"), "hold", NOW)

    async def reserve(instruction_id: str) -> bool:
        async with engine.begin() as conn:
            return await credit.reserve(conn, instruction_id, "nordic-parts", "EUR", 1000_00, NOW)

    results = await asyncio.gather(*(reserve(i) for i in ids))
    assert sum(results) == 10
    async with engine.connect() as conn:
        row = (await conn.execute(select(credit_limits))).one()
        reserved = (await conn.execute(select(credit_reservations))).all()
    assert row.reserved_minor == 10_000_00 and row.consumed_minor == 0
    assert len(reserved) == 10 and {r.state for r in reserved} == {"reserved"}

    # fates: settle one, fail one, settle-then-return one
    granted = [i for i, ok in zip(ids, results, strict=True) if ok]
    for instruction_id, path in zip(
        granted, ([Status.SETTLED], [Status.FAILED], [Status.SETTLED, Status.RETURNED]), strict=False
    ):
        for status in (Status.ACCEPTED, Status.ROUTED, Status.SUBMITTED, *path):
            async with engine.begin() as conn:
                await repo.record_status(conn, instruction_id, status, source="dispatcher", now=NOW)
    async with engine.connect() as conn:
        row = (await conn.execute(select(credit_limits))).one()
        states = {r.instruction_id: r.state for r in await conn.execute(select(credit_reservations))}
    assert (row.reserved_minor, row.consumed_minor) == (7 * 1000_00, 1000_00)
    assert [states[i] for i in granted[:3]] == ["consumed", "released", "released"]
    # finance may force a reservation past the limit (an approved hold)
    async with engine.begin() as conn:
        assert not await credit.reserve(conn, ids[-1], "nordic-parts", "EUR", 5000_00, NOW)
        assert await credit.reserve(conn, ids[-1], "nordic-parts", "EUR", 5000_00, NOW, force=True)
    async with engine.connect() as conn:
        limits = await credit.load_limits(conn)
    # limit 10,000.00 - reserved (7 x 1,000 + 5,000) - consumed 1,000 = -3,000.00
    assert limits[("nordic-parts", "EUR")].available_minor == -3000_00


def _varied_batch() -> list[Candidate]:
    """Two units, several debtors, creditors and currencies, names shared and absent, odd timestamps."""
    out = []
    for n in range(40):
        out.append(
            cand(
                f"{100 + n * 37}.{n % 100:02d}",
                currency=("EUR", "USD", "JPY")[n % 3],
                at=T0 + timedelta(seconds=n * 83, microseconds=(n * 7919) % 1_000_000 if n % 4 else 0),
                debtor=f"debtor-{n % 3}",
                creditor=f"creditor-{n % 7}",
                creditor_name=("Nordic Parts AB", "Ünïcode Lieferant GmbH", "", "Acme")[n % 4],
                remittance=f"Rechnung {n} — ünïcode",
                business_unit=("ops", "payroll")[n % 2],
            )
        )
    return out


async def _core_history(conn: AsyncConnection) -> History:
    """Every stored row, read through SQLAlchemy Core into a History (the reference for the driver-level load)."""
    history = History()
    for r in await conn.execute(select(risk_counters)):
        ckey = (r.business_unit, r.subject, r.key, r.currency, r.bucket_seconds)
        history.counters.setdefault(ckey, {})[r.bucket_start] = [r.count, r.sum_minor]
    for r in await conn.execute(select(risk_pairs)):
        history.pairs[(r.business_unit, r.debtor_key, r.creditor_key, r.currency)] = PairStats(r.count, r.amounts)
    for r in await conn.execute(select(risk_beneficiaries)):
        history.beneficiaries[(r.business_unit, r.creditor_key)] = Beneficiary(r.first_seen, r.count, r.max_minor)
    for r in await conn.execute(select(risk_names)):
        history.names.setdefault((r.business_unit, r.creditor_name), NameAccounts()).accounts[r.creditor_key] = r.count
    for r in await conn.execute(select(risk_recent).order_by(risk_recent.c.id)):
        history.recent.setdefault((r.business_unit, r.creditor_key), []).append(
            Recent(r.at, r.instruction_id, r.currency, r.amount_minor, r.remittance)
        )
    return history


def _state(history: History) -> tuple[Any, ...]:
    return history.counters, history.pairs, history.beneficiaries, history.names, history.recent


ONE_HOP = pytest.mark.parametrize("one_hop", [True, False], ids=["one-hop", "statement-by-statement"])


@ONE_HOP
async def test_driver_level_load_and_save_round_trip_the_history_core_reads(engine: AsyncEngine, one_hop: bool) -> None:
    batch = _varied_batch()
    written = History(86_400, counters=COUNTERS)
    for i, c in enumerate(batch):
        written.record(c, learn=i % 5 != 0)
    async with engine.begin() as conn:
        await save_history(conn, written, NOW, one_hop=one_hop)
    async with engine.connect() as conn:
        core = await _core_history(conn)
        loaded = await load_history(conn, batch, COUNTERS, 86_400, one_hop=one_hop)
        in_thread = await sqlite_thread(conn, enabled=one_hop) is not None
    assert in_thread == (one_hop and engine.dialect.name == "sqlite")
    assert _state(loaded) == _state(written) == _state(core)
    recent = next(iter(loaded.recent.values()))[0]
    assert recent.at.tzinfo is not None and recent.at in {c.at for c in batch}
    # a second save adds to the counters atomically and overwrites what is last-writer-wins
    for c in batch[:3]:
        loaded.record(c, learn=True)
    async with engine.begin() as conn:
        await save_history(conn, loaded, NOW, one_hop=one_hop)
    async with engine.connect() as conn:
        again = await load_history(conn, batch, COUNTERS, 86_400, one_hop=one_hop)
        core = await _core_history(conn)
    assert _state(again) == _state(loaded) == _state(core)


async def test_both_paths_load_the_same_history_for_every_candidate_subset(engine: AsyncEngine) -> None:
    batch = _varied_batch()
    written = History(86_400, counters=COUNTERS)
    for i, c in enumerate(batch):
        written.record(c, learn=i % 3 != 0)
    async with engine.begin() as conn:
        await save_history(conn, written, NOW)
    async with engine.connect() as conn:
        for subset in ([batch[0]], [batch[2]], batch[:5], batch[7:8] + batch[30:33], batch, []):
            one = await load_history(conn, subset, COUNTERS, 86_400, one_hop=True)
            each = await load_history(conn, subset, COUNTERS, 86_400, one_hop=False)
            assert _state(one) == _state(each)
            assert bool(one.beneficiaries) == bool(subset)
        # no recent payments asked for: no recent query on either path
        assert not (await load_history(conn, batch, COUNTERS, 0)).recent


async def _count_driver_trips(conn: AsyncConnection, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every trip to aiosqlite's thread on ``conn`` from now on (statements, commits, one-hop runs)."""
    driver = (await conn.get_raw_connection()).driver_connection
    execute, trips = driver._execute, []

    async def counted(work: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(work)
        return await execute(work, *args, **kwargs)

    monkeypatch.setattr(driver, "_execute", counted)
    return trips


async def test_screening_gives_the_same_outcomes_and_stored_state_on_both_paths(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    risk = load_risk(REPO / "config" / "risk.yaml", Plugins(load_entry_points=False).risk_rule_classes(), b"k" * 32)
    ids = [await insert_instruction(engine) for _ in range(5)]
    async with engine.begin() as conn:
        await credit.set_limit(conn, "nordic-parts", "EUR", Money("2500.00", "EUR"), "hold", NOW)
    batch = _varied_batch()
    limited = [
        dataclasses.replace(
            cand(f"{900 + 50 * n}.00", at=T0 + timedelta(hours=1, minutes=n), remittance=memo, instruction_id=i),
            counterparty="nordic-parts",
        )
        for n, (i, memo) in enumerate(zip(ids, ("Alpha", "Bravo", "Charlie", "Delta", "Echo"), strict=True))
    ]
    # single payments, batches, a payment seen again (duplicate), credit limits reserved and passed
    batches = [[c] for c in batch[:4]] + [batch[4:20], limited[:2], batch[20:] + limited[2:]]
    batches.append([dataclasses.replace(batch[0], instruction_id="ins-paid-twice")])
    runs = {}
    for one_hop in (True, False):
        screener = Screener(risk, one_hop=one_hop)
        async with engine.connect() as conn:
            tx = await conn.begin()
            trips = await _count_driver_trips(conn, monkeypatch) if engine.dialect.name == "sqlite" else []
            outcomes, trips_per_batch = [], []
            for group in batches:
                before = len(trips)
                for s in await screener.evaluate(conn, group, NOW):
                    outcomes.append((s.candidate.instruction_id, s.outcome, s.reason_code, s.findings))
                trips_per_batch.append(len(trips) - before)
            if engine.dialect.name == "sqlite" and one_hop:  # reads, rules, credit, writes: one trip per batch
                assert trips_per_batch == [1] * len(batches)
            reserved = sorted(tuple(r) for r in await conn.execute(select(credit_reservations)))
            stored = (_state(await _core_history(conn)), await credit.load_limits(conn), reserved)
            await tx.rollback()
            assert _state(await _core_history(conn)) == _state(History())  # the one-hop writes rolled back too
        runs[one_hop] = outcomes, stored
    assert runs[True] == runs[False]
    outcomes, (_, limits, reserved) = runs[True]
    # the comparison covers history hits, holds and a passed credit limit, not just quiet passes
    assert {o for _, o, _, _ in outcomes} >= {Outcome.PASS, Outcome.HOLD}
    assert sum(code == "CREDIT_LIMIT" for _, _, code, _ in outcomes) == 3 and len(reserved) == 2
    assert any(f.rule == "duplicate" for _, _, _, findings in outcomes for f in findings)
    assert limits[("nordic-parts", "EUR")].reserved_minor == (900 + 950) * 100
