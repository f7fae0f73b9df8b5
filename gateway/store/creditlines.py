"""Distributor credit lines: a limit per distributor and currency, what is used of it, reservations.

Used = open receivables (amount not yet paid) + pending reservations; available =
limit - used. Both parts are counters on the line's row, so a reservation is one
conditional update, as for the outgoing credit limits (``gateway.risk.credit``)::

    UPDATE distributor_credit_lines SET reserved_minor = reserved_minor + :a
     WHERE distributor = :d AND currency = :c
       AND limit_minor - receivables_minor - reserved_minor >= :a

The row lock makes the check and the increment one step on SQLite and on
PostgreSQL, so concurrent reservations never take a line past its limit. The
counters move in the transaction of what moves them: a receivable raised
(``adjust_receivables``), a receipt applied to one (the same, negative), a
reservation converted into a receivable or expired. These lines are the credit the
enterprise gives its distributors (money in); ``credit_limits`` bound the exposure
of outgoing payments to a payee and are unrelated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.money import Money
from gateway.domain.receivables import ReceivableStatus
from gateway.store.tables import distributor_credit_lines, distributor_reservations, receivables

__all__ = [
    "OPEN_STATUSES",
    "CreditLine",
    "adjust_receivables",
    "convert_reservation",
    "expire_reservations",
    "get_reservation",
    "lines_of",
    "money_view",
    "oldest_overdue",
    "reservation_view",
    "reserve",
    "set_line",
]

OPEN_STATUSES = (ReceivableStatus.OPEN.value, ReceivableStatus.PARTIALLY_PAID.value)


def money_view(minor: int, currency: str) -> dict[str, str]:
    """An amount as the API shows it: ``{"value": "12.50", "currency": "EUR"}``."""
    return {"value": str(Money.from_minor(minor, currency).amount), "currency": currency}


@dataclass(frozen=True, slots=True)
class CreditLine:
    distributor: str
    currency: str
    limit_minor: int
    receivables_minor: int
    reserved_minor: int

    @property
    def used_minor(self) -> int:
        return self.receivables_minor + self.reserved_minor

    @property
    def available_minor(self) -> int:
        return max(0, self.limit_minor - self.used_minor)

    def view(self) -> dict[str, Any]:
        return {
            "distributor": self.distributor,
            "currency": self.currency,
            "limit": money_view(self.limit_minor, self.currency),
            "open_receivables": money_view(self.receivables_minor, self.currency),
            "reserved": money_view(self.reserved_minor, self.currency),
            "used": money_view(self.used_minor, self.currency),
            "available": money_view(self.available_minor, self.currency),
        }


def _line(row: Any) -> CreditLine:
    return CreditLine(row.distributor, row.currency, row.limit_minor, row.receivables_minor, row.reserved_minor)


async def lines_of(conn: AsyncConnection, distributor: str, currency: str | None = None) -> list[CreditLine]:
    """The distributor's credit lines (one per currency), by currency."""
    stmt = select(distributor_credit_lines).where(distributor_credit_lines.c.distributor == distributor)
    if currency is not None:
        stmt = stmt.where(distributor_credit_lines.c.currency == currency)
    return [_line(r) for r in await conn.execute(stmt.order_by(distributor_credit_lines.c.currency))]


async def _open_receivables(conn: AsyncConnection, distributor: str, currency: str) -> int:
    total = await conn.scalar(
        select(func.coalesce(func.sum(receivables.c.amount_minor - receivables.c.paid_minor), 0)).where(
            receivables.c.distributor == distributor,
            receivables.c.currency == currency,
            receivables.c.status.in_(OPEN_STATUSES),
        )
    )
    return int(total or 0)


async def set_line(
    conn: AsyncConnection, distributor: str, currency: str, limit_minor: int, now: datetime
) -> CreditLine:
    """Create or change a line's limit; a new line starts from the distributor's open receivables."""
    changed = await conn.execute(
        update(distributor_credit_lines)
        .where(distributor_credit_lines.c.distributor == distributor, distributor_credit_lines.c.currency == currency)
        .values(limit_minor=limit_minor, updated_at=now)
    )
    if not changed.rowcount:
        await conn.execute(
            distributor_credit_lines.insert().values(
                distributor=distributor,
                currency=currency,
                limit_minor=limit_minor,
                receivables_minor=await _open_receivables(conn, distributor, currency),
                reserved_minor=0,
                updated_at=now,
            )
        )
    return (await lines_of(conn, distributor, currency))[0]


async def adjust_receivables(conn: AsyncConnection, distributor: str, currency: str, delta: int, now: datetime) -> None:
    """Move a line's open receivables by ``delta`` minor units (nothing when the distributor has no line)."""
    if delta:
        await conn.execute(
            update(distributor_credit_lines)
            .where(
                distributor_credit_lines.c.distributor == distributor, distributor_credit_lines.c.currency == currency
            )
            .values(receivables_minor=distributor_credit_lines.c.receivables_minor + delta, updated_at=now)
        )


async def oldest_overdue(conn: AsyncConnection, distributor: str, due_before: date) -> Any:
    """The distributor's open receivable that fell due longest ago, before ``due_before``; None if none."""
    return (
        await conn.execute(
            select(receivables.c.id, receivables.c.invoice_number, receivables.c.due_date)
            .where(
                receivables.c.distributor == distributor,
                receivables.c.status.in_(OPEN_STATUSES),
                receivables.c.due_date < due_before,
            )
            .order_by(receivables.c.due_date)
            .limit(1)
        )
    ).first()


async def reserve(
    conn: AsyncConnection,
    *,
    reservation_id: str,
    distributor: str,
    currency: str,
    amount_minor: int,
    business_unit_id: str,
    order_reference: str | None,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Reserve credit on the line if it has that much available (one conditional update); False if not."""
    c = distributor_credit_lines.c
    taken = await conn.execute(
        update(distributor_credit_lines)
        .where(
            c.distributor == distributor,
            c.currency == currency,
            c.limit_minor - c.receivables_minor - c.reserved_minor >= amount_minor,
        )
        .values(reserved_minor=c.reserved_minor + amount_minor, updated_at=now)
    )
    if not taken.rowcount:
        return False
    await conn.execute(
        distributor_reservations.insert().values(
            id=reservation_id,
            distributor=distributor,
            currency=currency,
            amount_minor=amount_minor,
            state="pending",
            order_reference=order_reference,
            business_unit_id=business_unit_id,
            receivable_id=None,
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
        )
    )
    return True


async def get_reservation(conn: AsyncConnection, reservation_id: str) -> Any:
    return (
        (await conn.execute(select(distributor_reservations).where(distributor_reservations.c.id == reservation_id)))
        .mappings()
        .first()
    )


def reservation_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "distributor": row["distributor"],
        "amount": money_view(row["amount_minor"], row["currency"]),
        "state": row["state"],
        "order_reference": row["order_reference"],
        "receivable_id": row["receivable_id"],
        "expires_at": row["expires_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }


async def _release(conn: AsyncConnection, row: Any, state: str, receivable_id: str | None, now: datetime) -> bool:
    """Move a pending reservation to ``state`` and give its amount back to the line; False if it was not pending."""
    moved = await conn.execute(
        update(distributor_reservations)
        .where(distributor_reservations.c.id == row["id"], distributor_reservations.c.state == "pending")
        .values(state=state, receivable_id=receivable_id, updated_at=now)
    )
    if not moved.rowcount:
        return False
    c = distributor_credit_lines.c
    await conn.execute(
        update(distributor_credit_lines)
        .where(c.distributor == row["distributor"], c.currency == row["currency"])
        .values(reserved_minor=c.reserved_minor - row["amount_minor"], updated_at=now)
    )
    return True


async def convert_reservation(conn: AsyncConnection, row: Any, receivable_id: str, now: datetime) -> bool:
    """A pending reservation becomes a receivable (the receivable's own amount then counts); False if not pending."""
    return await _release(conn, row, "converted", receivable_id, now)


async def expire_reservations(conn: AsyncConnection, now: datetime, limit: int = 500) -> int:
    """Expire pending reservations whose time is up, giving their credit back; how many."""
    due = (
        (
            await conn.execute(
                select(distributor_reservations)
                .where(
                    and_(distributor_reservations.c.state == "pending", distributor_reservations.c.expires_at <= now)
                )
                .order_by(distributor_reservations.c.expires_at)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    done = 0
    for row in due:
        done += await _release(conn, row, "expired", None, now)
    return done
