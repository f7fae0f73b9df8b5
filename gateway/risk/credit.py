"""Credit limits per counterparty and currency: exposure reserved at screening, race-free.

Exposure = ``reserved`` (screened, not yet final) + ``consumed`` (settled). A
payment reserves its amount with one conditional update::

    UPDATE credit_limits SET reserved = reserved + :a
     WHERE counterparty = :cp AND currency = :cur
       AND limit - reserved - consumed >= :a

The row lock makes the check and the increment one step, on SQLite and on
PostgreSQL alike, so concurrent intake can never take exposure past the limit.
A reservation moves to ``consumed`` when the payment settles and is released
when it fails, is rejected or cancelled, or (once consumed) is returned: in the
transaction of the transition itself (``gateway.store.exposure``). Limits
come from ``risk.yaml`` (inserted at start-up when absent) and the admin API
(``PUT /v1/credit-limits/{counterparty}/{currency}``), which wins afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.money import Money
from gateway.domain.status import Status
from gateway.store.bulk import Query, Statement, bind_converter, fetch_all, insert_statement, placeholders
from gateway.store.tables import credit_limits, credit_reservations

if TYPE_CHECKING:
    from gateway.risk.engine import CreditLimitSpec

__all__ = [
    "LimitRow",
    "limit_rows",
    "limit_view",
    "limits_query",
    "load_limits",
    "reserve",
    "reserve_in_sqlite_thread",
    "set_limit",
    "sync_config_limits",
]

S = Status


@dataclass(frozen=True, slots=True)
class LimitRow:
    counterparty: str
    currency: str
    limit_minor: int
    reserved_minor: int
    consumed_minor: int
    on_exceed: str
    source: str

    @property
    def available_minor(self) -> int:
        return self.limit_minor - self.reserved_minor - self.consumed_minor


def limit_view(row: LimitRow) -> dict[str, Any]:
    """The API's view of a limit: amounts as decimal strings in the currency's minor units."""

    def amount(minor: int) -> str:
        return str(Money.from_minor(minor, row.currency).amount)

    return {
        "counterparty": row.counterparty,
        "currency": row.currency,
        "limit": amount(row.limit_minor),
        "reserved": amount(row.reserved_minor),
        "consumed": amount(row.consumed_minor),
        "available": amount(row.available_minor),
        "on_exceed": row.on_exceed,
        "source": row.source,
    }


async def sync_config_limits(conn: AsyncConnection, specs: Iterable[CreditLimitSpec], now: datetime) -> int:
    """Insert the limits of ``risk.yaml`` that the database does not have yet; returns how many."""
    specs = list(specs)
    if not specs:
        return 0
    existing = {(r.counterparty, r.currency) for r in await conn.execute(select(credit_limits))}
    new = [
        {
            "counterparty": s.counterparty,
            "currency": s.currency,
            "limit_minor": s.limit.minor,
            "reserved_minor": 0,
            "consumed_minor": 0,
            "on_exceed": s.on_exceed.value,
            "source": "config",
            "updated_at": now,
        }
        for s in specs
        if (s.counterparty, s.currency) not in existing
    ]
    if new:
        await conn.execute(credit_limits.insert(), new)
    return len(new)


_LIMIT_COLUMNS = ("counterparty", "currency", "limit_minor", "reserved_minor", "consumed_minor", "on_exceed", "source")


@lru_cache(maxsize=64)
def _limits_condition(dialect: Dialect, counterparties: int | None) -> str:
    where = "" if counterparties is None else f"WHERE counterparty IN ({placeholders(dialect, counterparties)}) "
    return f"{where}ORDER BY counterparty, currency"


def limits_query(dialect: Dialect, counterparties: Iterable[str] | None = None) -> Query | None:
    """The driver-level ``SELECT`` of these counterparties' limits (every limit without); None if none to ask for."""
    if counterparties is None:
        return Query(credit_limits, _LIMIT_COLUMNS, _limits_condition(dialect, None), ())
    names = sorted(set(counterparties))
    if not names:
        return None
    return Query(credit_limits, _LIMIT_COLUMNS, _limits_condition(dialect, len(names)), names)


def limit_rows(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], LimitRow]:
    """The rows of a ``limits_query`` by (counterparty, currency)."""
    return {(r[0], r[1]): LimitRow(*r) for r in rows}


async def load_limits(
    conn: AsyncConnection, counterparties: Iterable[str] | None = None
) -> dict[tuple[str, str], LimitRow]:
    """The limits of these counterparties (every limit without), by (counterparty, currency)."""
    query = limits_query(conn.dialect, counterparties)
    return {} if query is None else limit_rows((await fetch_all(conn, [query]))[0])


async def set_limit(
    conn: AsyncConnection, counterparty: str, currency: str, limit: Money, on_exceed: str, now: datetime
) -> LimitRow:
    """Create or change a limit (admin API); exposure already reserved or consumed stays."""
    changed = await conn.execute(
        update(credit_limits)
        .where(credit_limits.c.counterparty == counterparty, credit_limits.c.currency == currency)
        .values(limit_minor=limit.minor, on_exceed=on_exceed, source="api", updated_at=now)
    )
    if not changed.rowcount:
        await conn.execute(
            credit_limits.insert().values(
                counterparty=counterparty,
                currency=currency,
                limit_minor=limit.minor,
                reserved_minor=0,
                consumed_minor=0,
                on_exceed=on_exceed,
                source="api",
                updated_at=now,
            )
        )
    found = await load_limits(conn, [counterparty])
    return found[(counterparty, currency)]


@lru_cache(maxsize=8)
def _reserve_sql(dialect: Dialect, force: bool) -> str:
    """Add to the reserved exposure where the limit allows it (``force``: whatever it allows)."""
    marks = [placeholders(dialect, 1, n) for n in range(1, 6)]
    sql = (
        f"UPDATE credit_limits SET reserved_minor = reserved_minor + {marks[0]}, updated_at = {marks[1]} "
        f"WHERE counterparty = {marks[2]} AND currency = {marks[3]}"
    )
    if not force:
        sql += f" AND limit_minor - reserved_minor - consumed_minor >= {marks[4]}"
    return sql


def _reservation(
    dialect: Dialect,
    instruction_id: str,
    counterparty: str,
    currency: str,
    amount_minor: int,
    now: datetime,
    force: bool,
) -> tuple[tuple[str, tuple[Any, ...]], Statement]:
    """The conditional ``UPDATE`` of the limit and the ``INSERT`` of the reservation (if the update hit a row)."""
    at = bind_converter(credit_limits.c.updated_at, dialect)(now)
    params = (amount_minor, at, counterparty, currency) + (() if force else (amount_minor,))
    row = {
        "instruction_id": instruction_id,
        "counterparty": counterparty,
        "currency": currency,
        "amount_minor": amount_minor,
        "state": "reserved",
        "updated_at": now,
    }
    return (_reserve_sql(dialect, force), params), insert_statement(credit_reservations, [row], dialect)


async def reserve(
    conn: AsyncConnection,
    instruction_id: str,
    counterparty: str,
    currency: str,
    amount_minor: int,
    now: datetime,
    *,
    force: bool = False,
) -> bool:
    """Reserve exposure for a payment; False if it would pass the limit (``force``: finance approved)."""
    update, insert = _reservation(conn.dialect, instruction_id, counterparty, currency, amount_minor, now, force)
    if not (await conn.exec_driver_sql(*update)).rowcount:
        return False
    await conn.exec_driver_sql(*insert)
    return True


def reserve_in_sqlite_thread(
    db: sqlite3.Connection,
    dialect: Dialect,
    instruction_id: str,
    counterparty: str,
    currency: str,
    amount_minor: int,
    now: datetime,
) -> bool:
    """``reserve`` (without ``force``) inside SQLite's thread (``SQLiteThread.run``): the same two statements."""
    update, insert = _reservation(dialect, instruction_id, counterparty, currency, amount_minor, now, False)
    if not db.execute(*update).rowcount:
        return False
    db.executemany(*insert)
    return True
