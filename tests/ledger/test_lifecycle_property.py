"""Property: whatever order the news arrives in, the books balance and match each payment's status.

Random batches of status reports (duplicates, stale and out-of-order reports,
returns after settlement, cancellations, failovers, outcomes resolved straight
from ``routed``) go through the real store (``record_transitions``, the
dispatcher's batch path). After every batch: the trial balance is zero per
currency; each instruction's postings are exactly what its status holds; a
replay of each instruction's last report posts nothing. At the end the audit
chains verify.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.status import Status
from gateway.finance import books
from gateway.ledger.rules import load_rules
from gateway.store import repo
from gateway.store.audit import VerifyReport, verify
from gateway.store.repo import Transition
from gateway.store.tables import business_units, instructions, ledger_entries
from tests.support import NOW, Database, insert_instruction

RULES = load_rules()
report = st.tuples(
    st.integers(min_value=0, max_value=2),  # which instruction
    st.sampled_from([s for s in Status if s is not Status.RECEIVED]),
    st.sampled_from([None, "bank", "card"]),  # the adapter the report names (failover changes it)
)
batches = st.lists(st.lists(report, min_size=1, max_size=6), min_size=1, max_size=8)
payments = st.lists(
    st.tuples(st.sampled_from(["EUR", "USD", "JPY"]), st.decimals(min_value=1, max_value=99_999, places=0)),
    min_size=3,
    max_size=3,
)


async def _check(engine: AsyncEngine, ids: list[str]) -> None:
    async with engine.connect() as conn:
        assert set(books.summarise(await books.trial_balance(conn)).values()) <= {0}
        held = await books.instruction_books(conn, ids)
        rows = await conn.execute(
            select(instructions, business_units.c.name.label("business_unit"))
            .join(business_units, business_units.c.id == instructions.c.business_unit_id)
            .where(instructions.c.id.in_(ids))
        )
        for row in rows.mappings():
            assert held[row["id"]] == books.position_of(RULES, row), (row["status"], row["adapter"])


async def _run(
    engine: AsyncEngine, money: list[tuple[str, Decimal]], plan: list[list[tuple[int, Status, str | None]]]
) -> VerifyReport:
    ids = [await insert_instruction(engine, currency=cur, amount=str(amount)) for cur, amount in money]
    for batch in plan:
        transitions = [Transition(ids[i], status, "callback", adapter=adapter) for i, status, adapter in batch]
        async with engine.begin() as conn:
            await repo.record_transitions(conn, transitions, NOW)
        await _check(engine, ids)
        async with engine.connect() as conn:
            before = await conn.scalar(select(func.count()).select_from(ledger_entries))
            current = {
                r.id: Status(r.status)
                for r in await conn.execute(select(instructions).where(instructions.c.id.in_(ids)))
            }
        replay = [Transition(i, s, "callback") for i, s in current.items() if s is not Status.RECEIVED]
        async with engine.begin() as conn:
            records = await repo.record_transitions(conn, replay, NOW)
            assert not any(r.decision.applied for r in records)
            assert await conn.scalar(select(func.count()).select_from(ledger_entries)) == before
    async with engine.connect() as conn:
        return await verify(conn)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(money=payments, plan=batches)
def test_random_lifecycles_keep_the_books_balanced_and_matching_each_status(
    database: Database, money: list[tuple[str, Decimal]], plan: list[list[tuple[int, Status, str | None]]]
) -> None:
    async def go() -> VerifyReport:
        engine = database.engine()
        try:
            return await _run(engine, money, plan)
        finally:
            await engine.dispose()

    assert asyncio.run(go()).ok  # and every step's checks in _run held
