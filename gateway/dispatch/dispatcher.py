"""The dispatcher: claims outbox jobs under a lease and carries them to their partners.

Crash-safe by construction: a job is leased, never removed, until its outcome
is committed; a process that dies mid-job leaves a lease that expires, and the
next claimer resumes from the instruction's recorded status. The instruction id
is the partner's idempotency key, so a resumed submit never pays twice.

Jobs are handled in batches, like intake: one query loads a batch, one
transaction records its screening and routing, the partner calls run
concurrently, and one transaction records their outcomes. The database sees a
handful of statements per batch, not per payment, so dispatch does not starve
intake on SQLite's single writer.

One batch at a time is *prepared* (loaded, screened, routed: database work);
the next claim waits until it goes out to its partners. Jobs that arrive
meanwhile wait for the next claim, so under load a batch grows to what arrived
during the last one's preparation, instead of many small batches queueing for
SQLite's one connection, each paying the same per-batch statements. Batches
waiting on their partners still overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import DispatchSettings
from gateway.dispatch.routing import Router
from gateway.dispatch.shadow import ShadowRunner
from gateway.domain.clock import Clock
from gateway.domain.events import Announce
from gateway.domain.order import PaymentOrder
from gateway.domain.status import Status
from gateway.errors import (
    AdapterError,
    OutcomeUnknownError,
    PartnerUnreachableError,
    PermanentPartnerError,
    TransientPartnerError,
)
from gateway.metrics import Metrics
from gateway.partners.adapter import Adapter, SubmitResult
from gateway.partners.capture import MessageLog, PartnerMessage, about, capturing
from gateway.risk.model import Outcome
from gateway.risk.screening import Screener
from gateway.store import repo
from gateway.store.orders import Orders, fetch_orders
from gateway.store.partner_messages import save_messages
from gateway.store.repo import OutboxJob, Transition
from gateway.store.rollout import modes_for
from gateway.store.shadow import record_outcomes
from gateway.store.tables import instruction_events

__all__ = ["DispatchServices", "Dispatcher", "backoff_delay", "log_partner_failure", "message_log"]

log = logging.getLogger(__name__)
S = Status
_SOURCE = "dispatcher"


def backoff_delay(
    attempts: int, base: float, cap: float, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter"; never sooner than the partner's Retry-After."""
    ceiling = min(cap, base * (2**attempts))
    delay = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


def message_log(settings: DispatchSettings, kind: str) -> MessageLog | None:
    """Where the partner messages of one unit of work are kept until its transaction; ``None`` when
    ``dispatch.partner_messages`` is off (nothing is recorded then)."""
    return MessageLog(kind, settings.partner_message_max_bytes) if settings.partner_messages else None


def _uncounted(partner: str) -> None:
    """A partner call's outcome already counted by the circuit breaker (one message, many payments)."""


def log_partner_failure(adapter: str, instruction_id: str, operation: str, outcome: str, detail: str) -> None:
    """The one INFO line per failed partner call (submit or status query), whatever happens next."""
    log.info(
        "partner %s failed on %s of %s (%s): %s",
        adapter,
        operation,
        instruction_id,
        outcome,
        detail,
        extra={"adapter": adapter, "instruction_id": instruction_id, "operation": operation, "outcome": outcome},
    )


async def _refused_by(conn: AsyncConnection, instruction_ids: Sequence[str]) -> dict[str, set[str]]:
    """Partners that refused each instruction with "route elsewhere" (from its events)."""
    if not instruction_ids:
        return {}
    rows = await conn.execute(
        select(instruction_events.c.instruction_id, instruction_events.c.adapter).where(
            instruction_events.c.instruction_id.in_(list(instruction_ids)),
            instruction_events.c.reason_code == REROUTE,
        )
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.instruction_id, set()).add(row.adapter)
    return found


def _nothing() -> None:
    """The default ``prepared`` callback: nobody waits for the batch's preparation."""


class _Once:
    """Calls ``action`` the first time it is called, never again."""

    __slots__ = ("_action",)

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()


class AdapterNotEnabled(Exception):
    """The batch routed to an adapter this process does not run (its job is retried)."""


@dataclass(frozen=True, slots=True)
class _Retry:
    """A job to try again later (``immediate``: now, e.g. to route a refused payment elsewhere)."""

    job: OutboxJob
    error: str
    retry_after: float | None = None
    immediate: bool = False
    #: the outcome at the partner is unknown: next time ask before doing anything else
    resolve: bool = False


#: a partner's "I did not execute this; try another rail" (PermanentPartnerError.reason_code)
REROUTE = "REROUTE"
#: ``StatusUpdate.partner_status`` of a poll where the partner confirms it never received the payment
NOT_FOUND = "NOT_FOUND"
#: outbox job kinds
DISPATCH, RESOLVE = "dispatch", "resolve"
#: statuses a batch may route (received ones once screening passes them)
_ROUTABLE = frozenset({S.RECEIVED.value, S.ACCEPTED.value})


@dataclass(frozen=True)
class DispatchServices:
    """What the dispatcher works with; the composition root (``gateway.runtime``) builds it."""

    engine: AsyncEngine
    clock: Clock
    orders: Orders
    router: Router
    adapters: Mapping[str, Adapter]
    screener: Screener
    metrics: Metrics
    #: tells plugins about committed transitions
    announce: Announce
    #: true while business units are waiting for their 202s (the dispatcher then defers)
    intake_busy: Callable[[], bool]
    #: rehearses payments with partners in shadow mode (docs/go-live.md); None: shadow partners are only skipped
    shadow: ShadowRunner | None = None


class Dispatcher:
    """Claims due outbox jobs and processes them in batches with bounded concurrency."""

    def __init__(self, services: DispatchServices, settings: DispatchSettings, owner: str) -> None:
        self.services = services
        self.owner = owner
        self.settings = settings
        self.concurrency = settings.concurrency
        self.lease = settings.lease_seconds
        self.max_attempts = settings.max_attempts
        self.backoff_base = settings.backoff_base_seconds
        self.backoff_max = settings.backoff_max_seconds
        self.idle = settings.idle_poll_seconds
        self.max_defer = settings.max_defer_seconds
        self.gather = settings.gather_seconds
        #: when the last claim started (``time.monotonic()``): the next waits ``gather`` seconds after it
        self._last_claim = float("-inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], int] = {}
        #: batches claimed and not yet sent to their partners (at most one: see the module's docstring)
        self._preparing = 0
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dispatcher")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let in-flight batches commit (up to ``grace`` seconds), then cancel.

        Cancelling a batch mid-transaction could leave a database connection (and
        its row locks) behind; a job cut short is safe anyway (its lease expires and
        another claimer resumes it), but finishing cleanly is better.
        """
        self._stopping = True
        self._wake.set()
        if self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._inflight:
            _, pending = await asyncio.wait(list(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    @property
    def busy(self) -> int:
        """Jobs being processed right now."""
        return sum(self._inflight.values())

    async def _yield_to_intake(self) -> None:
        """Let intake go first while business units are waiting for their 202s.

        Accepting is what callers wait on; dispatch is asynchronous. Under intake
        pressure the dispatcher defers, but never for longer than
        ``dispatch.max_defer_seconds`` at a time, so it keeps a floor of progress
        and drains the backlog once the burst is over.
        """
        deadline = time.monotonic() + self.max_defer
        while self.services.intake_busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _loop(self) -> None:
        while not self._stopping:
            if self.max_defer > 0:
                await self._yield_to_intake()
            if self.gather > 0:  # let payments gather into one batch instead of claiming each as it comes
                wait = self._last_claim + self.gather - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            if self._stopping:
                return
            try:
                claimed = await self.claim_and_spawn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher claim failed; retrying")
                claimed = 0
            if claimed == 0 or self.busy >= self.concurrency:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle)

    async def claim(self, limit: int | None = None) -> list[OutboxJob]:
        now = self.services.clock()
        async with self.services.engine.begin() as conn:
            return await repo.claim_outbox(
                conn, self.owner, now, now + timedelta(seconds=self.lease), limit or self.concurrency
            )

    async def claim_and_spawn(self) -> int:
        free = self.concurrency - self.busy
        if free <= 0 or self._preparing or (self._inflight and free < self.concurrency // 4):
            return 0  # a batch is being prepared, or too few free places: claim a fuller batch once one is done
        self._preparing += 1
        self._last_claim = time.monotonic()
        try:
            jobs = await self.claim(free)
        finally:
            self._preparing -= 1
        if jobs:
            self._preparing += 1
            prepared = _Once(self._prepared)
            task = asyncio.create_task(self._guarded(jobs, prepared), name=f"dispatch-batch-{jobs[0].id}")
            self._inflight[task] = len(jobs)
            task.add_done_callback(lambda t: self._done(t, prepared))
        return len(jobs)

    def _prepared(self) -> None:
        """A batch is on its way to its partners: the next one may be claimed."""
        self._preparing -= 1
        self.wake()

    def _done(self, task: asyncio.Task[None], prepared: _Once) -> None:
        self._inflight.pop(task, None)
        prepared()
        self.wake()

    async def run_until_idle(self, timeout: float = 30.0) -> None:
        """Process due jobs until none are left (tests and tools use this without the loop)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            jobs = await self.claim()
            if not jobs:
                return
            await self._guarded(jobs)
        raise TimeoutError("dispatcher did not become idle")

    async def _guarded(self, jobs: Sequence[OutboxJob], prepared: Callable[[], None] = _nothing) -> None:
        try:
            await self.process(jobs, prepared)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("dispatch batch of %d failed unexpectedly", len(jobs))
            try:
                await self._commit([], [], [_Retry(j, f"internal error: {type(exc).__name__}") for j in jobs])
            except Exception:
                log.exception("could not reschedule the batch; its leases will expire")

    async def process(self, jobs: Sequence[OutboxJob], prepared: Callable[[], None] = _nothing) -> None:
        """Screen, route and submit a batch of instructions; record every step.

        ``prepared`` is called once the batch's database work before the partner calls is done.
        """
        async with self.services.engine.connect() as conn:  # everything the batch reads, on one connection
            loaded = await fetch_orders(conn, self.services.orders.codec, [j.instruction_id for j in jobs])
            routable = [i for i, (row, _) in loaded.items() if row["status"] in _ROUTABLE]
            refused = await _refused_by(conn, routable)
            # read once per batch: new modes apply to new routes
            rollout = await modes_for(conn, {order.business_unit for _, order in loaded.values()})
        screened_out = await self._screen(jobs, loaded)
        today = self.services.clock().date()
        transitions: list[Transition] = []
        finished: list[OutboxJob] = []
        waiting: list[_Retry] = []
        to_submit: list[tuple[OutboxJob, str, PaymentOrder]] = []
        to_resolve: list[tuple[OutboxJob, str, PaymentOrder]] = []
        routed_now: list[tuple[OutboxJob, str, PaymentOrder]] = []
        rehearse: list[tuple[PaymentOrder, str]] = []
        for job in jobs:
            if job.instruction_id not in loaded:
                finished.append(job)
                continue
            if job.instruction_id in screened_out:  # held or rejected by screening: its job is done
                continue
            row, order = loaded[job.instruction_id]
            status = Status(row["status"])
            if status is S.ROUTED and job.kind == RESOLVE:  # outcome unknown: ask the partner first
                to_resolve.append((job, row["adapter"], order))
                continue
            if status is S.ROUTED:  # resumed after a crash: submit again, same idempotency key
                to_submit.append((job, row["adapter"], order))
                continue
            if status not in (S.RECEIVED, S.ACCEPTED):  # held, submitted or final: nothing to dispatch
                finished.append(job)
                continue
            decision = self.services.router.decide(
                order,
                self.services.adapters,
                channel=row["channel"],
                exclude=refused.get(order.id, ()),
                today=today,
                rollout=rollout.get(order.business_unit),
            )
            if decision.adapter is None and decision.wait:  # eligible partners exist but are unhealthy
                waiting.append(_Retry(job, decision.reason))
            elif decision.adapter is None:
                transitions.append(
                    Transition(order.id, S.REJECTED, _SOURCE, reason_code="NO_ROUTE", reason=decision.reason)
                )
                finished.append(job)
            else:
                transitions.append(
                    Transition(order.id, S.ROUTED, _SOURCE, adapter=decision.adapter, reason=decision.reason)
                )
                routed_now.append((job, decision.adapter, order))
                rehearse += [(order, partner) for partner in decision.shadow]
        if transitions or finished or waiting:
            records = await self._commit(transitions, finished, waiting)
            last_by_id = {t.instruction_id: rec for t, rec in zip(transitions, records, strict=False)}
            for job, adapter, order in routed_now:
                if last_by_id[order.id].decision:
                    to_submit.append((job, adapter, order))
                else:  # cancelled meanwhile: nothing to send
                    await self._commit([], [job], [])
        prepared()
        carried: list[PartnerMessage] = []
        if to_resolve:
            resend, carried = await self._resolve_all(to_resolve)
            to_submit += resend
        if to_submit:
            await self._submit_all(to_submit, carried)
        elif carried:
            await self._commit([], [], [], carried)
        if rehearse and self.services.shadow is not None:
            await self._rehearse(self.services.shadow, rehearse)

    async def _rehearse(self, shadow: ShadowRunner, work: Sequence[tuple[PaymentOrder, str]]) -> None:
        """Shadow partners render (and maybe sandbox) what was routed; outcomes stored, never raised."""
        try:
            outcomes = await shadow.rehearse_all(work)
            async with self.services.engine.begin() as conn:
                await record_outcomes(conn, outcomes)
        except Exception:
            log.exception("shadow rehearsal of %d payment(s) failed; the payments are unaffected", len(work))

    async def _screen(
        self, jobs: Sequence[OutboxJob], loaded: dict[str, tuple[dict[str, Any], PaymentOrder]]
    ) -> set[str]:
        """Risk-screen the batch's received instructions in one transaction; return those that stop here.

        Passed and flagged ones are now ``accepted`` and go on to routing in this
        batch; held and rejected ones have their jobs finished in the same
        transaction (approval queues a new job).
        """
        received = [
            loaded[j.instruction_id]
            for j in jobs
            if j.instruction_id in loaded and loaded[j.instruction_id][0]["status"] == S.RECEIVED.value
        ]
        if not received:
            return set()
        now = self.services.clock()
        job_of = {j.instruction_id: j.id for j in jobs}
        async with self.services.engine.begin() as conn:
            screenings, records = await self.services.screener.screen(conn, received, now)
            stopped = {s.candidate.instruction_id for s in screenings if s.outcome in (Outcome.HOLD, Outcome.REJECT)}
            await repo.finish_outbox_many(conn, [job_of[i] for i in stopped], self.owner)
        for s in screenings:
            self.services.metrics.risk.labels(s.outcome.value).inc()
            if s.outcome not in (Outcome.HOLD, Outcome.REJECT):
                loaded[s.candidate.instruction_id][0]["status"] = S.ACCEPTED.value
        self.services.announce(r.change for r in records)
        return stopped

    async def _resolve_all(
        self, batch: Sequence[tuple[OutboxJob, str, PaymentOrder]]
    ) -> tuple[list[tuple[OutboxJob, str, PaymentOrder]], list[PartnerMessage]]:
        """Ask the partners about payments whose outcome is unknown; return those safe to send again,
        and the partner messages not yet written (they go with the sending).

        A final status is recorded; "still processing" records the submission;
        "never received" (or no record) means sending again (same partner, same
        idempotency key) is safe; no answer means ask again later.
        """
        log = message_log(self.settings, "status")
        if log is not None:
            log.know([order for _, _, order in batch])
        with capturing(log):
            outcomes = await asyncio.gather(*(self._ask(job, adapter, order) for job, adapter, order in batch))
        transitions: list[Transition] = []
        finished: list[OutboxJob] = []
        retries: list[_Retry] = []
        resend: list[tuple[OutboxJob, str, PaymentOrder]] = []
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                resend.append(item)
            elif isinstance(outcome, _Retry):
                retries.append(outcome)
            else:
                transitions.append(outcome)
                finished.append(item[0])
        messages = log.take() if log is not None else []
        if transitions or retries:
            await self._commit(transitions, finished, retries, messages)
            messages = []
        return resend, messages

    async def _ask(self, job: OutboxJob, adapter_name: str, order: PaymentOrder) -> Transition | _Retry | None:
        adapter = self.services.adapters.get(adapter_name)
        if adapter is None:
            return _Retry(job, f"adapter {adapter_name} is not enabled", resolve=True)
        try:
            with about(adapter_name, (order.id,)):
                update = await adapter.poll(order)
        except AdapterError as exc:
            log_partner_failure(adapter_name, order.id, "status query", exc.slug, exc.message)
            return _Retry(job, f"status query failed: {exc.message}", exc.retry_after, resolve=True)
        except Exception as exc:
            log.exception("adapter %s raised on poll", adapter_name)
            return _Retry(job, f"status query error: {type(exc).__name__}", resolve=True)
        if update is None or (update.status is None and update.partner_status == NOT_FOUND):
            return None  # the partner has no such payment: sending it again cannot pay twice
        return Transition(
            order.id,
            update.status or S.SUBMITTED,  # known to the partner and in progress: it was submitted
            _SOURCE,
            adapter=adapter_name,
            partner_reference=update.partner_reference,
            partner_status=update.partner_status,
            reason_code=update.reason_code,
            reason=update.reason or "outcome resolved by status query",
        )

    async def _submit_all(
        self, batch: Sequence[tuple[OutboxJob, str, PaymentOrder]], carried: Sequence[PartnerMessage] = ()
    ) -> None:
        """Send the batch, one ``submit_many`` per partner (a bulk message where the partner takes one).

        The partner messages exchanged (and ``carried`` ones) are written with the outcomes.
        """
        by_adapter: dict[str, list[int]] = {}
        for i, (_, adapter, _) in enumerate(batch):
            by_adapter.setdefault(adapter, []).append(i)
        outcomes: list[Transition | _Retry] = [_Retry(job, "not sent") for job, _, _ in batch]

        async def send(adapter_name: str, items: list[int]) -> None:
            answers = await self._send_many(adapter_name, [batch[i][2] for i in items])
            for n, (i, answer) in enumerate(zip(items, answers, strict=True)):
                job, _, order = batch[i]
                # one failed message counts once against the partner's circuit, not once per payment in it
                count = n == 0 or answer is not answers[0] or not isinstance(answer, Exception)
                outcomes[i] = self._submit_one(job, adapter_name, order, answer, count=count)

        log = message_log(self.settings, "submit")
        if log is not None:
            log.know([order for _, _, order in batch])
        with capturing(log):
            await asyncio.gather(*(send(name, items) for name, items in by_adapter.items()))
        transitions: list[Transition] = []
        finished: list[OutboxJob] = []
        retries: list[_Retry] = []
        for (job, _, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, _Retry):
                retries.append(outcome)
            elif outcome.status is S.ACCEPTED:  # back to routing (REROUTE, or partner down and never reached)
                transitions.append(outcome)  # the same job picks the next eligible partner, now
                retries.append(_Retry(job, f"leaving {outcome.adapter}: {outcome.reason_code}", immediate=True))
            else:
                transitions.append(outcome)
                finished.append(job)
        await self._commit(transitions, finished, retries, [*carried, *(log.take() if log is not None else ())])

    def _submit_failed(self, adapter_name: str, instruction_id: str, outcome: str, detail: str) -> None:
        self.services.metrics.dispatch.labels(adapter_name, outcome).inc()
        log_partner_failure(adapter_name, instruction_id, "submit", outcome, detail)

    async def _send_many(self, adapter_name: str, orders: Sequence[PaymentOrder]) -> list[SubmitResult | Exception]:
        """One ``submit_many`` call; an adapter that breaks its contract (raises, or answers short) is an
        error for each of its orders, never a lost job."""
        adapter = self.services.adapters.get(adapter_name)
        if adapter is None:
            return [AdapterNotEnabled(adapter_name)] * len(orders)
        try:
            with about(adapter_name, [order.id for order in orders]):
                answers = await adapter.submit_many(orders)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return [exc] * len(orders)
        if len(answers) != len(orders):
            log.error("adapter %s answered %d of %d payments", adapter_name, len(answers), len(orders))
            return [RuntimeError("submit_many answered a different number of payments")] * len(orders)
        return list(answers)

    def _submit_one(
        self, job: OutboxJob, adapter_name: str, order: PaymentOrder, answer: SubmitResult | Exception, *, count: bool
    ) -> Transition | _Retry:
        """The transition or retry for one order's answer from its partner (``count``: feed the breaker)."""
        if isinstance(answer, AdapterNotEnabled):
            return _Retry(job, f"adapter {adapter_name} is not enabled")
        breaker = self.services.router.breaker
        fail = breaker.record_failure if count else _uncounted
        succeed = breaker.record_success if count else _uncounted
        try:
            if isinstance(answer, Exception):
                raise answer
            result = answer
        except OutcomeUnknownError as exc:
            # The request may have reached the partner: never failed, never sent elsewhere on a guess.
            fail(adapter_name)
            self._submit_failed(adapter_name, order.id, "unknown", exc.message)
            return _Retry(job, exc.message, exc.retry_after, resolve=True)
        except PartnerUnreachableError as exc:
            # Never reached the partner, so it cannot have paid: once its circuit is open, route elsewhere.
            fail(adapter_name)
            self._submit_failed(adapter_name, order.id, "unreachable", exc.message)
            if breaker.state(adapter_name) == "open":
                return Transition(
                    order.id,
                    S.ACCEPTED,
                    _SOURCE,
                    adapter=adapter_name,
                    reason_code=exc.reason_code or "PARTNER_UNREACHABLE",
                    reason=f"{exc.message}; circuit open, routing again",
                )
            return _Retry(job, exc.message, exc.retry_after)
        except TransientPartnerError as exc:
            fail(adapter_name)
            self._submit_failed(adapter_name, order.id, "transient", exc.message)
            return _Retry(job, exc.message, exc.retry_after)
        except PermanentPartnerError as exc:
            succeed(adapter_name)  # the partner answered: it is up
            if exc.reason_code == REROUTE:
                # The partner confirmed it did not execute and asked for another rail.
                self._submit_failed(adapter_name, order.id, "reroute", exc.message)
                return Transition(
                    order.id, S.ACCEPTED, _SOURCE, adapter=adapter_name, reason_code=REROUTE, reason=exc.message
                )
            self._submit_failed(adapter_name, order.id, "permanent", exc.message)
            return Transition(
                order.id,
                S.FAILED,
                _SOURCE,
                adapter=adapter_name,
                reason_code=exc.reason_code or "PARTNER_ERROR",
                reason=exc.message,
            )
        except Exception as exc:  # an adapter bug must not lose the job: retry, then fail
            log.error("adapter %s raised on submit", adapter_name, exc_info=exc)
            self.services.metrics.dispatch.labels(adapter_name, "error").inc()
            return _Retry(job, f"adapter error: {type(exc).__name__}")
        succeed(adapter_name)
        self.services.metrics.dispatch.labels(adapter_name, result.status.value).inc()
        return Transition(
            order.id,
            result.status,
            _SOURCE,
            adapter=adapter_name,
            partner_reference=result.partner_reference,
            partner_status=result.partner_status,
            reason_code=result.reason_code,
            reason=result.reason,
        )

    async def _commit(
        self,
        transitions: list[Transition],
        finished: Sequence[OutboxJob],
        retries: Sequence[_Retry],
        messages: Sequence[PartnerMessage] = (),
    ) -> list[repo.StatusRecord]:
        """Record transitions, finish jobs, reschedule retries and keep the partner messages that led to
        them in one transaction; announce after."""
        now = self.services.clock()
        transitions = list(transitions)
        finished = list(finished)
        reschedule: list[tuple[_Retry, float]] = []
        for retry in retries:
            attempts = retry.job.attempts + 1
            if attempts >= self.max_attempts and not retry.resolve:
                transitions.append(
                    Transition(
                        retry.job.instruction_id,
                        S.FAILED,
                        _SOURCE,
                        reason_code="RETRIES_EXHAUSTED",
                        reason=f"gave up after {attempts} attempts: {retry.error}",
                    )
                )
                finished.append(retry.job)
            else:
                delay = (
                    0.0
                    if retry.immediate
                    else backoff_delay(retry.job.attempts, self.backoff_base, self.backoff_max, retry.retry_after)
                )
                reschedule.append((retry, delay))
        async with self.services.engine.begin() as conn:
            records = await repo.record_transitions(conn, transitions, now)
            if messages:
                await save_messages(conn, messages)
            await repo.finish_outbox_many(conn, [j.id for j in finished], self.owner)
            for retry, delay in reschedule:
                await repo.retry_outbox(
                    conn,
                    retry.job.id,
                    self.owner,
                    now + timedelta(seconds=delay),
                    retry.error,
                    kind=RESOLVE if retry.resolve else DISPATCH,
                )
        self.services.announce(r.change for r in records)
        for retry, delay in reschedule:
            log.info("dispatch of %s retried in %.2fs: %s", retry.job.instruction_id, delay, retry.error)
        return records
