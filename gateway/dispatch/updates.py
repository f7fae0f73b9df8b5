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

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.domain.clock import Clock
from gateway.domain.events import Announce
from gateway.domain.status import Status, decide
from gateway.partners.adapter import StatusUpdate
from gateway.partners.capture import PartnerMessage
from gateway.store import repo
from gateway.store.partner_messages import save_messages

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


@dataclass
class _Request:
    """One caller's updates waiting for the next group commit."""

    adapter: str
    updates: Sequence[StatusUpdate]
    source: str
    #: the partner messages that carried the updates: written with them (those about no payment yet: a
    #: callback, linked to the payments its updates are found to be about)
    messages: Sequence[PartnerMessage] = ()
    future: asyncio.Future[UpdateSummary] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Found:
    """An instruction a partner reported on: its id and its status as the group commit goes."""

    instruction_id: str
    status: Status


class StatusUpdates:
    """Applies what partners report (callbacks and polls alike), group-committed.

    Reports that arrive while a commit is in progress (concurrent callbacks, a poll round) are
    written together in the next transaction: one commit, one fsync, one look-up and one
    ``record_transitions`` for all of them, instead of one per report. Each caller gets its own
    summary once the transaction holding its updates is committed; if a group fails, its reports
    are written again one by one, so one bad report fails alone.
    """

    def __init__(self, engine: AsyncEngine, clock: Clock, announce: Announce) -> None:
        self.engine = engine
        self.clock = clock
        self.announce = announce
        self._pending: list[_Request] = []
        self._writer: asyncio.Task[None] | None = None

    async def apply(
        self,
        adapter: str,
        updates: Sequence[StatusUpdate],
        *,
        source: str,
        messages: Sequence[PartnerMessage] = (),
    ) -> UpdateSummary:
        """Record the updates and the partner ``messages`` that carried them (in one transaction with whatever
        else is waiting); announce after commit."""
        request = _Request(adapter, list(updates), source, list(messages))
        self._pending.append(request)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="status-updates")
        return await request.future

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                await self._commit(group)
            except Exception as exc:
                if len(group) == 1:
                    if not group[0].future.done():
                        group[0].future.set_exception(exc)
                    continue
                for request in group:  # alone, so one bad report does not fail the others
                    try:
                        await self._commit([request])
                    except Exception as alone:
                        if not request.future.done():
                            request.future.set_exception(alone)

    async def _commit(self, group: Sequence[_Request]) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            found = await _find(conn, [(r.adapter, u) for r in group for u in r.updates])
            transitions: list[repo.Transition] = []
            counted: list[tuple[int, int]] = []  # (request index, index of its transition)
            summaries = [[0, 0, 0] for _ in group]  # applied, ignored, unknown
            strangers: dict[tuple[str, str], list[str]] = {}
            messages: list[PartnerMessage] = []
            references: dict[str, str] = {}  # instruction id -> partner reference an acknowledgement names
            for n, request in enumerate(group):
                about: dict[str, None] = {}
                for update in request.updates:
                    target = found.get((request.adapter, update.instruction_id, update.partner_reference))
                    if target is not None:
                        about[target.instruction_id] = None
                    if target is None:
                        summaries[n][2] += 1
                        strangers.setdefault((request.adapter, request.source), []).append(
                            update.instruction_id or update.partner_reference or "?"
                        )
                        continue
                    if update.status is None:  # acknowledgement only
                        if update.partner_reference:  # the first one reported, as one update at a time would keep
                            references.setdefault(target.instruction_id, update.partner_reference)
                        summaries[n][1] += 1
                        continue
                    for status, reason in _implied(target.status, update.status):
                        transitions.append(
                            repo.Transition(
                                target.instruction_id,
                                status,
                                request.source,
                                partner_reference=update.partner_reference,
                                reason=reason,
                            )
                        )
                        target.status = status
                    counted.append((n, len(transitions)))
                    transitions.append(
                        repo.Transition(
                            target.instruction_id,
                            update.status,
                            request.source,
                            partner_reference=update.partner_reference,
                            partner_status=update.partner_status,
                            reason_code=update.reason_code,
                            reason=update.reason,
                        )
                    )
                    if decide(target.status, update.status).applied:
                        target.status = update.status
                messages += [
                    m if m.instruction_ids else dataclasses.replace(m, instruction_ids=tuple(about))
                    for m in request.messages
                ]
            await repo.set_partner_references(conn, references)
            records = await repo.record_transitions(conn, transitions, now)
            if messages:
                await save_messages(conn, messages)
        for n, index in counted:
            summaries[n][0 if records[index].decision else 1] += 1
        self.announce(r.change for r in records)
        for (adapter, source), names in strangers.items():
            shown = ", ".join(repr(s[:40]) for s in names[:5]) + (", …" if len(names) > 5 else "")
            log.warning(
                "%s reported %d payment(s) this gateway did not route to it (%s): %s",
                adapter,
                len(names),
                source,
                shown,
            )
        for request, (applied, ignored, unknown) in zip(group, summaries, strict=True):
            if not request.future.done():
                request.future.set_result(UpdateSummary(applied, ignored, unknown))


async def _find(
    conn: AsyncConnection, reported: Sequence[tuple[str, StatusUpdate]]
) -> dict[tuple[str, str | None, str | None], _Found]:
    """The instruction each (adapter, update) is about, only if it went to that adapter: two look-ups in all.

    By instruction id first, else by the partner's reference. One
    ``_Found`` per instruction, shared by every update about it, so its status follows the group.
    """
    ids = {u.instruction_id for _, u in reported if u.instruction_id}
    refs = {u.partner_reference for _, u in reported if u.partner_reference}
    by_id, by_ref = await repo.find_many_by_partner(conn, ids, refs)
    shared: dict[str, _Found] = {}

    def one(row: tuple[str, str, str] | None, adapter: str) -> _Found | None:
        if row is None or row[1] != adapter:
            return None
        instruction_id, _, status = row
        return shared.setdefault(instruction_id, _Found(instruction_id, Status(status)))

    out: dict[tuple[str, str | None, str | None], _Found] = {}
    for adapter, update in reported:
        key = (adapter, update.instruction_id, update.partner_reference)
        target = one(by_id.get(update.instruction_id or ""), adapter)
        if target is None and update.partner_reference:
            target = next(
                (f for row in by_ref.get(update.partner_reference, []) if (f := one(row, adapter)) is not None), None
            )
        if target is not None:
            out[key] = target
    return out
