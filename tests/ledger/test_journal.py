"""The journal: every lifecycle path posts balanced entries in the transition's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.status import Status
from gateway.finance import books
from gateway.ledger.errors import LedgerError, PeriodError, UnbalancedEntryError
from gateway.ledger.model import Entry, Posting
from gateway.ledger.rules import load_rules
from gateway.store import repo
from gateway.store.audit import verify
from gateway.store.journal import bind, post
from gateway.store.tables import instructions, ledger_entries
from tests.support import NOW, insert_instruction

S = Status
AMOUNT = 125_000  # the example instruction: EUR 1,250.00


async def _move(
    engine: AsyncEngine, instruction_id: str, *path: tuple[Status, str | None], now: datetime = NOW
) -> list[bool]:
    applied = []
    for status, adapter in path:
        async with engine.begin() as conn:
            rec = await repo.record_status(conn, instruction_id, status, source="test", now=now, adapter=adapter)
        applied.append(rec.decision.applied)
    return applied


async def _books(engine: AsyncEngine, instruction_id: str) -> dict[tuple[str, str], int]:
    async with engine.connect() as conn:
        return (await books.instruction_books(conn, [instruction_id]))[instruction_id]


async def _expected(engine: AsyncEngine, instruction_id: str) -> dict[tuple[str, str], int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    instructions.c.status, instructions.c.adapter, instructions.c.currency, instructions.c.amount_minor
                ).where(instructions.c.id == instruction_id)
            )
        ).one()
    return books.position_of(load_rules(), {**row._mapping, "business_unit": "erp"})


async def _balanced(conn: AsyncConnection) -> dict[str, int]:
    return books.summarise(await books.trial_balance(conn))


PATHS = {
    "settled": [(S.ACCEPTED, None), (S.ROUTED, "bank"), (S.SUBMITTED, "bank"), (S.SETTLED, "bank")],
    "returned after settlement": [
        (S.ACCEPTED, None),
        (S.ROUTED, "bank"),
        (S.SUBMITTED, "bank"),
        (S.SETTLED, "bank"),
        (S.RETURNED, "bank"),
    ],
    "rejected after submission": [(S.ACCEPTED, None), (S.ROUTED, "bank"), (S.SUBMITTED, "bank"), (S.REJECTED, "bank")],
    "failed when submitted": [(S.ACCEPTED, None), (S.ROUTED, "bank"), (S.FAILED, "bank")],
    "held then cancelled": [(S.ACCEPTED, None), (S.HELD, None), (S.CANCELLED, None)],
    "rejected by screening": [(S.REJECTED, None)],
    "skipped submitted": [(S.ACCEPTED, None), (S.ROUTED, "bank"), (S.SETTLED, "bank")],
    "failover": [
        (S.ACCEPTED, None),
        (S.ROUTED, "bank"),
        (S.ACCEPTED, "bank"),
        (S.ROUTED, "card"),
        (S.SUBMITTED, "card"),
        (S.SETTLED, "card"),
    ],
}
FINAL_BOOKS = {
    "settled": {("bu:erp:receivable", "EUR"): AMOUNT, ("partner:bank:bank", "EUR"): -AMOUNT},
    "returned after settlement": {},
    "rejected after submission": {},
    "failed when submitted": {},
    "held then cancelled": {},
    "rejected by screening": {},
    "skipped submitted": {("bu:erp:receivable", "EUR"): AMOUNT, ("partner:bank:bank", "EUR"): -AMOUNT},
    "failover": {("bu:erp:receivable", "EUR"): AMOUNT, ("partner:card:bank", "EUR"): -AMOUNT},
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_every_lifecycle_path_posts_balanced_entries_matching_its_final_status(
    engine: AsyncEngine, path: str
) -> None:
    instruction_id = await insert_instruction(engine)
    for step in PATHS[path]:
        assert await _move(engine, instruction_id, step) == [True]
        assert await _books(engine, instruction_id) == await _expected(engine, instruction_id)
        async with engine.connect() as conn:
            assert set((await _balanced(conn)).values()) <= {0}
    assert await _books(engine, instruction_id) == FINAL_BOOKS[path]
    async with engine.connect() as conn:
        in_transit = await books.account_balances(conn, "partner:bank:in_transit")
        assert all(b.balance == 0 for b in in_transit)
        assert (await verify(conn)).ok


async def test_a_skipped_state_posts_what_it_would_have_posted(engine: AsyncEngine) -> None:
    direct, stepwise = await insert_instruction(engine), await insert_instruction(engine)
    await _move(engine, direct, *PATHS["skipped submitted"])
    await _move(engine, stepwise, *PATHS["settled"])
    assert await _books(engine, direct) == await _books(engine, stepwise)


async def test_duplicate_and_stale_transitions_post_nothing(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine)
    await _move(engine, instruction_id, *PATHS["settled"])
    async with engine.connect() as conn:
        before = await conn.scalar(select(func.count()).select_from(ledger_entries))
    assert (
        await _move(engine, instruction_id, (S.SETTLED, "bank"), (S.SUBMITTED, "bank"), (S.ROUTED, "bank"))
        == [False] * 3
    )
    async with engine.connect() as conn:
        assert (
            await conn.scalar(select(func.count()).select_from(ledger_entries)) == before == 3
        )  # routed holds what accepted holds


async def test_entries_are_written_in_the_transitions_transaction_and_roll_back_with_it(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine)
    await _move(engine, instruction_id, (S.ACCEPTED, None), (S.ROUTED, "bank"))

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with engine.begin() as conn:
            rec = await repo.record_status(conn, instruction_id, S.SETTLED, source="callback", now=NOW)
            assert rec.decision.applied
            assert (await books.instruction_books(conn, [instruction_id]))[instruction_id]  # posted, not committed
            raise Crash
    async with engine.connect() as conn:
        assert await conn.scalar(select(instructions.c.status).where(instructions.c.id == instruction_id)) == "routed"
        assert await conn.scalar(select(func.count()).select_from(ledger_entries)) == 1  # received → accepted only
        assert (await verify(conn)).ok


async def test_an_unbalanced_or_float_entry_is_refused_naming_the_entry_and_the_imbalance(engine: AsyncEngine) -> None:
    lopsided = Entry(
        "fee", (Posting("fees:bank", "EUR", 100), Posting("partner:bank:bank", "EUR", -90)), "fee", "ins_1"
    )
    floaty = Entry("fee", (Posting("fees:bank", "EUR", 1.5), Posting("partner:bank:bank", "EUR", -1.5)), "fee")  # type: ignore[arg-type]
    async with engine.begin() as conn:
        with pytest.raises(
            UnbalancedEntryError, match=r"fee entry of instruction ins_1 \(fee\) does not balance: EUR \+10"
        ) as err:
            await post(conn, [lopsided], NOW)
        assert err.value.imbalance == {"EUR": 10}
        with pytest.raises(UnbalancedEntryError, match=r"1\.5 on fees:bank is not an integer"):
            await post(conn, [floaty], NOW)
        assert await conn.scalar(select(func.count()).select_from(ledger_entries)) == 0


async def test_balances_as_of_an_instant_read_the_running_totals(engine: AsyncEngine) -> None:
    first, second = await insert_instruction(engine), await insert_instruction(engine)
    t1, t2 = NOW, NOW + timedelta(hours=1)
    await _move(engine, first, *PATHS["settled"], now=t1)
    await _move(engine, second, *PATHS["settled"], now=t2)
    async with engine.connect() as conn:
        (now,) = await books.account_balances(conn, "bu:erp:receivable")
        (then,) = await books.account_balances(conn, "bu:erp:receivable", as_of=t1 + timedelta(minutes=30))
        (before,) = await books.account_balances(conn, "bu:erp:receivable", as_of=t1 - timedelta(seconds=1))
    assert (now.balance, then.balance, before.balance) == (2 * AMOUNT, AMOUNT, 0)
    assert now.type == "asset" and now.business_unit == "erp"


async def test_a_correction_is_a_reversing_entry_linked_to_the_original(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine)
    async with engine.begin() as conn:
        fee = await books.post_event(
            conn, "fee", currency="EUR", amounts={"amount": 250}, now=NOW, adapter="bank", instruction_id=instruction_id
        )
    async with engine.begin() as conn:
        correction = await books.reverse(conn, fee, NOW, "fee charged twice")
    async with engine.begin() as conn:
        with pytest.raises(LedgerError, match=f"already reversed by entry {correction}"):
            await books.reverse(conn, fee, NOW)
    async with engine.connect() as conn:
        (original, reversal) = await books.entries(conn, instruction_id=instruction_id)
        (fees,) = await books.account_balances(conn, "fees:bank")
    assert reversal.reverses == original.id and reversal.memo == "fee charged twice"
    assert [p.amount for p in reversal.postings] == [-p.amount for p in original.postings]
    assert (fees.debits, fees.credits, fees.balance) == (250, 250, 0)


async def test_an_event_kind_without_a_rule_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(LedgerError, match="no ledger rule for event kind 'rebate'"):
            await books.post_event(conn, "rebate", currency="EUR", amounts={"amount": 1}, now=NOW)


async def test_backfill_posts_what_instructions_hold_and_nothing_the_second_time(engine: AsyncEngine) -> None:
    settled, returned, moving = [await insert_instruction(engine) for _ in range(3)]
    bind(engine, None)  # the ledger did not exist yet
    await _move(engine, settled, *PATHS["settled"])
    await _move(engine, returned, *PATHS["returned after settlement"])
    await _move(engine, moving, *PATHS["settled"][:3])  # submitted
    bind(engine, load_rules())
    assert await _books(engine, settled) == {}
    later = NOW + timedelta(days=1)
    assert await books.backfill(engine, later) == (3, 2)
    assert await books.backfill(engine, later) == (3, 0)
    await _move(engine, moving, (S.SETTLED, "bank"))  # moves on after the backfill, with the ledger on
    for instruction_id in (settled, returned, moving):
        assert await _books(engine, instruction_id) == await _expected(engine, instruction_id)
    async with engine.connect() as conn:
        (entry,) = await books.entries(conn, instruction_id=settled)
        assert entry.memo == "backfill: settled" and entry.original_at == NOW
        assert set((await _balanced(conn)).values()) == {0}
        assert (await verify(conn)).ok


async def test_a_closed_period_takes_no_entries_late_events_book_in_the_open_one(engine: AsyncEngine) -> None:
    instruction_id = await insert_instruction(engine)
    december = datetime(2026, 12, 2, tzinfo=UTC)
    async with engine.begin() as conn:
        with pytest.raises(PeriodError, match="period 2026-12 has not ended yet"):
            await books.close_period(conn, "2026-12", december, "test")
        with pytest.raises(PeriodError, match="is not YYYY-MM"):
            await books.close_period(conn, "2026-13", december, "test")
        assert await books.close_period(conn, "2026-11", december, "test") is True
        assert await books.close_period(conn, "2026-10", december, "test") is False  # closed with it
    await _move(engine, instruction_id, (S.ACCEPTED, None), now=NOW)  # an event of 26 November, after the close
    async with engine.connect() as conn:
        (entry,) = await books.entries(conn, instruction_id=instruction_id)
    assert entry.booked_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert entry.original_at == NOW
