"""The event relay: status-change events to every event sink, at least once, none lost across restarts.

The event history is the outbox: every status change appends its event row in
the transaction that makes the change, numbered in the audit chain
(``chain_seq``) in commit order (``gateway.store.audit``). Each sink has a cursor
(``export_watermarks`` row ``sink:<name>``): the relay reads the events after
it, hands the applied ones to the sink and moves the cursor once ``publish``
returns. A crash between the two publishes that batch again, with the same
``dedup_id`` per event; a cursor never passes an event the sink has not taken.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.clock import Clock
from gateway.plugins.sinks import EventSink, SinkEvent
from gateway.store.tables import instruction_events, instructions
from gateway.store.watermarks import advance_watermark, read_watermark

__all__ = ["EventRelay", "cursor_name"]

log = logging.getLogger(__name__)


def cursor_name(sink: EventSink) -> str:
    """The watermark row that holds a sink's cursor."""
    return f"sink:{sink.name}"


def _no_crash(stage: str) -> None:
    return None


class EventRelay:
    """Publishes new events to each sink from its cursor; ``publish_due`` is one round."""

    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Sequence[EventSink],
        clock: Clock,
        *,
        batch: int = 500,
        crash_point: Callable[[str], None] = _no_crash,
    ) -> None:
        self.engine = engine
        self.sinks = list(sinks)
        self.clock = clock
        self.batch = batch
        #: called at "published" (sink took the batch, cursor not yet moved): a test kills the relay there
        self.crash_point = crash_point
        self._opened: set[str] = set()

    async def close(self) -> None:
        for sink in self.sinks:
            if sink.name in self._opened:
                await sink.close()
        self._opened.clear()

    async def publish_due(self) -> int:
        """Publish every event beyond each sink's cursor; the number of events published."""
        total = 0
        for sink in self.sinks:
            if sink.name not in self._opened:
                await sink.open()
                self._opened.add(sink.name)
            while True:
                sent, more = await self._one_batch(sink)
                total += sent
                if not more:
                    break
        return total

    async def _one_batch(self, sink: EventSink) -> tuple[int, bool]:
        name = cursor_name(sink)
        async with self.engine.connect() as conn:
            cursor, _ = await read_watermark(conn, name)
            rows = (
                await conn.execute(
                    select(instruction_events, instructions.c.business_unit_id)
                    .join(instructions, instructions.c.id == instruction_events.c.instruction_id)
                    .where(instruction_events.c.chain_seq > cursor)
                    .order_by(instruction_events.c.chain_seq)
                    .limit(self.batch)
                )
            ).all()
        if not rows:
            return 0, False
        events = [
            SinkEvent(
                dedup_id=f"{r.instruction_id}:{r.sequence}",
                chain_seq=int(r.chain_seq),
                instruction_id=r.instruction_id,
                business_unit_id=r.business_unit_id,
                sequence=int(r.sequence),
                previous_status=r.previous_status,
                status=r.status,
                source=r.source,
                adapter=r.adapter,
                partner_reference=r.partner_reference,
                reason_code=r.reason_code,
                occurred_at=r.occurred_at,
            )
            for r in rows
            if r.applied
        ]
        if events:
            await sink.publish(events)
        self.crash_point("published")
        async with self.engine.begin() as conn:
            await advance_watermark(conn, name, cursor, int(rows[-1].chain_seq), len(events), self.clock())
        return len(events), len(rows) == self.batch
