"""The scheduler: APScheduler jobs for status polling and housekeeping.

Status polling asks partners about payments with no final status. Callbacks
usually arrive first; polling covers the ones that never do. Both go through
``gateway.dispatch.updates``, so whichever comes first wins and the other is
recorded as a duplicate. Beside it: hold expiry, risk-history pruning, the
expiry of distributor credit reservations nobody turned into a receivable, and
the jobs the composition root adds (``extra``: the data-lake export, the event
relay), each at its own interval.

With several processes on one database each job runs once per interval, not once
per process: a run first takes the job's lease (``gateway.store.processes.take_job_lease``)
and is skipped if another live process holds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import CreditLineSettings, DispatchSettings, RiskJobSettings
from gateway.dispatch.dispatcher import log_partner_failure, message_log
from gateway.dispatch.updates import StatusUpdates, UpdateSummary
from gateway.domain.clock import Clock
from gateway.errors import AdapterError
from gateway.partners.adapter import Adapter, PaymentOrder, StatusUpdate
from gateway.partners.capture import about, capturing
from gateway.risk.engine import RiskEngine
from gateway.risk.holds import HoldDesk
from gateway.risk.store import prune_history
from gateway.store import repo
from gateway.store.creditlines import expire_reservations
from gateway.store.orders import Orders
from gateway.store.processes import take_job_lease

__all__ = ["Job", "Scheduler", "SchedulerServices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerServices:
    """What the scheduled jobs work with; the composition root (``gateway.runtime``) builds it."""

    engine: AsyncEngine
    clock: Clock
    orders: Orders
    adapters: Mapping[str, Adapter]
    updates: StatusUpdates
    holds: HoldDesk
    risk: RiskEngine


@dataclass(frozen=True)
class Job:
    """A housekeeping job: its id, the coroutine (returning rows done) and its interval."""

    id: str
    run: Callable[[], Awaitable[int]]
    seconds: float


class Scheduler:
    """Runs the status poll, hold expiry, risk pruning and the ``extra`` jobs at their intervals."""

    def __init__(
        self,
        services: SchedulerServices,
        dispatch: DispatchSettings,
        risk: RiskJobSettings,
        credit: CreditLineSettings | None = None,
        extra: Sequence[Job] = (),
        owner: str | None = None,
    ) -> None:
        self.services = services
        self.credit_check_seconds = credit.expiry_check_seconds if credit else 60.0
        self.extra = list(extra)
        #: the process running the jobs (its job leases carry it); ``None``: no leases, run every time
        self.owner = owner
        self.dispatch = dispatch
        self.interval = dispatch.status_poll_interval_seconds
        self.after = dispatch.status_poll_after_seconds
        self.risk_jobs = risk
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
        for job_id, job, seconds in (
            ("hold-expiry", self.expire_holds, self.risk_jobs.hold_expiry_check_seconds),
            ("risk-prune", self.prune_risk_history, self.risk_jobs.prune_seconds),
            ("credit-reservation-expiry", self.expire_credit_reservations, self.credit_check_seconds),
            *((j.id, j.run, j.seconds) for j in self.extra),
        ):
            self._scheduler.add_job(
                self._guarded,
                "interval",
                args=[job_id, job, seconds],
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
            if await self._leased("status-poll", self.interval):
                await self.poll_due()
        finally:
            self._running = None

    async def _leased(self, name: str, seconds: float) -> bool:
        """Whether this process runs ``name`` this time (it holds the job's lease for 1.5 intervals)."""
        if self.owner is None:
            return True
        now = self.services.clock()
        try:
            async with self.services.engine.begin() as conn:
                return await take_job_lease(conn, name, self.owner, now, now + timedelta(seconds=seconds * 1.5))
        except Exception:
            log.exception("could not take the lease of scheduled job %s; skipping this run", name)
            return False

    async def _guarded(self, name: str, job: Callable[[], Awaitable[int]], seconds: float = 0.0) -> None:
        """Run a housekeeping job; its failure is logged and retried at the next interval."""
        self._others.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            if not await self._leased(name, seconds):
                return
            done = await job()
            if done:
                log.info("%s: %d rows", name, done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next interval", name)
        finally:
            self._others.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def run_now(self, job_id: str) -> int | None:
        """Run one of the ``extra`` jobs at once, under its lease as the schedule would (what it did;
        ``None`` when another process holds the lease). ``KeyError`` for a job that is not scheduled."""
        job = next((j for j in self.extra if j.id == job_id), None)
        if job is None:
            raise KeyError(job_id)
        if not await self._leased(job.id, job.seconds):
            return None
        return await job.run()

    async def expire_holds(self) -> int:
        """Reject holds nobody decided before they expired."""
        return await self.services.holds.expire()

    async def expire_credit_reservations(self) -> int:
        """Release distributor credit reservations that expired before becoming receivables."""
        async with self.services.engine.begin() as conn:
            return await expire_reservations(conn, self.services.clock())

    async def prune_risk_history(self) -> int:
        """Delete risk counters and recent payments that no configured window reaches any more."""
        keep_counters, keep_recent = self.services.risk.retention()
        async with self.services.engine.begin() as conn:
            return await prune_history(conn, self.services.clock(), keep_counters, keep_recent)

    async def poll_due(self) -> UpdateSummary:
        """Poll every payment that has waited longer than ``status_poll_after_seconds``.

        The orders are read in one query, the partners asked concurrently, and what they say is
        applied per partner in one call (one transaction), not one per payment.
        """
        older_than = self.services.clock() - timedelta(seconds=self.after)
        async with self.services.engine.connect() as conn:
            due = await repo.due_for_poll(conn, older_than, self.batch)
        return await self.poll(due)

    async def poll(self, instruction_ids: Sequence[str]) -> UpdateSummary:
        """Ask the partners about these payments now and apply what they say (one call per partner)."""
        loaded = await self.services.orders.load_many(list(instruction_ids))
        log = message_log(self.dispatch, "status")
        if log is not None:
            log.know([order for _, order in loaded.values()])
        with capturing(log):
            answers = await asyncio.gather(*(self.poll_one(row, order) for row, order in loaded.values()))
        by_adapter: dict[str, list[StatusUpdate]] = {}
        news: list[str] = []
        for (_, order), answer in zip(loaded.values(), answers, strict=True):
            if answer is not None:
                by_adapter.setdefault(answer[0], []).append(answer[1])
                if answer[1].status is not None:
                    news.append(order.id)
        # Only the exchanges that brought news are kept: a payment pending for days is asked every
        # interval, and "still pending" a thousand times tells an operator nothing.
        messages = log.take(news) if log is not None else []
        total = UpdateSummary()
        for adapter, updates in by_adapter.items():
            r = await self.services.updates.apply(
                adapter, updates, source="poll", messages=[m for m in messages if m.partner == adapter]
            )
            total = UpdateSummary(total.applied + r.applied, total.ignored + r.ignored, total.unknown + r.unknown)
        return total

    async def poll_one(self, row: Mapping[str, Any], order: PaymentOrder) -> tuple[str, StatusUpdate] | None:
        """Ask the payment's partner for its status: (adapter, update), or ``None`` (no answer, or nothing yet)."""
        instruction_id = order.id
        adapter = self.services.adapters.get(row["adapter"] or "")
        if adapter is None:
            return None
        try:
            with about(adapter.name, (instruction_id,)):
                update = await adapter.poll(order)
        except AdapterError as exc:
            log_partner_failure(adapter.name, instruction_id, "status query", exc.slug, exc.message)
            return None
        if update is None:
            return None
        if update.instruction_id is None and update.partner_reference is None:
            update = dataclasses.replace(update, instruction_id=instruction_id)
        return adapter.name, update
