"""Apply partner status updates (from callbacks or polls) to instructions.

Out-of-order and duplicate updates are safe: each goes through the state
machine (``gateway.domain.status``) and an update that cannot apply is recorded as
ignored. An update is only accepted for an instruction that was routed to the
adapter that reports it.

A return (``returned``) proves the payment settled first. When the partner's
settlement report was lost or overtaken by the return, the settlement is
recorded as implied by the return, so ``settled → returned`` applies instead of
the return being refused as illegal and the payment resting in ``submitted``.

Likewise a partner's outcome proves the payment was submitted: when it arrives
for a payment still ``routed`` (the gateway sent it, then was killed before it
recorded the submission, and the status query or callback answers first), the
submission is recorded as implied, in the same transaction, so the history shows
every state the payment passed through (``routed → submitted → settled``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.clock import Clock
from gateway.domain.events import Announce, StatusChange
from gateway.domain.status import Status
from gateway.partners.adapter import StatusUpdate
from gateway.store import repo

__all__ = ["StatusUpdates", "UpdateSummary"]

log = logging.getLogger(__name__)

_BEFORE_SETTLED = frozenset({Status.ROUTED, Status.SUBMITTED})
#: what only a partner that has the payment can report
_PARTNER_OUTCOMES = frozenset({Status.SETTLED, Status.REJECTED, Status.FAILED, Status.RETURNED})


def _implied(current: Status, reported: Status) -> list[tuple[Status, str]]:
    """The statuses a partner's report proves the payment passed through, not yet recorded (in order)."""
    implied: list[tuple[Status, str]] = []
    if current is Status.ROUTED and reported in _PARTNER_OUTCOMES:
        implied.append((Status.SUBMITTED, "implied by the partner's report on the payment"))
        current = Status.SUBMITTED
    if reported is Status.RETURNED and current in _BEFORE_SETTLED:
        implied.append((Status.SETTLED, "implied by the partner's return report"))
    return implied


@dataclass(frozen=True)
class UpdateSummary:
    applied: int = 0
    ignored: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"applied": self.applied, "ignored": self.ignored, "unknown": self.unknown}


class StatusUpdates:
    """Applies what partners report (callbacks and polls alike)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, announce: Announce) -> None:
        self.engine = engine
        self.clock = clock
        self.announce = announce

    async def apply(self, adapter: str, updates: Sequence[StatusUpdate], *, source: str) -> UpdateSummary:
        """Record every update in one transaction; announce applied changes after commit."""
        applied = ignored = unknown = 0
        strangers: list[str] = []  # what the partner named, for one aggregated warning
        changes: list[StatusChange | None] = []
        now = self.clock()
        async with self.engine.begin() as conn:
            for update in updates:
                found = await repo.find_by_partner(conn, adapter, update.instruction_id, update.partner_reference)
                if found is None:
                    unknown += 1
                    strangers.append(update.instruction_id or update.partner_reference or "?")
                    continue
                instruction_id, current = found
                if update.status is None:  # acknowledgement only
                    if update.partner_reference:
                        await repo.set_partner_reference(conn, instruction_id, update.partner_reference)
                    ignored += 1
                    continue
                for status, reason in _implied(current, update.status):
                    implied = await repo.record_status(
                        conn,
                        instruction_id,
                        status,
                        source=source,
                        now=now,
                        partner_reference=update.partner_reference,
                        reason=reason,
                    )
                    changes.append(implied.change)
                rec = await repo.record_status(
                    conn,
                    instruction_id,
                    update.status,
                    source=source,
                    now=now,
                    partner_reference=update.partner_reference,
                    partner_status=update.partner_status,
                    reason_code=update.reason_code,
                    reason=update.reason,
                )
                changes.append(rec.change)
                if rec.decision:
                    applied += 1
                else:
                    ignored += 1
        self.announce(changes)
        if strangers:
            shown = ", ".join(repr(s[:40]) for s in strangers[:5]) + (", …" if len(strangers) > 5 else "")
            log.warning(
                "%s reported %d payment(s) this gateway did not route to it (%s): %s",
                adapter,
                len(strangers),
                source,
                shown,
            )
        return UpdateSummary(applied, ignored, unknown)
