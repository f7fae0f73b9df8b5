"""Status polling: an APScheduler job asks partners about payments with no final status.

Callbacks usually arrive first; polling covers the ones that never do. Both go
through ``gateway.tracking``, so whichever comes first wins and the other is
recorded as a duplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.dispatch import log_partner_failure
from gateway.errors import AdapterError
from gateway.risk.holds import expire_holds
from gateway.risk.store import prune_history
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
        self._others: set[asyncio.Task[object]] = set()

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
        risk = self.rt.settings.section("risk")
        for job_id, job, seconds in (
            ("hold-expiry", self.expire_holds, float(risk.get("hold_expiry_check_seconds", 60))),
            ("risk-prune", self.prune_risk_history, float(risk.get("prune_seconds", 600))),
        ):
            self._scheduler.add_job(
                self._guarded,
                "interval",
                args=[job_id, job],
                seconds=seconds,
                id=job_id,
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop scheduling polls and let a poll in progress finish (up to ``grace`` seconds)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None
        running = [t for t in (self._running, *self._others) if t is not None and not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()

    async def _scheduled(self) -> None:
        """The scheduler's job: one round of polling, tracked so ``stop`` can let it finish."""
        self._running = asyncio.current_task()
        try:
            await self.poll_due()
        finally:
            self._running = None

    async def _guarded(self, name: str, job: Callable[[], Awaitable[int]]) -> None:
        """Run a housekeeping job; its failure is logged and retried at the next interval."""
        self._others.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            done = await job()
            if done:
                log.info("%s: %d rows", name, done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next interval", name)
        finally:
            self._others.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def expire_holds(self) -> int:
        """Reject holds nobody decided before they expired."""
        return await expire_holds(self.rt)

    async def prune_risk_history(self) -> int:
        """Delete risk counters and recent payments that no configured window reaches any more."""
        risk = self.rt.risk
        keep_counters = max(risk.bucket_sizes, default=60) * 26
        async with self.rt.engine.begin() as conn:
            return await prune_history(conn, self.rt.clock(), keep_counters, max(risk.recent_seconds, 3600) * 2)

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
            log_partner_failure(adapter.name, instruction_id, "status query", exc.slug, exc.message)
            return UpdateSummary()
        if update is None:
            return UpdateSummary()
        if update.instruction_id is None and update.partner_reference is None:
            update = dataclasses.replace(update, instruction_id=instruction_id)
        return await apply_updates(self.rt, adapter.name, [update], source="poll")
