"""Status polling: an APScheduler job asks partners about payments with no final status.

Callbacks usually arrive first; polling covers the ones that never do. Both go
through ``gateway.tracking``, so whichever comes first wins and the other is
recorded as a duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.errors import AdapterError
from gateway.store import repo
from gateway.tracking import UpdateSummary, apply_updates

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["StatusPoller"]

log = logging.getLogger(__name__)


class StatusPoller:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        cfg = runtime.settings.section("dispatch")
        self.interval = float(cfg.get("status_poll_interval_seconds", 5))
        self.after = float(cfg.get("status_poll_after_seconds", 10))
        self.batch = 100
        self._scheduler: AsyncIOScheduler | None = None
        self._running: asyncio.Task[object] | None = None

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self._scheduled,
            "interval",
            seconds=self.interval,
            id="status-poll",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling polls and let a poll in progress finish (up to ``grace`` seconds)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        running = self._running
        if running is not None and not running.done():
            try:
                await asyncio.wait_for(asyncio.shield(running), grace)
            except (TimeoutError, asyncio.CancelledError):
                running.cancel()

    async def _scheduled(self) -> None:
        """The scheduler's job: one round of polling, tracked so ``stop`` can let it finish."""
        self._running = asyncio.current_task()
        try:
            await self.poll_due()
        finally:
            self._running = None

    async def poll_due(self) -> UpdateSummary:
        """Poll every payment that has waited longer than ``status_poll_after_seconds``."""
        older_than = self.rt.clock() - timedelta(seconds=self.after)
        async with self.rt.engine.connect() as conn:
            due = await repo.due_for_poll(conn, older_than, self.batch)
        results = await asyncio.gather(*(self.poll_one(i) for i in due))
        total = UpdateSummary()
        for r in results:
            total = UpdateSummary(total.applied + r.applied, total.ignored + r.ignored, total.unknown + r.unknown)
        return total

    async def poll_one(self, instruction_id: str) -> UpdateSummary:
        row, order = await self.rt.load_order(instruction_id)
        adapter = self.rt.adapters.get(row["adapter"] or "")
        if adapter is None:
            return UpdateSummary()
        try:
            update = await adapter.poll(order)
        except AdapterError as exc:
            log.info("poll of %s at %s failed: %s", instruction_id, adapter.name, exc.message)
            return UpdateSummary()
        if update is None:
            return UpdateSummary()
        if update.instruction_id is None and update.partner_reference is None:
            update = dataclasses.replace(update, instruction_id=instruction_id)
        return await apply_updates(self.rt, adapter.name, [update], source="poll")
