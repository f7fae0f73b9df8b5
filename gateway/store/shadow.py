"""Shadow outcomes: what a partner in shadow mode would have done with a payment (docs/go-live.md).

One row per instruction and shadow partner (``shadow_outcomes``); recording the same pair
again (a dispatch resumed after a crash) replaces the row, so there is never more than one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.bulk import Write, write_all
from gateway.store.tables import shadow_outcomes

__all__ = ["OUTCOMES", "ShadowOutcome", "read_outcomes", "record_outcomes"]

#: ``rendered``: the partner's format was built and passed its contract (nothing sent);
#: ``not_rendered``: the adapter cannot render without sending; ``invalid``: the payment cannot be
#: expressed in the partner's format or breaks its contract; ``sandbox_*``: what the sandbox answered
OUTCOMES = (
    "rendered",
    "not_rendered",
    "invalid",
    "sandbox_submitted",
    "sandbox_settled",
    "sandbox_rejected",
    "sandbox_error",
)


@dataclass(frozen=True, slots=True)
class ShadowOutcome:
    instruction_id: str
    partner: str
    business_unit: str
    reference: str
    outcome: str
    recorded_at: datetime
    #: the status the new path points to (``submitted``, ``settled``, ``rejected``, ``failed``), or None
    expected_status: str | None = None
    message: str | None = None
    message_sha256: str | None = None
    reason_code: str | None = None
    detail: str | None = None


async def record_outcomes(conn: AsyncConnection, outcomes: Sequence[ShadowOutcome]) -> None:
    """Store the outcomes (one row per instruction and partner; a second recording replaces the first)."""
    rows = [
        {
            **asdict(o),
            "detail": (o.detail or None) and o.detail[:500],
            "reason_code": o.reason_code and o.reason_code[:32],
        }
        for o in outcomes
    ]
    await write_all(conn, [Write(shadow_outcomes, rows, ("instruction_id", "partner"))])


async def read_outcomes(conn: AsyncConnection, business_unit: str, partner: str | None = None) -> list[ShadowOutcome]:
    """A business unit's shadow outcomes (of one partner), oldest first."""
    t = shadow_outcomes
    query = select(t).where(t.c.business_unit == business_unit).order_by(t.c.recorded_at, t.c.instruction_id)
    if partner is not None:
        query = query.where(t.c.partner == partner)
    return [ShadowOutcome(**dict(r)) for r in (await conn.execute(query)).mappings()]
