"""Holds: payments waiting for finance, decided by four eyes, expiring when nobody decides.

- **approve** (finance scope, never the key that submitted the instruction):
  ``held → accepted``, a new dispatch job, credit exposure reserved (finance
  accepted going past a limit), and the payment teaches the history what is
  usual (a held payment did not, see ``History.record``).
- **reject**: ``held → rejected`` (reason code ``HOLD_REJECTED``), final; the
  business unit sees it as a status event.
- **expire** (scheduled): undecided holds past ``expires_at`` are rejected
  with ``HOLD_EXPIRED``.

Each decision is one transaction: the transition event (source ``operator``
for finance, ``dispatcher`` for expiry, as the status-event contract names
them; actor = the deciding key id; reason with who and the comment), the hold
row (who, when, why) and, on approval, the outbox job and the exposure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.clock import Clock
from gateway.domain.events import Announce
from gateway.domain.status import Status
from gateway.errors import ConflictError, FourEyesError, NotFoundError
from gateway.risk import credit
from gateway.risk.engine import RiskEngine
from gateway.risk.screening import Screener
from gateway.risk.store import load_history, save_history
from gateway.store import repo
from gateway.store.orders import Orders
from gateway.store.repo import Principal, Transition
from gateway.store.tables import business_units, holds, instructions, outbox

__all__ = ["HOLD_EXPIRED", "HOLD_REJECTED", "HoldDesk", "hold_query", "hold_view"]

log = logging.getLogger(__name__)
S = Status
HOLD_REJECTED = "HOLD_REJECTED"
HOLD_EXPIRED = "HOLD_EXPIRED"


def hold_query() -> Any:
    """Holds joined with their instruction and business unit (for views)."""
    return select(
        holds,
        instructions.c.reference,
        instructions.c.status,
        instructions.c.amount,
        instructions.c.currency,
        instructions.c.creditor_name,
        instructions.c.masked,
        instructions.c.created_at,
        business_units.c.name.label("business_unit"),
    ).select_from(
        holds.join(instructions, instructions.c.id == holds.c.instruction_id).join(
            business_units, business_units.c.id == holds.c.business_unit_id
        )
    )


def hold_view(row: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "instruction_id": row.instruction_id,
        "reference": row.reference,
        "business_unit": row.business_unit,
        "status": row.status,
        "amount": row.amount,
        "currency": row.currency,
        "creditor": {"name": row.creditor_name, "account": (row.masked or {}).get("creditor")},
        "reason_code": row.reason_code,
        "findings": row.findings,
        "held_at": iso(row.held_at),
        "expires_at": iso(row.expires_at),
        "decision": row.decision,
        "decided_by": row.decided_by,
        "decided_at": iso(row.decided_at),
        "comment": row.comment,
    }


async def _locked_hold(conn: AsyncConnection, instruction_id: str) -> Any:
    query = hold_query().where(holds.c.instruction_id == instruction_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=holds)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFoundError(f"no hold for instruction {instruction_id!r}")
    return row


class HoldDesk:
    """Decides holds: finance's approvals and rejections, and the scheduled expiry."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        orders: Orders,
        screener: Screener,
        risk: RiskEngine,
        announce: Announce,
        wake_dispatcher: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.orders = orders
        self.screener = screener
        self.risk = risk
        self.announce = announce
        #: an approved payment has a new dispatch job: tell the dispatcher not to wait for its next poll
        self.wake_dispatcher = wake_dispatcher

    async def decide(self, principal: Principal, instruction_id: str, approve: bool, comment: str) -> dict[str, Any]:
        """Approve or reject a hold (see module docstring); returns the hold's view after the decision."""
        order = None
        if approve:
            found = await self.orders.load_many([instruction_id])
            if instruction_id in found:
                row, order = found[instruction_id]
        now = self.clock()
        async with self.engine.begin() as conn:
            hold = await _locked_hold(conn, instruction_id)
            if hold.decision is not None:
                raise ConflictError(
                    f"this hold was already decided: {hold.decision} at {hold.decided_at:%Y-%m-%d %H:%M} UTC"
                )
            submitted_by = await conn.scalar(
                select(instructions.c.submitted_by).where(instructions.c.id == instruction_id)
            )
            if submitted_by is not None and submitted_by == principal.key_id:
                raise FourEyesError(
                    "four eyes: the API key that submitted this payment cannot decide its hold; "
                    "use a finance key of another person"
                )
            verb = "approved" if approve else "rejected"
            reason = f"{verb} by {principal.business_unit} (key {principal.key_id}): {comment}"
            transition = (
                Transition(instruction_id, S.ACCEPTED, "operator", reason=reason, actor=principal.key_id)
                if approve
                else Transition(
                    instruction_id,
                    S.REJECTED,
                    "operator",
                    reason_code=HOLD_REJECTED,
                    reason=reason,
                    actor=principal.key_id,
                )
            )
            records = await repo.record_transitions(conn, [transition], now)
            if not records[0].decision:
                raise ConflictError(f"the payment is no longer held (status {records[0].previous.value!r})")
            await conn.execute(
                update(holds)
                .where(holds.c.instruction_id == instruction_id)
                .values(decision=verb, decided_by=principal.key_id, decided_at=now, comment=comment)
            )
            if approve and order is not None:
                await self._release(conn, row, order, now)
            view = hold_view(await _locked_hold(conn, instruction_id))
        self.announce(r.change for r in records)
        _log_decision(instruction_id, verb, f"by key {principal.key_id} ({principal.business_unit})", principal.key_id)
        if approve:
            self.wake_dispatcher()
        return view

    async def _release(self, conn: AsyncConnection, row: dict[str, Any], order: Any, now: datetime) -> None:
        """Approval: reserve exposure (even past the limit: finance decided), learn, queue for routing."""
        candidate = self.screener.candidate(row, order)
        if candidate.counterparty:  # reserves only where that counterparty has a limit in this currency
            await credit.reserve(
                conn, order.id, candidate.counterparty, candidate.currency, candidate.amount_minor, now, force=True
            )
        if self.risk.has_rules:  # nothing reads history without rules (as in screening)
            # learning reads and writes pairs, beneficiaries and names only: no counters, no recent payments
            history = await load_history(conn, [candidate], (), 0)
            history.learn_only(candidate)
            await save_history(conn, history, now)
        await conn.execute(
            outbox.insert().values(
                instruction_id=order.id, kind="dispatch", available_at=now, attempts=0, created_at=now
            )
        )

    async def expire(self, limit: int = 500) -> int:
        """Reject undecided holds whose time is up; returns how many were rejected."""
        now = self.clock()
        async with self.engine.begin() as conn:
            query = (
                select(holds.c.instruction_id)
                .join(instructions, instructions.c.id == holds.c.instruction_id)
                .where(holds.c.decision.is_(None), holds.c.expires_at <= now, instructions.c.status == S.HELD.value)
                .order_by(holds.c.instruction_id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=holds, skip_locked=True)
            due = [r.instruction_id for r in await conn.execute(query)]
            if not due:
                return 0
            records = await repo.record_transitions(
                conn,
                [
                    Transition(
                        i, S.REJECTED, "dispatcher", reason_code=HOLD_EXPIRED, reason="hold expired without a decision"
                    )
                    for i in due
                ],
                now,
            )
            expired = [i for i, r in zip(due, records, strict=True) if r.decision]
            if expired:
                await conn.execute(
                    update(holds)
                    .where(holds.c.instruction_id.in_(expired))
                    .values(decision="expired", decided_at=now, comment="no decision before expiry")
                )
        self.announce(r.change for r in records)
        for instruction_id in expired:
            _log_decision(instruction_id, "expired", "without a decision", None)
        return len(expired)


def _log_decision(instruction_id: str, decision: str, how: str, actor: str | None) -> None:
    """The one INFO line per hold decision (after its commit)."""
    log.info(
        "hold on %s %s %s",
        instruction_id,
        decision,
        how,
        extra={"instruction_id": instruction_id, "decision": decision, "actor": actor},
    )
