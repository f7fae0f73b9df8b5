"""``Lessons`` (the history import's per-chunk learning) teach exactly what ``learn_only`` of each payment teaches.

In memory, from an empty and from a filled history (pair memory overflowing), and through the
store on SQLite and PostgreSQL: ``learn_lessons`` writes the rows that loading, ``learn_only``
of each payment and saving write.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.risk.history import PAIR_MEMORY, History, Lessons
from gateway.risk.model import Candidate
from gateway.risk.store import learn_lessons, load_history, save_history
from gateway.store.tables import risk_beneficiaries, risk_names, risk_pairs
from tests.support import NOW


def payments(seed: int, count: int) -> list[Candidate]:
    """Payments over few units, debtors, creditors, currencies and names, so every key repeats (some past memory)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        minor = rng.choice([rng.randint(1, 10**6), 100_00])
        out.append(
            Candidate(
                instruction_id=f"migrated:H-{n}",
                business_unit=rng.choice(["erp", "shop"]),
                at=NOW + timedelta(minutes=rng.randint(-(10**5), 10**5)),
                type="credit_transfer",
                currency=rng.choice(["EUR", "USD"]),
                amount=Decimal(minor).scaleb(-2),
                amount_minor=minor,
                debtor_key=rng.choice(["d1", "d2"]),
                creditor_key=f"c{rng.randint(1, 3)}",
                debtor_name="acme",
                creditor_name=rng.choice(["", "nordic parts", "supplier 2"]),
                remittance="",
            )
        )
    return out


def lessons_of(candidates: list[Candidate]) -> Lessons:
    lessons = Lessons()
    for c in candidates:
        lessons.add(c.business_unit, c.debtor_key, c.creditor_key, c.currency, c.amount_minor, c.at, c.creditor_name)
    return lessons


def snapshot(history: History) -> tuple[object, ...]:
    return (
        {k: (v.count, v.amounts) for k, v in history.pairs.items()},
        {k: (v.first_seen, v.count, v.max_minor) for k, v in history.beneficiaries.items()},
        {k: dict(v.accounts) for k, v in history.names.items()},
        history.changes,
    )


def test_learning_the_lessons_of_payments_is_learning_each_in_order() -> None:
    for seed in range(20):
        before, batch = payments(seed, 600), payments(seed + 1000, 600)
        one_by_one, all_at_once = History(), History()
        for history in (one_by_one, all_at_once):
            for c in before:
                history.learn_only(c)
        for c in batch:
            one_by_one.learn_only(c)
        all_at_once.learn_all(lessons_of(batch))
        assert snapshot(all_at_once) == snapshot(one_by_one)
        assert any(len(s.amounts) == PAIR_MEMORY for s in all_at_once.pairs.values())  # memory overflowed


async def test_learned_lessons_store_the_rows_learning_each_payment_stores(engine: AsyncEngine) -> None:
    async def stored() -> tuple[list[object], ...]:
        async with engine.connect() as conn:
            out = []
            for t in (risk_pairs, risk_beneficiaries, risk_names):
                rows = (await conn.execute(select(t))).all()
                out.append(sorted(tuple(v for k, v in r._mapping.items() if k != "updated_at") for r in rows))
            return tuple(out)

    async def clear() -> None:
        async with engine.begin() as conn:
            for t in (risk_pairs, risk_beneficiaries, risk_names):
                await conn.execute(t.delete())

    chunks = [payments(seed, 250) for seed in range(4)]
    for chunk in chunks:  # as before: each chunk's history loaded, each payment learned, saved
        async with engine.begin() as conn:
            history = await load_history(conn, chunk, (), 0)
            for c in chunk:
                history.learn_only(c)
            await save_history(conn, history, NOW)
    one_by_one = await stored()
    await clear()
    for chunk in chunks:
        async with engine.begin() as conn:
            await learn_lessons(conn, lessons_of(chunk), NOW)
    assert await stored() == one_by_one
    assert all(one_by_one)
