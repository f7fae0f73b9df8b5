"""The simulator engine: payment state, the timeline, faults, callbacks, statements.

One engine serves one partner. A payment moves ``received → accepted →
in_process → settled | rejected`` (``settled → returned`` for a return;
``accepted``/``in_process`` forever for ``accept``); each step after the
synchronous answer is reported by a signed callback, and the status endpoint
always reports the step the payment is at, so polling and callbacks agree.

Everything random is seeded. Streams are derived per payment (by its business
reference) and per purpose — ``Random(f"{seed}:{reference}:{purpose}")`` — so a
payment's faults, delays and identifiers do not depend on what other payments
did, and the same seed replays a run exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import aiohttp

from gateway.domain.accounts import mask
from gateway.partners.signing import sign_payload
from gateway_simulators.core.journal import Journal
from gateway_simulators.core.partner import Partner, ReportLine, Statement, StatementEntry, Transaction
from gateway_simulators.core.scenario import Decision, Delay, Fault, PaymentFields, Scenario
from gateway_simulators.core.settings import CoreSettings

__all__ = ["CallbackRecord", "Payment", "Simulator", "SubmissionRecord"]

log = logging.getLogger(__name__)

_BUILTIN = re.compile(r"REJECT(NOW)?-([A-Z0-9]{4})")
_WRONG_KEY = b"not-the-partner-callback-secret"
_STATE = {"received": "received", "accepted": "accepted", "in_process": "accepted"}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class CallbackRecord:
    """One callback the partner tried to deliver."""

    status: str
    attempts: int = 0
    delivered: bool = False
    http_status: int | None = None


@dataclass
class Payment:
    """One payment as the partner holds it."""

    tx: Transaction
    partner_reference: str
    decision: Decision
    idempotency_key: str
    callback_url: str | None = None
    step: str = "received"
    status_code: str = ""
    reason_code: str | None = None
    history: list[str] = field(default_factory=list)
    callbacks: list[CallbackRecord] = field(default_factory=list)
    settled_at: datetime | None = None
    returned_at: datetime | None = None
    held: list[tuple[str, bytes, str, tuple[Fault, ...]]] = field(default_factory=list)

    @property
    def state(self) -> str:
        return _STATE.get(self.step, self.step)

    @property
    def iso_status(self) -> str:
        """The partner's code for the current step (kept for older callers)."""
        return self.status_code


@dataclass
class SubmissionRecord:
    """What the partner answered to one idempotency key (replayed on a resend)."""

    fingerprint: tuple[Any, ...]
    http_status: int
    body: bytes
    payment_keys: tuple[str, ...]
    lines: tuple[ReportLine, ...]
    message_id: str
    original_message_id: str
    count: int = 1


class Simulator:
    """In-memory partner: state plus the background tasks that advance it."""

    def __init__(self, partner: Partner, settings: CoreSettings) -> None:
        self.partner = partner
        self.settings = settings
        self.scenario: Scenario | None = settings.scenario
        self.journal = Journal()
        self.payments: dict[str, Payment] = {}
        self.submissions: dict[str, SubmissionRecord] = {}
        #: accepted payments waiting for ``release`` (``Partner.awaits_release``), by key
        self.parked: dict[str, Payment] = {}
        self.outages_served = 0
        self._hits: Counter[tuple[str, str]] = Counter()
        self._streams: dict[tuple[str, str], random.Random] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        #: callbacks waiting to travel together, by callback URL (``_coalesced``)
        self._pooled: dict[str, list[tuple[Payment, str, asyncio.Future[None]]]] = {}
        #: per callback URL: the status reports that may be in flight at once (``callback_batch_concurrency``)
        self._report_slots: dict[str, asyncio.Semaphore] = {}

    # -- seeds ------------------------------------------------------------------------

    @property
    def seed(self) -> int:
        if self.settings.seed is not None:
            return self.settings.seed
        if self.scenario is not None and self.scenario.seed is not None:
            return self.scenario.seed
        return 0

    def stream(self, subject: str, purpose: str) -> random.Random:
        """The seeded random stream for one payment (``subject``) and one purpose."""
        key = (subject, purpose)
        rng = self._streams.get(key)
        if rng is None:
            rng = self._streams[key] = random.Random(f"{self.seed}:{subject}:{purpose}")
        return rng

    def new_id(self, prefix: str, subject: str = "-") -> str:
        """A reproducible identifier that fits ISO 20022 Max35Text."""
        return f"{prefix}{self.stream(subject, 'ids').getrandbits(80):020X}"

    def same_id(self, prefix: str, subject: str) -> str:
        """The one identifier of ``subject`` however often it is asked for (a day's statement: asked again, it
        is the same statement, and the gateway stores it once by its id)."""
        return f"{prefix}{random.Random(f'{self.seed}:{subject}:ids').getrandbits(80):020X}"

    # -- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.callback_timeout))

    async def close(self) -> None:
        await self.cancel_tasks()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        """Forget payments, submissions, journal and fault counters; stop pending timelines."""
        await self.cancel_tasks()
        self._pooled.clear()
        self._report_slots.clear()
        self.payments.clear()
        self.submissions.clear()
        self.parked.clear()
        self.partner.reset()
        self.journal.reset()
        self._hits.clear()
        self._streams.clear()
        self.outages_served = 0

    def use_scenario(self, scenario: Scenario | None) -> None:
        """Swap the scenario; payments already taken keep their decisions."""
        self.scenario = scenario
        self._hits.clear()
        self._streams.clear()

    @property
    def pending_tasks(self) -> int:
        """Background steps and callbacks not finished yet."""
        return sum(1 for task in self._tasks if not task.done())

    async def idle(self) -> None:
        """Wait until every scheduled step and callback is done (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated payment timeline failed", exc_info=task.exception())

    # -- decisions --------------------------------------------------------------------

    @staticmethod
    def fields(tx: Transaction) -> PaymentFields:
        return PaymentFields(tx.reference, tx.amount, tx.currency, tx.creditor_name, tx.key)

    def decide(self, payment: PaymentFields) -> Decision:
        """Scenario rules, then rules from settings, then the built-in ``REJECT-<CODE>`` names; else settle."""
        if self.scenario is not None:
            found = self.scenario.decide(payment, self.seed)
            if found is not None:
                return found
        for rule in self.settings.rules:
            if rule.matches(payment, self.seed):
                return rule.decision()
        if self.settings.builtin_rules:
            hit = _BUILTIN.search(payment.creditor_name)
            if hit:
                at = "submit" if hit.group(1) else "callback"
                return Decision("reject", at, hit.group(2), f"builtin {hit.group(0)}")  # type: ignore[arg-type]
        return Decision()

    def predict(self, payment: PaymentFields) -> str:
        """The final gateway status ``payment`` reaches with this simulator's scenario and settings (pure)."""
        return self.decide(payment).final_status

    def faults(self, decision: Decision | None) -> list[tuple[str, Fault]]:
        """(id, fault) for the scenario-wide faults and the deciding rule's."""
        out = [(f"scenario#{i}", f) for i, f in enumerate(self.scenario.faults if self.scenario else ())]
        if decision is not None:
            out += [(f"{decision.rule}#{i}", f) for i, f in enumerate(decision.faults)]
        return out

    def strike(
        self,
        subject: str,
        exchange: str,
        decision: Decision | None,
        *,
        step: str | None = None,
        kinds: Iterable[str] | None = None,
        purpose: str | None = None,
        after: bool | None = None,
    ) -> tuple[Fault, ...]:
        """The faults that hit this exchange (seeded draw; each fault at most ``times`` per payment).

        Callers strike one layer at a time, in the order the layers act, so a
        fault that never got its chance (the connection was already reset) is
        not counted against its ``times``.
        """
        wanted = frozenset(kinds) if kinds is not None else None
        rng = self.stream(subject, purpose or exchange)
        hits: list[Fault] = []
        for fault_id, fault in self.faults(decision):
            if not fault.applies_to(exchange) or (wanted is not None and fault.kind not in wanted):
                continue
            if wanted is None and fault.kind == "callback_early":
                continue  # decided once, when the payment is taken
            if step is not None and fault.steps is not None and step not in fault.steps:
                continue
            if after is not None and fault.after != after:
                continue
            draw = rng.random()
            counter = (subject, fault_id)
            if fault.times is not None and self._hits[counter] >= fault.times:
                continue
            if draw < fault.probability:
                self._hits[counter] += 1
                hits.append(fault)
        return tuple(hits)

    def delays(self, decision: Decision) -> dict[str, Delay]:
        base = {
            "ack": Delay("fixed", self.settings.callback_delay),
            "settle": Delay("fixed", self.settings.settle_delay),
            "return": Delay("fixed", self.settings.return_delay),
        }
        if self.scenario is not None:
            base.update(self.scenario.delays)
        base.update(decision.delays)
        return base

    # -- taking payments --------------------------------------------------------------

    def take(self, tx: Transaction, decision: Decision, key: str, callback_url: str | None) -> Payment:
        payment = Payment(
            tx=tx,
            partner_reference=self.new_id("SIMB", tx.reference or tx.key),
            decision=decision,
            idempotency_key=key,
            callback_url=callback_url,
        )
        self.move(payment, "received")
        if decision.outcome == "reject" and (decision.at == "submit" or self.partner.synchronous):
            self.move(payment, "rejected", decision.reason_code)
        elif self.partner.synchronous and decision.outcome != "accept":  # settles on acceptance (no returns)
            self.move(payment, "settled")
        else:
            self.move(payment, "accepted")
        self.payments[tx.key] = payment
        return payment

    def move(self, payment: Payment, step: str, reason_code: str | None = None) -> None:
        payment.step = step
        payment.status_code = self.partner.codes[step]
        payment.reason_code = reason_code
        payment.history.append(payment.status_code)
        if step == "settled":
            payment.settled_at = _now()
        elif step == "returned":
            payment.returned_at = _now()

    def line(self, payment: Payment) -> ReportLine:
        reason = None
        if payment.reason_code:
            reason = f"{payment.step} by simulator ({payment.decision.rule})"
        return ReportLine(
            key=payment.tx.key,
            reference=payment.tx.reference,
            group_id=payment.tx.group_id or payment.tx.key,
            step=payment.step,
            code=payment.status_code,
            partner_reference=payment.partner_reference,
            amount=payment.tx.amount,
            currency=payment.tx.currency,
            reason_code=payment.reason_code,
            reason=reason,
        )

    @staticmethod
    def tamper(lines: Sequence[ReportLine], faults: Sequence[Fault]) -> list[ReportLine]:
        """Payload faults that still pass the contract: another amount or currency, an unknown code."""
        out = list(lines)
        for fault in faults:
            if fault.kind == "wrong_amount":
                out = [replace(x, amount=x.amount + fault.amount_delta) for x in out]
            elif fault.kind == "wrong_currency":
                out = [replace(x, currency=fault.currency or ("USD" if x.currency != "USD" else "EUR")) for x in out]
            elif fault.kind == "unknown_status":
                out = [replace(x, code=fault.code, reason_code=None, reason=None) for x in out]
        return out

    def report(
        self,
        lines: Sequence[ReportLine],
        *,
        original_message_id: str,
        subject: str,
        faults: Sequence[Fault] = (),
        callback: bool = False,
    ) -> tuple[bytes, str]:
        """(pain.002-like report body, its message id); the partner's callback body when ``callback``."""
        message_id = self.new_id("SIMRPT", subject)
        render = self.partner.render_callback if callback else self.partner.render_report
        body = render(
            self.tamper(lines, faults), message_id=message_id, original_message_id=original_message_id, now=_now()
        )
        return body, message_id

    # -- the timeline -------------------------------------------------------------------

    def schedule(self, payment: Payment) -> None:
        """Advance an accepted payment to its outcome in the background (or park it until ``release``)."""
        if self.partner.awaits_release(payment.tx):
            self.parked[payment.tx.key] = payment
            return
        self.spawn(self.advance(payment))

    def release(self, key: str) -> Payment | None:
        """Start the timeline of a parked payment; ``None`` if none is parked under ``key``."""
        payment = self.parked.pop(key, None)
        if payment is not None:
            self.spawn(self.advance(payment))
        return payment

    async def advance(self, payment: Payment) -> None:
        subject = payment.tx.reference or payment.tx.key
        rng = self.stream(subject, "timeline")
        delays = self.delays(payment.decision)
        outcome = payment.decision.outcome
        await asyncio.sleep(delays["ack"].sample(rng))
        self.move(payment, "in_process")
        await self.notify(payment)
        if outcome != "accept":
            await asyncio.sleep(delays["settle"].sample(rng))
            if outcome == "reject":
                self.move(payment, "rejected", payment.decision.reason_code)
            else:
                self.move(payment, "settled")
            await self.notify(payment)
            if outcome == "return":
                await asyncio.sleep(delays["return"].sample(rng))
                self.move(payment, "returned", payment.decision.reason_code)
                await self.notify(payment)
        held, payment.held = payment.held, []
        for step, body, message_id, faults in reversed(held):  # what was held back arrives last, newest first
            await self.deliver(payment, step, body, message_id, faults)

    # -- callbacks ------------------------------------------------------------------------

    async def notify(self, payment: Payment) -> None:
        """Report the payment's current step to its callback URL, through the callback faults."""
        if not (self.settings.send_callbacks and payment.callback_url):
            return
        subject = payment.tx.reference or payment.tx.key
        step = payment.step
        faults = self.strike(subject, "callback", payment.decision, step=step)
        body, message_id = self.report(
            [self.line(payment)], original_message_id=payment.tx.message_id, subject=subject, callback=True
        )
        kinds = {f.kind for f in faults}
        if "callback_missing" in kinds:
            payment.callbacks.append(CallbackRecord(status=payment.status_code))
            self._journal_callback(payment, step, body, message_id, faults, outcome="dropped")
            return
        if "callback_out_of_order" in kinds:
            payment.held.append((step, body, message_id, faults))
            self._journal_callback(payment, step, body, message_id, faults, outcome="held")
            return
        late = next((f for f in faults if f.kind == "callback_late"), None)
        if late is not None:
            delay = late.delay.sample(self.stream(subject, "late"))
            self.spawn(self._later(delay, payment, step, body, message_id, faults))
            return
        if not faults and self.settings.callback_batch_max > 1:
            await self._coalesced(payment, step)
            return
        await self.deliver(payment, step, body, message_id, faults)

    async def _coalesced(self, payment: Payment, step: str) -> None:
        """Report ``payment``'s step in one status report with the others due within ``callback_batch_window``.

        A bank reports many payments in one pain.002 (a status report per file, not per payment);
        only callbacks no fault touches are pooled, so a faulted one still travels alone. Returns
        once the shared report was posted (or given up), so a payment's steps keep their order.
        """
        assert payment.callback_url is not None
        url = payment.callback_url
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._pooled.setdefault(url, [])
        pending.append((payment, step, done))
        if len(pending) == 1:
            self.spawn(self._flush_pool(url))
        await done

    async def _flush_pool(self, url: str) -> None:
        """Post the pool for ``url`` in reports of at most ``callback_batch_max`` payments, up to
        ``callback_batch_concurrency`` of them in flight at once (one at a time made the gateway's answer
        time the bound on how many payments a second could be reported)."""
        await asyncio.sleep(self.settings.callback_batch_window)
        slots = self._report_slots.get(url)
        if slots is None:
            slots = self._report_slots[url] = asyncio.Semaphore(self.settings.callback_batch_concurrency)
        posting: set[asyncio.Task[None]] = set()
        while self._pooled.get(url):
            await slots.acquire()  # meanwhile more fall due: the next report takes them too
            pool, most = self._pooled[url], self.settings.callback_batch_max
            batch, self._pooled[url] = pool[:most], pool[most:]
            task = asyncio.get_running_loop().create_task(self._post_pooled(url, batch, slots))
            posting.add(task)
            task.add_done_callback(posting.discard)
        self._pooled.pop(url, None)
        if posting:
            await asyncio.gather(*posting)

    async def _post_pooled(
        self, url: str, batch: list[tuple[Payment, str, asyncio.Future[None]]], slots: asyncio.Semaphore
    ) -> None:
        try:
            await self._post_many(url, [(payment, step) for payment, step, _ in batch])
        finally:
            slots.release()
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _post_many(self, url: str, items: Sequence[tuple[Payment, str]]) -> None:
        """One signed report on several payments to ``url``, retried like a single callback."""
        if self._http is None:
            raise RuntimeError("simulator used outside its app's lifetime")
        first = items[0][0]
        subject = first.tx.reference or first.tx.key
        lines = [self.line(payment) for payment, _ in items]
        body, message_id = self.report(
            lines, original_message_id=first.tx.message_id, subject=f"{subject}:{len(items)}", callback=True
        )
        records = []
        for payment, step in items:
            record = CallbackRecord(status=self.partner.codes[step])
            payment.callbacks.append(record)
            records.append(record)
        for attempt in range(self.settings.callback_attempts):
            headers = {
                "Content-Type": self.partner.content_type,
                self.partner.signature_header: sign_payload(self.settings.callback_secret, body),
            }
            outcome, detail, http_status = "failed", None, None
            try:
                async with self._http.post(url, data=body, headers=headers) as resp:
                    http_status = resp.status
                    if resp.status < 300:
                        outcome = "delivered"
                    elif resp.status < 500 and resp.status != 429:
                        outcome = "refused"
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = type(exc).__name__
            for (payment, step), record in zip(items, records, strict=True):
                record.attempts, record.http_status = attempt + 1, http_status
                record.delivered = outcome == "delivered"
                self._journal_callback(
                    payment, step, body, message_id, (), outcome=outcome, http_status=http_status, detail=detail
                )
            if outcome != "failed":
                return
            if attempt + 1 < self.settings.callback_attempts:
                await asyncio.sleep(self.settings.callback_backoff * 2**attempt)

    async def _later(
        self, delay: float, payment: Payment, step: str, body: bytes, message_id: str, faults: tuple[Fault, ...]
    ) -> None:
        await asyncio.sleep(delay)
        await self.deliver(payment, step, body, message_id, faults)

    async def deliver(self, payment: Payment, step: str, body: bytes, message_id: str, faults: Sequence[Fault]) -> None:
        duplicate = next((f for f in faults if f.kind == "callback_duplicate"), None)
        for _ in range(duplicate.copies if duplicate else 1):
            await self._post(payment, step, body, message_id, faults)

    async def _post(self, payment: Payment, step: str, body: bytes, message_id: str, faults: Sequence[Fault]) -> None:
        if self._http is None:
            raise RuntimeError("simulator used outside its app's lifetime")
        assert payment.callback_url is not None
        kinds = {f.kind for f in faults}
        secret = _WRONG_KEY if "callback_wrong_key" in kinds else self.settings.callback_secret
        replay = next((f for f in faults if f.kind == "callback_replay"), None)
        record = CallbackRecord(status=self.partner.codes[step])
        payment.callbacks.append(record)
        for attempt in range(self.settings.callback_attempts):
            record.attempts = attempt + 1
            timestamp = int(_now().timestamp() - replay.days * 86400) if replay else None
            headers = {
                "Content-Type": self.partner.content_type,
                self.partner.signature_header: sign_payload(secret, body, timestamp),
            }
            outcome, detail = "failed", None
            try:
                async with self._http.post(payment.callback_url, data=body, headers=headers) as resp:
                    record.http_status = resp.status
                    if resp.status < 300:
                        record.delivered = True
                        outcome = "delivered"
                    elif resp.status < 500 and resp.status != 429:
                        outcome = "refused"
            except (aiohttp.ClientError, TimeoutError) as exc:
                detail = type(exc).__name__
            self._journal_callback(
                payment, step, body, message_id, faults, outcome=outcome, http_status=record.http_status, detail=detail
            )
            if outcome != "failed":
                return  # delivered, or the receiver said no for good: do not hammer it
            if record.attempts < self.settings.callback_attempts:
                await asyncio.sleep(self.settings.callback_backoff * 2**attempt)

    def _journal_callback(
        self,
        payment: Payment,
        step: str,
        body: bytes,
        message_id: str | None,
        faults: Sequence[Fault],
        *,
        outcome: str,
        http_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.journal.record(
            "out",
            "callback",
            method="POST",
            path=payment.callback_url or "",
            http_status=http_status,
            outcome=outcome,
            instruction_id=payment.tx.key,
            partner_reference=payment.partner_reference,
            end_to_end_id=payment.tx.reference,
            message_id=message_id,
            partner_status=self.partner.codes[step],
            faults=[f.kind for f in faults],
            detail=detail,
            body=body,
        )

    # -- statements ---------------------------------------------------------------------

    def statements(self, day: date) -> tuple[bytes, list[dict[str, Any]]]:
        """The day's statement document for what was settled (and returned), with the scenario's breaks."""
        entries: list[StatementEntry] = []
        for p in self.payments.values():
            for when, credit in ((p.settled_at, False), (p.returned_at, True)):
                if when is None or when.date() != day:
                    continue
                entries.append(
                    StatementEntry(
                        amount=p.tx.amount,
                        currency=p.tx.currency,
                        credit=credit,
                        booked_on=day,
                        reference=p.tx.reference,
                        partner_reference=p.partner_reference + ("R" if credit else ""),
                        instruction_id=p.tx.key,
                        counterparty_name=p.tx.creditor_name,
                        counterparty_iban=p.tx.creditor_iban,
                        reason_code=p.reason_code if credit else None,
                    )
                )
        entries.sort(key=lambda e: (e.reference, e.credit))
        accounts = {p.tx.key: p.tx.debtor_iban or p.tx.debtor_account or "" for p in self.payments.values()}
        entries, injected = self._breaks(entries, day)
        by_account: dict[tuple[str, str], list[StatementEntry]] = {}
        for entry in entries:
            account = accounts.get(entry.instruction_id, "") or next(iter(accounts.values()), "")
            by_account.setdefault((account, entry.currency), []).append(entry)
        for account, entry in self.partner.statement_entries(day):  # money in: no break strikes it
            by_account.setdefault((account, entry.currency), []).append(entry)
        opening = self.scenario.opening_balance if self.scenario else Decimal("1000000.00")
        statements = []
        for (account, currency), items in sorted(by_account.items()):
            closing = opening + sum((e.amount if e.credit else -e.amount for e in items), Decimal(0))
            statements.append(
                Statement(
                    statement_id=self.same_id("SIMSTMT", f"statement:{day}:{account}:{currency}"),
                    account_iban=account,
                    currency=currency,
                    day=day,
                    created_at=_now(),
                    opening_balance=opening,
                    closing_balance=closing,
                    entries=tuple(items),
                )
            )
        message_id = self.same_id("SIMCAMT", f"statement:{day}")
        body = self.partner.render_statements(statements, message_id=message_id, now=_now())
        self.journal.record(
            "out",
            "statement",
            method="GET",
            path=f"/_sim/statements/{day}",
            http_status=200,
            outcome="answered",
            message_id=message_id,
            faults=sorted({b["kind"] for b in injected}),
            detail=json.dumps(injected),
        )
        return body, injected

    def _breaks(self, entries: list[StatementEntry], day: date) -> tuple[list[StatementEntry], list[dict[str, Any]]]:
        breaks = self.scenario.breaks if self.scenario else ()
        injected: list[dict[str, Any]] = []
        out: list[StatementEntry] = []
        for entry in entries:
            rng = random.Random(f"{self.seed}:{entry.reference}:statement:{day}:{entry.credit}")
            keep, copies = entry, 1
            for brk in breaks:
                if brk.kind == "unknown_entry" or (brk.reference and not brk.reference.search(entry.reference)):
                    continue
                if rng.random() >= brk.probability:
                    continue
                injected.append(
                    {"kind": brk.kind, "instruction_id": entry.instruction_id, "reference": entry.reference}
                )
                if brk.kind == "missing_entry":
                    copies = 0
                    break
                if brk.kind == "wrong_amount":
                    keep = replace(keep, amount=keep.amount + brk.amount_delta, injected="wrong_amount")
                    injected[-1]["amount"] = str(keep.amount)
                elif brk.kind == "duplicate_entry":
                    copies = 2
            out.extend([keep] * copies if copies < 2 else [keep, replace(keep, injected="duplicate_entry")])
        unknown_rng = random.Random(f"{self.seed}:statement:{day}:unknown")
        for brk in breaks:
            if brk.kind != "unknown_entry" or unknown_rng.random() >= brk.probability:
                continue
            currency = entries[0].currency if entries else "EUR"
            for n in range(brk.count):
                amount = Decimal(unknown_rng.randint(100, 999_999)) / 100
                ref = f"UNKNOWN-{day:%Y%m%d}-{n + 1}"
                out.append(
                    StatementEntry(
                        amount=amount,
                        currency=currency,
                        credit=bool(unknown_rng.getrandbits(1)),
                        booked_on=day,
                        reference=ref,
                        partner_reference=self.new_id("SIMU", ref),
                        instruction_id="",
                        counterparty_name="Unknown counterparty",
                        injected="unknown_entry",
                    )
                )
                injected.append({"kind": "unknown_entry", "reference": ref, "amount": str(amount)})
        return out, injected

    # -- admin view -----------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """JSON-ready list of payments, IBANs masked."""
        out = []
        for p in self.payments.values():
            submission = self.submissions.get(p.idempotency_key)
            out.append(
                {
                    "instruction_id": p.tx.key,
                    "end_to_end_id": p.tx.reference,
                    "bank_reference": p.partner_reference,
                    "amount": str(p.tx.amount),
                    "currency": p.tx.currency,
                    "creditor_name": p.tx.creditor_name,
                    "creditor_iban": mask(p.tx.creditor_iban) if p.tx.creditor_iban else None,
                    "debtor_iban": mask(p.tx.debtor_iban) if p.tx.debtor_iban else None,
                    "status": p.state,
                    "iso_status": p.status_code,
                    "history": list(p.history),
                    "reason_code": p.reason_code,
                    "rule": p.decision.rule,
                    "outcome": p.decision.outcome,
                    "submissions": submission.count if submission else 0,
                    "callbacks_sent": sum(1 for c in p.callbacks if c.delivered),
                    "callbacks": [
                        {
                            "status": c.status,
                            "attempts": c.attempts,
                            "delivered": c.delivered,
                            "http_status": c.http_status,
                        }
                        for c in p.callbacks
                    ],
                }
            )
        return out
