"""Credit exposure follows the payment: reservations move in the transaction of each status transition.

A reservation (made at screening, ``gateway.risk.credit``) moves to ``consumed``
when its payment settles and is released when it fails, is rejected or
cancelled, or (once consumed) is returned. ``record_transitions`` calls
``settle_exposure`` with the transitions it applied, so the books of the credit
limits never disagree with the payments' statuses.

A limit is not a lifetime cap: consumed exposure (settled, not yet seen on the
bank's statement) is released when reconciliation confirms the payment on a
statement (``release_reconciled``, called by ``gateway.recon.matching`` in the
transaction that confirms the match). From then on the payment is final on the
account and the limit is free again. A payment confirmed on a statement while
its reservation is still ``reserved`` (the statement came before the partner's
status) is released the same way; its later ``settled`` moves nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.domain.status import Status
from gateway.store.tables import credit_limits, credit_reservations

__all__ = ["release_reconciled", "settle_exposure"]

S = Status
_RELEASE_FROM_RESERVED = frozenset({S.FAILED, S.REJECTED, S.CANCELLED})


async def settle_exposure(conn: AsyncConnection, changes: Sequence[tuple[str, Status]], now: datetime) -> None:
    """Move reservations along with applied status changes (called inside ``record_transitions``)."""
    relevant = {i: s for i, s in changes if s in _RELEASE_FROM_RESERVED or s in (S.SETTLED, S.RETURNED)}
    if not relevant:
        return
    found = await conn.execute(
        select(credit_reservations).where(
            credit_reservations.c.instruction_id.in_(sorted(relevant)),
            credit_reservations.c.state.in_(("reserved", "consumed")),
        )
    )
    moves: list[dict[str, Any]] = []
    for r in found:
        status = relevant[r.instruction_id]
        if r.state == "reserved" and status is S.SETTLED:
            moves.append(_move(r, "consumed", -r.amount_minor, r.amount_minor))
        elif r.state == "reserved" and status in _RELEASE_FROM_RESERVED:
            moves.append(_move(r, "released", -r.amount_minor, 0))
        elif r.state == "consumed" and status is S.RETURNED:
            moves.append(_move(r, "released", 0, -r.amount_minor))
    if not moves:
        return
    await _apply(conn, moves, now)


async def _apply(conn: AsyncConnection, moves: list[dict[str, Any]], now: datetime) -> None:
    """Write the reservations' new states and the limits' deltas (one executemany each)."""
    await conn.execute(
        update(credit_reservations)
        .where(credit_reservations.c.instruction_id == bindparam("m_id"))
        .values(state=bindparam("m_state"), updated_at=now),
        moves,
    )
    await conn.execute(
        update(credit_limits)
        .where(credit_limits.c.counterparty == bindparam("m_cp"), credit_limits.c.currency == bindparam("m_cur"))
        .values(
            reserved_minor=credit_limits.c.reserved_minor + bindparam("m_reserved"),
            consumed_minor=credit_limits.c.consumed_minor + bindparam("m_consumed"),
            updated_at=now,
        ),
        moves,
    )


def _move(r: Any, state: str, reserved: int, consumed: int) -> dict[str, Any]:
    return {
        "m_id": r.instruction_id,
        "m_state": state,
        "m_cp": r.counterparty,
        "m_cur": r.currency,
        "m_reserved": reserved,
        "m_consumed": consumed,
    }


async def release_reconciled(conn: AsyncConnection, instruction_ids: Sequence[str], now: datetime) -> int:
    """Release the exposure of payments a statement confirms (called with confirmed matches); how many."""
    if not instruction_ids:
        return 0
    found = await conn.execute(
        select(credit_reservations).where(
            credit_reservations.c.instruction_id.in_(sorted(set(instruction_ids))),
            credit_reservations.c.state.in_(("reserved", "consumed")),
        )
    )
    moves = [
        _move(r, "released", -r.amount_minor, 0) if r.state == "reserved" else _move(r, "released", 0, -r.amount_minor)
        for r in found
    ]
    if not moves:
        return 0
    await _apply(conn, moves, now)
    return len(moves)
