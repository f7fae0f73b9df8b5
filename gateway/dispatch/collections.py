"""Collections from the outbox to a partner and back: the collection dispatcher and the applier of
partner reports about collections.

The dispatcher leases jobs from the collections outbox (``gateway.store.collections``)
under a lease, like the instructions' dispatcher: ``dispatch`` (route and collect),
``capture`` (a manual-capture card charge) and ``refund``. Every partner call carries
the collection id (refunds: the refund id) as idempotency key, so a job re-run after
a crash or an expired lease never collects twice. A collection is routed only to an
adapter whose ``collection_kinds`` declares its kind (and currency); when none does,
it is rejected with ``NO_ROUTE`` and a reason naming the kind — never left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import DispatchSettings
from gateway.domain.clock import Clock
from gateway.domain.collection import CollectionOrder
from gateway.domain.collection_status import CollectionStatus
from gateway.domain.money import Money
from gateway.errors import AdapterError, PermanentPartnerError, TransientPartnerError
from gateway.partners.adapter import Adapter, CollectionResult, CollectionUpdate
from gateway.store import collections as store
from gateway.store.collections import CollectionTransition
from gateway.store.encryption import FieldCipher
from gateway.store.tables import business_units, collection_refunds

__all__ = [
    "CollectionDispatcher",
    "CollectionServices",
    "CollectionUpdateSummary",
    "CollectionUpdates",
    "route_collection",
]

log = logging.getLogger(__name__)

C = CollectionStatus


def route_collection(
    adapters: Mapping[str, Adapter], kind: str, currency: str, channel: str | None
) -> tuple[str | None, str]:
    """(adapter name, "") for the adapter that collects ``kind`` in ``currency``, or (None, why not)."""
    if channel is not None:
        adapter = adapters.get(channel)
        if adapter is None:
            return None, f"channel {channel} is not an enabled adapter"
        candidates = {channel: adapter}
    else:
        candidates = dict(adapters)
    kinds = [n for n, a in sorted(candidates.items()) if kind in a.collection_kinds]
    if not kinds:
        return None, f"no enabled adapter collects {kind} (none declares it in collection_kinds)"
    fits = [n for n in kinds if not adapters[n].collection_currencies or currency in adapters[n].collection_currencies]
    if not fits:
        return None, f"no adapter collects {kind} in {currency}"
    return fits[0], ""


@dataclass(frozen=True)
class CollectionServices:
    """What the collection dispatcher and the update applier use (built by the runtime)."""

    engine: AsyncEngine
    clock: Clock
    cipher: FieldCipher
    adapters: Mapping[str, Adapter]
    #: wakes the webhook worker after committed changes
    wake_webhooks: Callable[[], None] = lambda: None


async def _order(services: CollectionServices, collection_id: str) -> tuple[dict[str, Any], CollectionOrder]:
    async with services.engine.connect() as conn:
        row = await store.load_collection(conn, collection_id)
        if row is None:
            raise PermanentPartnerError(f"collection {collection_id} not found")
        name = await conn.scalar(
            business_units.select()
            .with_only_columns(business_units.c.name)
            .where(business_units.c.id == row["business_unit_id"])
        )
    return row, store.collection_order(services.cipher, row, str(name))


class CollectionDispatcher:
    """Claims collection jobs under a lease and carries them out; ``run_once`` for tests and the CLI.

    Between jobs it also polls the partner about collections whose outcome has not come by webhook
    within ``dispatch.status_poll_after_seconds`` (every ``status_poll_interval_seconds``), so a lost
    webhook never leaves a collection waiting for good.
    """

    def __init__(self, services: CollectionServices, settings: DispatchSettings, owner: str) -> None:
        self.services = services
        self.settings = settings
        self.owner = f"{owner}:collections"
        self.updates = CollectionUpdates(services)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_poll = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="collection-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def poll_once(self, limit: int = 100) -> int:
        """Ask the partner about collections overdue for an outcome; returns how many were asked."""
        now = self.services.clock()
        older = now - timedelta(seconds=self.settings.status_poll_after_seconds)
        async with self.services.engine.connect() as conn:
            ids = await store.due_for_collection_poll(conn, older, limit)
        for collection_id in ids:
            row, order = await _order(self.services, collection_id)
            name = str(row["adapter"])
            adapter = self.services.adapters.get(name)
            try:
                update = await adapter.poll_collection(order) if adapter is not None else None
            except AdapterError as exc:
                log.info("poll of collection %s failed: %s", collection_id, exc)
                update = None
            if update is not None:
                await self.updates.apply(name, [update], source="poll")
            async with self.services.engine.begin() as conn:
                await store.touch_collection(conn, collection_id, self.services.clock())
        return len(ids)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - self._last_poll >= self.settings.status_poll_interval_seconds:
                    self._last_poll = loop.time()
                    await self.poll_once()
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: try again later, never die
                log.exception("collection dispatcher round failed")
                done = 0
            if not done:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.idle_poll_seconds)

    async def run_once(self, limit: int | None = None) -> int:
        """Claim due jobs and carry each out; returns how many were claimed."""
        now = self.services.clock()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.services.engine.begin() as conn:
            jobs = await store.claim_collection_jobs(
                conn, self.owner, now, lease_until, limit or self.settings.concurrency
            )
        for job in jobs:
            await self._job(job)
        return len(jobs)

    async def _job(self, job: store.CollectionJob) -> None:
        try:
            if job.kind == "dispatch":
                await self._dispatch(job)
            elif job.kind == "capture":
                await self._capture(job)
            elif job.kind == "refund":
                await self._refund(job)
            else:
                raise PermanentPartnerError(f"unknown collection job kind {job.kind!r}")
        except TransientPartnerError as exc:
            await self._retry(job, exc)
            return
        except AdapterError as exc:
            await self._give_up(job, exc)
            return
        async with self.services.engine.begin() as conn:
            await store.finish_collection_job(conn, job.id, self.owner)
        self.services.wake_webhooks()

    async def _retry(self, job: store.CollectionJob, exc: TransientPartnerError) -> None:
        now = self.services.clock()
        if job.attempts + 1 >= self.settings.max_attempts:
            await self._give_up(job, exc)
            return
        delay = min(self.settings.backoff_base_seconds * 2**job.attempts, self.settings.backoff_max_seconds)
        delay = max(delay, exc.retry_after or 0.0)
        log.info("collection %s %s: %s; retrying in %.2fs", job.collection_id, job.kind, exc, delay)
        async with self.services.engine.begin() as conn:
            await store.retry_collection_job(conn, job.id, self.owner, now + timedelta(seconds=delay), str(exc))

    async def _give_up(self, job: store.CollectionJob, exc: AdapterError) -> None:
        """A job that cannot succeed: the collection fails (a refund is marked failed); the job ends."""
        now = self.services.clock()
        log.warning("collection %s %s failed for good: %s", job.collection_id, job.kind, exc)
        async with self.services.engine.begin() as conn:
            if job.kind == "refund" and job.refund_id:
                await store.finish_refund(
                    conn, job.refund_id, succeeded=False, now=now, reason_code=exc.reason_code, reason=str(exc)
                )
            elif job.kind == "dispatch":
                await store.record_collection_transitions(
                    conn,
                    [
                        CollectionTransition(
                            job.collection_id, C.FAILED, "dispatcher", reason_code=exc.reason_code, reason=str(exc)
                        )
                    ],
                    now,
                )
            await store.finish_collection_job(conn, job.id, self.owner)
        self.services.wake_webhooks()

    async def _dispatch(self, job: store.CollectionJob) -> None:
        row, order = await _order(self.services, job.collection_id)
        now = self.services.clock()
        status = C(str(row["status"]))
        if status is C.RECEIVED:
            name, why = route_collection(
                self.services.adapters,
                order.kind,
                order.money.currency,
                row["channel"],
            )
            async with self.services.engine.begin() as conn:
                outcome = (
                    CollectionTransition(job.collection_id, C.ACCEPTED, "dispatcher", adapter=name)
                    if name
                    else CollectionTransition(
                        job.collection_id, C.REJECTED, "dispatcher", reason_code="NO_ROUTE", reason=why
                    )
                )
                (record,) = await store.record_collection_transitions(conn, [outcome], now)
            if not record.decision or name is None:
                return  # cancelled meanwhile, or no route: nothing goes to a partner
            adapter_name = name
        elif status is C.ACCEPTED and row["adapter"]:
            adapter_name = str(row["adapter"])  # a re-run after a crash: same adapter, same idempotency key
        else:
            return  # already past the partner call
        result = await self.services.adapters[adapter_name].collect(order)
        await self._record_result(job.collection_id, adapter_name, result)

    async def _record_result(self, collection_id: str, adapter: str, result: CollectionResult) -> None:
        async with self.services.engine.begin() as conn:
            await store.record_collection_transitions(
                conn,
                [
                    CollectionTransition(
                        collection_id,
                        result.status,
                        "dispatcher",
                        adapter=adapter,
                        partner_reference=result.partner_reference or None,
                        partner_status=result.partner_status,
                        reason_code=result.reason_code,
                        reason=result.reason,
                    )
                ],
                self.services.clock(),
            )

    async def _capture(self, job: store.CollectionJob) -> None:
        row, order = await _order(self.services, job.collection_id)
        if row["status"] != C.SUBMITTED.value or not row["adapter"]:
            return  # collected already (a capture re-run), or never authorised
        adapter = str(row["adapter"])
        result = await self.services.adapters[adapter].capture(order)
        await self._record_result(job.collection_id, adapter, result)

    async def _refund(self, job: store.CollectionJob) -> None:
        row, order = await _order(self.services, job.collection_id)
        assert job.refund_id is not None
        async with self.services.engine.connect() as conn:
            refund = (
                (await conn.execute(collection_refunds.select().where(collection_refunds.c.id == job.refund_id)))
                .mappings()
                .first()
            )
        if refund is None or refund["status"] != "pending":
            return
        money = Money.from_minor(int(refund["amount_minor"]), str(refund["currency"]))
        result = await self.services.adapters[str(row["adapter"])].refund_collection(order, job.refund_id, money)
        async with self.services.engine.begin() as conn:
            await store.finish_refund(
                conn,
                job.refund_id,
                succeeded=result.succeeded,
                now=self.services.clock(),
                partner_reference=result.partner_reference,
                reason_code=result.reason_code,
                reason=result.reason,
            )


@dataclass(frozen=True)
class CollectionUpdateSummary:
    applied: int = 0
    ignored: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"applied": self.applied, "ignored": self.ignored, "unknown": self.unknown}


class CollectionUpdates:
    """Applies what partners report about collections (webhooks and polls), out-of-order safe.

    A chargeback or a return proves the money was collected first: when the partner's
    ``collected`` report was lost or overtaken, it is recorded as implied, so
    ``collected → charged_back`` applies (and books) instead of being refused.
    """

    def __init__(self, services: CollectionServices) -> None:
        self.services = services

    async def apply(self, adapter: str, updates: Sequence[CollectionUpdate], *, source: str) -> CollectionUpdateSummary:
        applied = ignored = unknown = 0
        now = self.services.clock()
        async with self.services.engine.begin() as conn:
            for update in updates:
                collection_id = await store.find_collection_by_partner(
                    conn, adapter, update.collection_id, update.partner_reference
                )
                if collection_id is None:
                    unknown += 1
                    continue
                if update.status is None:
                    ignored += 1
                    continue
                transitions = []
                if update.status in (C.CHARGED_BACK, C.RETURNED):
                    row = await store.load_collection(conn, collection_id)
                    if row is not None and row["status"] in (C.ACCEPTED.value, C.SUBMITTED.value):
                        transitions.append(
                            CollectionTransition(
                                collection_id,
                                C.COLLECTED,
                                source,
                                partner_reference=update.partner_reference,
                                reason="implied by the partner's reversal report",
                            )
                        )
                transitions.append(
                    CollectionTransition(
                        collection_id,
                        update.status,
                        source,
                        partner_reference=update.partner_reference,
                        partner_status=update.partner_status,
                        reason_code=update.reason_code,
                        reason=update.reason,
                    )
                )
                records = await store.record_collection_transitions(conn, transitions, now)
                if records[-1].decision:
                    applied += 1
                else:
                    ignored += 1
        self.services.wake_webhooks()
        return CollectionUpdateSummary(applied, ignored, unknown)
