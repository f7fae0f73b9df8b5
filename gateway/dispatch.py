"""The dispatcher: claims outbox jobs under a lease and carries each to its partner.

Crash-safe by construction: a job is leased, never removed, until its outcome
is committed; a process that dies mid-job leaves a lease that expires, and the
next claimer resumes from the instruction's recorded status. The instruction id
is the partner's idempotency key, so a resumed submit never pays twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gateway.errors import NotFoundError, PermanentPartnerError, TransientPartnerError
from gateway.events import StatusChange
from gateway.routing import choose_adapter
from gateway.status import Status
from gateway.store import repo
from gateway.store.repo import OutboxJob

if TYPE_CHECKING:
    from gateway.adapter import PaymentOrder
    from gateway.runtime import Runtime

__all__ = ["Dispatcher", "backoff_delay"]

log = logging.getLogger(__name__)
S = Status


def backoff_delay(
    attempts: int,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with "equal jitter"; never sooner than the partner's Retry-After."""
    ceiling = min(cap, base * (2**attempts))
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


class Dispatcher:
    """Claims due outbox jobs and processes them with bounded concurrency."""

    def __init__(self, runtime: Runtime, owner: str | None = None) -> None:
        self.rt = runtime
        cfg = runtime.settings.section("dispatch")
        self.owner = owner or runtime.owner
        self.concurrency = int(cfg.get("concurrency", 32))
        self.lease = float(cfg.get("lease_seconds", 60))
        self.max_attempts = int(cfg.get("max_attempts", 8))
        self.backoff_base = float(cfg.get("backoff_base_seconds", 0.5))
        self.backoff_max = float(cfg.get("backoff_max_seconds", 300))
        self.idle = float(cfg.get("idle_poll_seconds", 0.5))
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dispatcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self.claim_and_spawn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher claim failed; retrying")
                claimed = 0
            if claimed == 0 or len(self._inflight) >= self.concurrency:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle)

    async def claim(self, limit: int | None = None) -> list[OutboxJob]:
        now = self.rt.clock()
        async with self.rt.engine.begin() as conn:
            return await repo.claim_outbox(
                conn,
                self.owner,
                now,
                now + timedelta(seconds=self.lease),
                limit or self.concurrency,
            )

    async def claim_and_spawn(self) -> int:
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return 0
        jobs = await self.claim(free)
        for job in jobs:
            task = asyncio.create_task(self._guarded(job), name=f"dispatch-{job.instruction_id}")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(jobs)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.wake()

    async def run_until_idle(self, timeout: float = 30.0) -> None:
        """Process due jobs until none are left (tests and the demo use this without the loop)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            jobs = await self.claim()
            if not jobs:
                return
            await asyncio.gather(*(self._guarded(j) for j in jobs))
        raise TimeoutError("dispatcher did not become idle")

    async def _guarded(self, job: OutboxJob) -> None:
        try:
            await self.process(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("dispatch of %s failed unexpectedly", job.instruction_id)
            await self._retry(job, f"internal error: {type(exc).__name__}", None)

    async def _record(self, job_id: int | None, instruction_id: str, status: Status, **kw: object) -> None:
        """Record a status and optionally finish the job, in one transaction."""
        now = self.rt.clock()
        async with self.rt.engine.begin() as conn:
            rec = await repo.record_status(conn, instruction_id, status, now=now, source="dispatcher", **kw)  # type: ignore[arg-type]
            if job_id is not None:
                await repo.finish_outbox(conn, job_id, self.owner)
        self.rt.announce([rec.change])

    async def process(self, job: OutboxJob) -> None:
        """Screen, route and submit one instruction; record every step."""
        try:
            row, order = await self.rt.load_order(job.instruction_id)
        except NotFoundError:
            async with self.rt.engine.begin() as conn:
                await repo.finish_outbox(conn, job.id, self.owner)
            return
        status = Status(row["status"])
        changes: list[StatusChange | None] = []
        adapter_name = row["adapter"]
        if status in (S.RECEIVED, S.ACCEPTED):
            now = self.rt.clock()
            decision = choose_adapter(order, self.rt.adapters, row["channel"])
            async with self.rt.engine.begin() as conn:
                if status is S.RECEIVED:
                    rec = await repo.record_status(
                        conn,
                        order.id,
                        S.ACCEPTED,
                        source="dispatcher",
                        now=now,
                        reason="screening passed",
                    )
                    changes.append(rec.change)
                    if not rec.decision:
                        await repo.finish_outbox(conn, job.id, self.owner)
                        return self.rt.announce(changes)
                if decision.adapter is None:
                    rec = await repo.record_status(
                        conn,
                        order.id,
                        S.REJECTED,
                        source="dispatcher",
                        now=now,
                        reason_code="NO_ROUTE",
                        reason=decision.reason,
                    )
                    changes.append(rec.change)
                    await repo.finish_outbox(conn, job.id, self.owner)
                    return self.rt.announce(changes)
                rec = await repo.record_status(
                    conn,
                    order.id,
                    S.ROUTED,
                    source="dispatcher",
                    now=now,
                    adapter=decision.adapter,
                    reason=decision.reason,
                )
                changes.append(rec.change)
                if not rec.decision:  # cancelled meanwhile
                    await repo.finish_outbox(conn, job.id, self.owner)
                    return self.rt.announce(changes)
            self.rt.announce(changes)
            adapter_name = decision.adapter
        elif status is not S.ROUTED:
            # held, already submitted or final: nothing left to dispatch
            async with self.rt.engine.begin() as conn:
                await repo.finish_outbox(conn, job.id, self.owner)
            return
        await self._submit(job, adapter_name, order)

    async def _submit(self, job: OutboxJob, adapter_name: str, order: PaymentOrder) -> None:
        adapter = self.rt.adapters.get(adapter_name)
        if adapter is None:
            await self._retry(job, f"adapter {adapter_name} is not enabled", None)
            return
        try:
            result = await adapter.submit(order)
        except TransientPartnerError as exc:
            self.rt.metrics.dispatch.labels(adapter_name, "transient").inc()
            await self._retry(job, exc.message, exc.retry_after)
            return
        except PermanentPartnerError as exc:
            self.rt.metrics.dispatch.labels(adapter_name, "permanent").inc()
            await self._record(
                job.id,
                order.id,
                S.FAILED,
                adapter=adapter_name,
                reason_code=exc.reason_code or "PARTNER_ERROR",
                reason=exc.message,
            )
            return
        self.rt.metrics.dispatch.labels(adapter_name, result.status.value).inc()
        await self._record(
            job.id,
            order.id,
            result.status,
            adapter=adapter_name,
            partner_reference=result.partner_reference,
            partner_status=result.partner_status,
            reason_code=result.reason_code,
            reason=result.reason,
        )

    async def _retry(self, job: OutboxJob, error: str, retry_after: float | None) -> None:
        attempts = job.attempts + 1
        if attempts >= self.max_attempts:
            await self._record(
                job.id,
                job.instruction_id,
                S.FAILED,
                reason_code="RETRIES_EXHAUSTED",
                reason=f"gave up after {attempts} attempts: {error}",
            )
            return
        delay = backoff_delay(job.attempts, self.backoff_base, self.backoff_max, retry_after)
        when: datetime = self.rt.clock() + timedelta(seconds=delay)
        async with self.rt.engine.begin() as conn:
            await repo.retry_outbox(conn, job.id, self.owner, when, error)
        log.info("dispatch of %s retried in %.2fs: %s", job.instruction_id, delay, error)
