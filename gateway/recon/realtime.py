"""Real time: statement lines matched as payments settle, not only when someone runs reconciliation.

A plugin (registered by the runtime when ``reconciliation.realtime`` is true)
hears every committed status change; after a payment settles it schedules one
reconciliation run for the payment's partner, shortly after (``delay``), so a
burst of callbacks makes one run. A line that arrived before the callback (an
intraday notification, a statement read early) is matched by that run; the
end-of-day statement's line for the same payment then is a ``duplicate`` for
finance to clear (docs/reconciliation.md, "Real time").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.domain.events import StatusChange
from gateway.domain.status import Status
from gateway.errors import GatewayError
from gateway.plugins.hookspecs import hookimpl
from gateway.recon.rules import ReconRules
from gateway.recon.service import run_recon
from gateway.store.tables import instructions, recon_match_lines, statement_lines, statements

__all__ = ["RealtimeRecon"]

log = logging.getLogger(__name__)


class RealtimeRecon:
    """After payments settle, one debounced reconciliation run per partner with unmatched lines."""

    def __init__(
        self, engine: AsyncEngine, rules: ReconRules, clock: Callable[[], datetime], delay: float = 0.2
    ) -> None:
        self._engine = engine
        self._rules = rules
        self._clock = clock
        self._delay = delay
        self._settled: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    @hookimpl
    def gateway_status_changed(self, change: StatusChange) -> None:
        if change.current != Status.SETTLED:
            return
        self._settled.add(change.instruction_id)
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._soon())
            except RuntimeError:  # no loop (a CLI command changing statuses): the next run matches them
                self._settled.clear()

    async def _soon(self) -> None:
        await asyncio.sleep(self._delay)
        ids, self._settled = sorted(self._settled), set()
        try:
            for source in await self._partners_waiting(ids):
                report = await run_recon(self._engine, self._rules, now=self._clock(), source=source)
                self.runs += 1
                log.info("real-time reconciliation of %s: %s", source, report.as_dict())
        except GatewayError as exc:  # a concurrent run took them: the next one finishes
            log.warning("real-time reconciliation skipped: %s", exc.message)

    async def _partners_waiting(self, ids: list[str]) -> list[str]:
        """The partners of these payments that have booked statement lines not matched yet."""
        open_line = exists().where(
            and_(
                statement_lines.c.statement_pk == statements.c.id,
                statement_lines.c.kind == "booked",
                ~exists().where(
                    and_(
                        recon_match_lines.c.statement_pk == statement_lines.c.statement_pk,
                        recon_match_lines.c.line == statement_lines.c.line,
                    )
                ),
            )
        )
        async with self._engine.connect() as conn:
            adapters = set()
            for i in range(0, len(ids), 500):
                rows = await conn.scalars(
                    select(instructions.c.adapter).where(instructions.c.id.in_(ids[i : i + 500])).distinct()
                )
                adapters.update(a for a in rows.all() if a)
            if not adapters:
                return []
            rows = await conn.scalars(
                select(statements.c.source).where(statements.c.source.in_(sorted(adapters)), open_line).distinct()
            )
            return sorted(rows.all())

    async def close(self) -> None:
        """Wait for a scheduled run (it is short) so nothing is left half done at shutdown."""
        if self._task is not None and not self._task.done():
            await self._task
