"""Rebates: accrual as volume arrives, and the settlement of a period (docs/credit-and-rebates.md).

``accrue`` runs inside the transaction that raises a receivable (``invoiced``
volume) or applies receipt money to one (``collected`` volume): the row of
``rebate_accruals`` for the program, distributor, period and currency counts the
volume and the rebate accrued so far, and the accrual is posted to the ledger
(``rebate_accrued``) at the rate of the tier the period's volume has now reached
(never past the cap). Volume that arrives for a period already settled is not
counted: a settlement is final.

``settle`` computes a row's final amount, posts the true-up (final - accrued:
``rebate_accrued`` up, ``rebate_reversed`` down) and either nets the final
amount against the distributor's open receivables in that currency (a credit
note, oldest due first, booked ``rebate_credited``; what finds no open invoice
stays payable) or books the payout instruction the caller accepted through
normal intake (``rebate_paid``). It marks the row settled in the same
transaction, so a second settlement finds nothing to do.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import read_yaml_file
from gateway.domain.rebates import Program, ProgramError, parse_programs, period_of
from gateway.errors import ConfigError
from gateway.store.creditlines import OPEN_STATUSES, adjust_receivables
from gateway.store.journal import post, rules_for
from gateway.store.tables import rebate_accruals, receivables

__all__ = [
    "accrual_periods",
    "accrual_rows",
    "accrue",
    "bind_programs",
    "load_programs",
    "payout_reference",
    "programs_for",
    "settle",
]

_BOUND: weakref.WeakKeyDictionary[Any, Mapping[str, Program]] = weakref.WeakKeyDictionary()


def load_programs(path: Path | None) -> dict[str, Program]:
    """The programs of ``path`` (None: none); ``ConfigError`` with one line naming the key otherwise."""
    if path is None:
        return {}
    try:
        return parse_programs(read_yaml_file(path, "rebate programs"), str(path))
    except ProgramError as exc:
        raise ConfigError(str(exc)) from None


def bind_programs(engine: AsyncEngine, programs: Mapping[str, Program]) -> None:
    """Accrue on ``engine`` by ``programs`` (the runtime does this at start; none bound: nothing accrues)."""
    _BOUND[engine.sync_engine] = dict(programs)


def programs_for(conn: AsyncConnection) -> Mapping[str, Program]:
    return _BOUND.get(conn.engine.sync_engine, {})


def payout_reference(distributor: str, period: str, currency: str) -> str:
    """The payout instruction's reference for one settled row (deterministic: one per row, at most 35 characters)."""
    reference = f"REB-{distributor}-{period}-{currency}"
    if len(reference) <= 35:
        return reference
    digest = hashlib.sha256(reference.encode()).hexdigest()[:10].upper()
    return f"REB-{distributor[:8]}-{digest}-{period}-{currency}"


async def _book(
    conn: AsyncConnection, kind: str, now: datetime, currency: str, amount: int, memo: str, **fields: Any
) -> None:
    rules = rules_for(conn)
    if rules is None or kind not in rules.events or amount <= 0:
        return
    entry = rules.event(kind, currency=currency, amounts={"amount": amount}, memo=memo, **fields)
    await post(conn, [entry], now, rules)


def _key(program: str, distributor: str, period: str, currency: str) -> Any:
    c = rebate_accruals.c
    return (c.program == program) & (c.distributor == distributor) & (c.period == period) & (c.currency == currency)


async def _row(conn: AsyncConnection, where: Any) -> Any:
    return (await conn.execute(select(rebate_accruals).where(where).with_for_update())).mappings().first()


async def accrue(
    conn: AsyncConnection, basis: str, distributor: str, currency: str, volume: int, now: datetime, memo: str
) -> None:
    """Count ``volume`` (minor units) for the distributor's program on ``basis`` and post its accrual."""
    if volume <= 0:
        return
    for program in programs_for(conn).values():
        if program.basis != basis or distributor not in program.distributors:
            continue
        period = period_of(program.period, now)
        where = _key(program.id, distributor, period, currency)
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(rebate_accruals)
        await conn.execute(
            ins.values(
                program=program.id,
                distributor=distributor,
                period=period,
                currency=currency,
                volume_minor=0,
                accrued_minor=0,
                updated_at=now,
            ).on_conflict_do_nothing(index_elements=["program", "distributor", "period", "currency"])
        )
        row = await _row(conn, where)
        if row["settled_at"] is not None:
            continue
        total = row["volume_minor"] + volume
        add = program.accrual(volume, total, row["accrued_minor"], currency)
        await conn.execute(
            update(rebate_accruals)
            .where(where)
            .values(volume_minor=total, accrued_minor=row["accrued_minor"] + add, updated_at=now)
        )
        await _book(
            conn,
            "rebate_accrued",
            now,
            currency,
            add,
            f"rebate {program.id} {period}: {memo}",
            distributor=distributor,
        )


async def accrual_rows(conn: AsyncConnection, period: str) -> list[dict[str, Any]]:
    """The period's rows, by program, distributor and currency."""
    c = rebate_accruals.c
    rows = await conn.execute(
        select(rebate_accruals).where(c.period == period).order_by(c.program, c.distributor, c.currency)
    )
    return [dict(r) for r in rows.mappings()]


async def accrual_periods(conn: AsyncConnection, limit: int = 40) -> list[str]:
    """The periods that have rows, newest first (quarters and months as written: ``2026-Q4``, ``2026-11``)."""
    c = rebate_accruals.c
    rows = await conn.scalars(select(c.period).distinct().order_by(c.period.desc()).limit(limit))
    return list(rows)


async def _credit_note(
    conn: AsyncConnection, distributor: str, currency: str, amount: int, memo: str, now: datetime
) -> list[list[Any]]:
    """Net ``amount`` against the distributor's open receivables, oldest due first; the allocations."""
    c = receivables.c
    rows = (
        await conn.execute(
            select(c.id, c.invoice_number, c.amount_minor, c.paid_minor)
            .where(c.distributor == distributor, c.currency == currency, c.status.in_(OPEN_STATUSES))
            .order_by(c.due_date, c.id)
            .with_for_update()
        )
    ).all()
    left, allocations = amount, []
    for r in rows:
        if left <= 0:
            break
        part = min(left, r.amount_minor - r.paid_minor)
        if part <= 0:
            continue
        await conn.execute(
            update(receivables)
            .where(c.id == r.id)
            .values(
                paid_minor=c.paid_minor + part,
                status=case((c.paid_minor + part >= c.amount_minor, "paid"), else_="partially_paid"),
                updated_at=now,
            )
        )
        await _book(
            conn,
            "rebate_credited",
            now,
            currency,
            part,
            f"{memo} credited to invoice {r.invoice_number}",
            distributor=distributor,
        )
        await adjust_receivables(conn, distributor, currency, -part, now)
        allocations.append([r.id, part])
        left -= part
    return allocations


async def settle(
    conn: AsyncConnection,
    program: Program,
    row: Mapping[str, Any],
    now: datetime,
    *,
    payout: tuple[str, str] | None = None,
) -> dict[str, Any] | None:
    """Settle one row (caller's transaction); None if it was settled already.

    ``payout``: (business unit name, accepted instruction id) for a program that
    settles by payout; the instruction must exist already (normal intake).
    """
    where = _key(row["program"], row["distributor"], row["period"], row["currency"])
    current = await _row(conn, where)
    if current is None or current["settled_at"] is not None:
        return None
    cur, dist = current["currency"], current["distributor"]
    final = program.amount(current["volume_minor"], cur)
    true_up = final - current["accrued_minor"]
    memo = f"rebate {program.id} {current['period']} {dist}"
    if true_up > 0:
        await _book(conn, "rebate_accrued", now, cur, true_up, f"{memo}: true-up", distributor=dist)
    elif true_up < 0:
        await _book(conn, "rebate_reversed", now, cur, -true_up, f"{memo}: true-up", distributor=dist)
    allocations: Sequence[Any] = []
    credited = 0
    if program.settlement == "credit_note":
        allocations = await _credit_note(conn, dist, cur, final, memo, now)
        credited = sum(a[1] for a in allocations)
    elif payout is not None and final > 0:
        business_unit, instruction_id = payout
        await _book(
            conn,
            "rebate_paid",
            now,
            cur,
            final,
            f"{memo} paid by {instruction_id}",
            distributor=dist,
            business_unit=business_unit,
        )
    await conn.execute(
        update(rebate_accruals)
        .where(where)
        .values(
            final_minor=final,
            credited_minor=credited,
            allocations=list(allocations),
            instruction_id=payout[1] if payout else None,
            settled_at=now,
            updated_at=now,
        )
    )
    return {**dict(current), "final_minor": final, "true_up_minor": true_up, "credited_minor": credited}
