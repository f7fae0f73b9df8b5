"""The bank simulator's direct debit desk: pain.008 in, pain.002 back, camt.054 notifications later.

Routes (added to the bank simulator app):

- ``POST /pain008`` — a signed pain.008.001.08 with ``Idempotency-Key``. Read
  with the adapter's ``read_pain008`` (the same XSD file the adapter validates
  its output with, plus the SEPA Core checks), so the simulator rejects what
  the contract rejects: ``400`` with a pain.002 group ``RJCT FF01``. Else
  ``202`` with a pain.002 answering each collection ``ACCP`` or ``RJCT`` +
  reason. The same key and body again replay the answer; the same key with
  another body is ``409``; a collection id (InstrId) seen before is ``409``.
- ``GET /camt054`` (signed request over the empty body, signed answer: what
  the adapter polls) and ``GET /_sim/camt054`` (unsigned, for people) — a
  camt.054.001.08 notification of every movement so far on the creditor's
  account (``?since=N`` skips the first N movements;
  ``ElctrncSeqNb`` is the number of movements notified); ``GET
  /_sim/direct-debits`` lists the collections; ``POST
  /_sim/direct-debits/reset`` forgets them.

What happens to each collection is the scenario's decision, as for payments
(rules match the collection's end-to-end id, amount, currency, and the
*debtor's* name as ``creditor_name``: the counterparty):

- ``reject`` at ``submit``: ``RJCT`` with the rule's reason code in the pain.002;
- ``reject`` at ``callback``: ``ACCP``, then (after the ``settle`` delay) an
  information-only camt.054 entry with ``RtrInf`` — a reject or refusal before
  settlement (e.g. ``MS02``, the debtor refused);
- ``settle`` / ``accept``: ``ACCP``, then a booked credit (collected);
- ``return``: collected, then (after the ``return`` delay) a booked debit with
  ``RtrInf`` and the rule's reason code (return or refund, e.g. ``AM04``,
  ``MD06``).

Every message in and out is journalled (kinds ``submit-pain008``,
``camt054``). The scenario's transport faults (latency, hang, reset, HTTP
errors; before or ``after`` the bank took the file) strike ``/pain008`` as they
strike ``/pain001``: a client that lost the answer resends with the same key
and gets the replay.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from gateway.contracts.safexml import parse_xml, text
from gateway.domain.accounts import mask
from gateway.domain.mandate import settlement_date
from gateway.errors import AuthenticationError, ContractError, SignatureError
from gateway_adapters.iso20022_bank.camt054 import Notification, NotificationEntry, build_camt054_notifications
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_adapters.iso20022_bank.pain008 import Pain008Transaction, read_pain008
from gateway_adapters.iso20022_bank.schemas import PAIN008_VERSION
from gateway_simulators.core import SIMULATOR
from gateway_simulators.core.app import Refusal, apply_transport_faults
from gateway_simulators.core.engine import Simulator
from gateway_simulators.core.scenario import TRANSPORT_FAULTS, Decision, PaymentFields

__all__ = ["DESK", "Collection", "DirectDebitDesk", "add_direct_debit_routes"]

#: the creditor's account the notifications are about (a test IBAN, not a real account)
CREDITOR_ACCOUNT = "DE89370400440532013000"


@dataclass
class Collection:
    """One collection the bank took, and where it stands."""

    tx: Pain008Transaction
    decision: Decision
    step: str = "accepted"  # accepted | rejected | collected | returned
    partner_reference: str = ""
    reason_code: str | None = None


@dataclass
class _Submission:
    fingerprint: tuple[Any, ...]
    body: bytes
    http_status: int
    count: int = 1


@dataclass
class DirectDebitDesk:
    """The desk's state: collections by InstrId, submissions by Idempotency-Key, movements in order."""

    sim: Simulator
    collections: dict[str, Collection] = field(default_factory=dict)
    submissions: dict[str, _Submission] = field(default_factory=dict)
    movements: list[NotificationEntry] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def fields(self, tx: Pain008Transaction) -> PaymentFields:
        return PaymentFields(tx.end_to_end_id, tx.amount, tx.currency, tx.debtor_name, tx.key)

    def entry(self, c: Collection, kind: str, reason_code: str | None = None) -> NotificationEntry:
        due = date.fromisoformat(c.tx.due_on)
        return NotificationEntry(
            kind=kind,
            amount=c.tx.amount,
            currency=c.tx.currency,
            booked_on=settlement_date(due),
            end_to_end_id=c.tx.end_to_end_id,
            servicer_reference=self.sim.new_id("SIMDD", f"{c.tx.key}:{kind}"),
            instruction_id=c.tx.instruction_id,
            mandate_id=c.tx.mandate_id,
            debtor_name=c.tx.debtor_name,
            debtor_iban=c.tx.debtor_iban,
            creditor_name=c.tx.creditor_name,
            creditor_iban=c.tx.creditor_iban,
            remittance_text=c.tx.remittance_information,
            creditor_reference=c.tx.creditor_reference,
            reason_code=reason_code,
        )

    def schedule(self, c: Collection) -> None:
        task = asyncio.get_running_loop().create_task(self._timeline(c))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _timeline(self, c: Collection) -> None:
        delays = self.sim.delays(c.decision)
        subject = c.tx.end_to_end_id or c.tx.key
        await asyncio.sleep(delays["settle"].sample(self.sim.stream(subject, "dd-settle")))
        if c.decision.outcome == "reject":  # refused or rejected before settlement: nothing is booked
            c.step, c.reason_code = "rejected", c.decision.reason_code or "MS02"
            self.movements.append(self.entry(c, "rejected", c.reason_code))
            return
        c.step = "collected"
        self.movements.append(self.entry(c, "collected"))
        if c.decision.outcome != "return":
            return
        await asyncio.sleep(delays["return"].sample(self.sim.stream(subject, "dd-return")))
        c.step, c.reason_code = "returned", c.decision.reason_code or "MS02"
        self.movements.append(self.entry(c, "returned", c.reason_code))

    async def idle(self) -> None:
        """Wait until every scheduled collection step is done (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def reset(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.collections.clear()
        self.submissions.clear()
        self.movements.clear()


DESK = web.AppKey("direct_debit_desk", DirectDebitDesk)


def _refusal_body(sim: Simulator, body: bytes, error: ContractError) -> bytes:
    try:
        original = text(parse_xml(body), "CstmrDrctDbtInitn", "GrpHdr", "MsgId") or "NOTPROVIDED"
    except ContractError:
        original = "NOTPROVIDED"
    first = error.errors[0] if error.errors else None
    return build_pain002(
        StatusReport(
            message_id=sim.new_id("SIMRPT", original),
            created_at=datetime.now(UTC),
            original_message_id=original[:35],
            original_message_name=PAIN008_VERSION,
            group_status="RJCT",
            group_reason_code="FF01",
            group_reason=f"{first.pointer}: {first.message}" if first else error.message,
        )
    )


async def _transport(request: web.Request, record: Any, subject: str, faults: tuple[Any, ...]) -> None:
    record.faults.extend(f.kind for f in faults)
    try:
        await apply_transport_faults(request, subject, faults)
    except Refusal:
        raise
    except Exception:  # the connection was dropped (reset, or a hang that ended)
        record.outcome = "dropped" if record.outcome != "created" else "created, answer dropped"
        raise


async def post_pain008(request: web.Request) -> web.Response:
    """Take a pain.008: check, deduplicate, decide each collection, answer with a pain.002."""
    sim = request.app[SIMULATOR]
    desk = request.app[DESK]
    body = await request.read()
    record = sim.journal.record("in", "submit-pain008", method="POST", path=request.path, body=body)
    try:
        try:
            sim.partner.authenticate(request.headers, body, sim.settings)
        except SignatureError as exc:
            raise Refusal(401, "SIGNATURE_INVALID", exc.message) from None
        except AuthenticationError as exc:
            raise Refusal(401, "UNAUTHENTICATED", exc.message) from None
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise Refusal(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header is required")
        try:
            message = read_pain008(body)
        except ContractError as exc:
            raise Refusal(400, "FF01", exc.message, body=_refusal_body(sim, body, exc)) from None
        first = message.transactions[0]
        record.message_id, record.instruction_id, record.end_to_end_id = (
            message.message_id,
            first.key,
            first.end_to_end_id,
        )
        subject = first.end_to_end_id or first.key
        decision = sim.decide(desk.fields(first))
        await _transport(
            request, record, subject, sim.strike(subject, "submit", decision, kinds=TRANSPORT_FAULTS, after=False)
        )
        fingerprint = tuple(tx.fingerprint() for tx in message.transactions)
        previous = desk.submissions.get(key)
        if previous is not None:
            if previous.fingerprint != fingerprint:
                raise Refusal(409, "IDEMPOTENCY_CONFLICT", "Idempotency-Key was used for a different pain.008")
            previous.count += 1
            record.outcome, record.http_status = "replayed", previous.http_status
            return web.Response(status=previous.http_status, body=previous.body, content_type="application/xml")
        seen = [tx.key for tx in message.transactions if tx.key in desk.collections]
        if seen:
            raise Refusal(409, "DUPLICATE_INSTRUCTION", f"collection {seen[0]} was already submitted")
        blocks: dict[str, list[TransactionStatus]] = {}
        for tx in message.transactions:
            decision = sim.decide(desk.fields(tx))
            c = Collection(tx, decision, partner_reference=sim.new_id("SIMDD", tx.key))
            desk.collections[tx.key] = c
            if decision.outcome == "reject" and decision.at == "submit":
                c.step, c.reason_code = "rejected", decision.reason_code or "MS03"
                status = TransactionStatus("RJCT", tx.instruction_id, tx.end_to_end_id, c.reason_code)
            else:
                status = TransactionStatus(
                    "ACCP", tx.instruction_id, tx.end_to_end_id, account_servicer_reference=c.partner_reference
                )
                desk.schedule(c)
            blocks.setdefault(tx.payment_information_id, []).append(status)
        answer = build_pain002(
            StatusReport(
                message_id=sim.new_id("SIMRPT", message.message_id),
                created_at=datetime.now(UTC),
                original_message_id=message.message_id,
                original_message_name=PAIN008_VERSION,
                payments=tuple(PaymentInformationStatus(p, transactions=tuple(t)) for p, t in blocks.items()),
            )
        )
        desk.submissions[key] = _Submission(fingerprint, answer, 202)
        record.outcome = "created"
        after = sim.strike(subject, "submit", decision, kinds=TRANSPORT_FAULTS, after=True, purpose="submit-after")
        await _transport(request, record, subject, after)  # taken, but the answer may still be lost
        record.http_status = 202
        sim.journal.record("out", "answer-pain002", http_status=202, message_id=message.message_id, body=answer)
        return web.Response(status=202, body=answer, content_type="application/xml")
    except Refusal as refusal:
        record.http_status, record.outcome = refusal.status, record.outcome or "refused"
        record.detail = f"{refusal.code}: {refusal.message}"
        raise


def _notifications(sim: Simulator, movements: list[NotificationEntry], since: int) -> list[Notification]:
    """One notification per movement after the first ``since``: movement n is ``SIMNTF-n-n``, sequence n —
    what ``?since=n-1`` answered when it was the last, so each has one id however it is asked for."""
    return [Notification((m,), f"SIMNTF-{n}-{n}", n) for n, m in enumerate(movements[since:], start=since + 1)]


async def get_camt054(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    desk = request.app[DESK]
    after = request.query.get("after")
    raw = request.query.get("since", "0") if after is None else after
    if not raw.isdigit():
        name = "since" if after is None else "after"
        return web.json_response(
            {"error": {"code": f"BAD_{name.upper()}", "message": f"{name} must be a count >= 0"}}, status=400
        )
    since = int(raw)
    total = len(desk.movements)
    if after is None:  # one notification of every movement after the first ``since``
        notes = [Notification(tuple(desk.movements[since:]), f"SIMNTF-{since + 1}-{total}", total)]
    else:  # one notification per movement after the ``after``-th (what the gateway's scheduled fetch asks)
        notes = _notifications(sim, desk.movements, since)
    body = build_camt054_notifications(
        notes,
        account_iban=CREDITOR_ACCOUNT,
        currency="EUR",
        message_id=sim.new_id("SIMNTF", f"msg:{total}:{since}" + ("" if after is None else ":each")),
        created_at=datetime.now(UTC),
    )
    sim.journal.record("out", "camt054", method="GET", path=request.path, http_status=200, body=body)
    return web.Response(body=body, content_type="application/xml")


async def get_signed_camt054(request: web.Request) -> web.Response:
    """The partner route: the same notification, for a caller that signs its request (the adapter)."""
    sim = request.app[SIMULATOR]
    try:
        sim.partner.authenticate(request.headers, b"", sim.settings)
    except SignatureError as exc:
        raise Refusal(401, "SIGNATURE_INVALID", exc.message) from None
    except AuthenticationError as exc:
        raise Refusal(401, "UNAUTHENTICATED", exc.message) from None
    return await get_camt054(request)


async def list_collections(request: web.Request) -> web.Response:
    desk = request.app[DESK]
    return web.json_response(
        [
            {
                "instruction_id": c.tx.instruction_id,
                "end_to_end_id": c.tx.end_to_end_id,
                "amount": str(c.tx.amount),
                "currency": c.tx.currency,
                "sequence_type": c.tx.sequence_type,
                "due_on": c.tx.due_on,
                "debtor_iban": mask(c.tx.debtor_iban or ""),
                "step": c.step,
                "reason_code": c.reason_code,
            }
            for c in desk.collections.values()
        ]
    )


async def reset_collections(request: web.Request) -> web.Response:
    await request.app[DESK].reset()
    return web.json_response({"reset": True})


def add_direct_debit_routes(app: web.Application, movements: list[NotificationEntry] | None = None) -> None:
    """Give a bank simulator app its direct debit desk and routes (``movements``: the account's, shared)."""
    desk = DirectDebitDesk(app[SIMULATOR], movements=[] if movements is None else movements)
    app[DESK] = desk

    async def lifetime(app: web.Application) -> Any:
        yield
        await desk.reset()

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/pain008", post_pain008)
    app.router.add_get("/_sim/camt054", get_camt054)
    app.router.add_get("/camt054", get_signed_camt054)
    app.router.add_get("/_sim/direct-debits", list_collections)
    app.router.add_post("/_sim/direct-debits/reset", reset_collections)
