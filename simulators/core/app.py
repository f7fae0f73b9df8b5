"""A partner simulator as an aiohttp application: the partner's routes plus the admin API.

Partner routes (paths from the ``Partner``): ``POST <submit_path>`` takes a
signed submission, ``GET <status_path>`` answers one payment's status, and
``GET <statement_path>?date=`` (where the partner has one) a day's statement
for a caller that signs its request. Every
response is signed (``X-Signature`` with ``callback_secret``); errors that are
not status reports use the partner's own error format.

Admin (for QA and tests, unsigned):

- ``GET /_sim/payments`` — payments held (IBANs masked)
- ``GET /_sim/journal`` — every exchange; filters: ``instruction_id`` (any payment of a bulk submission),
  ``partner_reference``, ``end_to_end_id``, ``message_id``, ``kind``,
  ``direction``, ``outcome``, ``fault``, ``since``
- ``POST /_sim/reset`` — forget everything, stop pending timelines
- ``GET /_sim/scenario``, ``PUT /_sim/scenario`` — read or swap the scenario (YAML or JSON body)
- ``GET /_sim/scenarios`` — the shipped scenarios for this partner and the fault kinds
  (``GET /_sim/scenarios/{name}``: one, with its document, to ``PUT`` as the scenario)
- ``POST /_sim/predict`` — final statuses for ``[{reference, amount, currency, creditor_name}]``
- ``GET /_sim/statements/{date}`` (or ``/_sim/statements?date=``) — that day's statement document
- ``GET /_sim/status`` — pending background work, counts
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from gateway.errors import AuthenticationError, ContractError, SignatureError
from gateway.partners.signing import sign_payload
from gateway_simulators.core.engine import Payment, Simulator, SubmissionRecord
from gateway_simulators.core.partner import Partner, ReportLine, Submission
from gateway_simulators.core.scenario import (
    FAULT_KINDS,
    PAYLOAD_FAULTS,
    TRANSPORT_FAULTS,
    Decision,
    Fault,
    PaymentFields,
    ScenarioError,
    parse_scenario,
    shipped_for,
)
from gateway_simulators.core.settings import CoreSettings

__all__ = [
    "SIMULATOR",
    "Refusal",
    "apply_transport_faults",
    "catalogue_routes",
    "create_simulator_app",
    "error_middleware",
    "get_signed_statement",
]

#: the engine of a simulator app (``app[SIMULATOR]``)
SIMULATOR = web.AppKey("simulator", Simulator)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

_PAYLOAD = web.RequestKey("sim.payload_faults", tuple)


#: payload faults that change the report itself (still valid, but wrong); the others break it in transit
_REPORT_FAULTS = frozenset({"wrong_amount", "wrong_currency", "unknown_status"})


class Refusal(Exception):
    """The partner refuses a request; rendered in its format (or with ``body``) by the middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        self.headers = dict(headers or {})


class _Dropped(Exception):
    """The connection was closed without an answer (reset, or a hang that ended)."""


def error_middleware(*, simulator: Simulator) -> Middleware:
    """Render ``Refusal`` in the partner's format, sign every partner response, apply transport-level payload faults.

    The only place where refusals become HTTP: handlers raise, this answers.
    Signing here means no handler can forget it; truncation and a wrong
    content type are applied after signing, as a broken path would.
    """
    partner = simulator.partner

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sim/"):
            return await handler(request)
        try:
            response = await handler(request)
        except _Dropped:
            return web.Response(status=204)  # the transport is gone: nothing is sent
        except Refusal as refusal:
            if refusal.body is not None:
                response = web.Response(
                    status=refusal.status, body=refusal.body, content_type=partner.content_type, headers=refusal.headers
                )
            else:
                body, content_type = partner.error_body(refusal.code, refusal.message)
                response = web.Response(
                    status=refusal.status, body=body, content_type=content_type, headers=refusal.headers
                )
        if isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            response.headers[partner.signature_header] = sign_payload(simulator.settings.callback_secret, body)
            for fault in request.get(_PAYLOAD, ()):
                if fault.kind == "truncated_body":
                    response.body = body[: max(1, len(body) // 2)]
                elif fault.kind == "wrong_content_type":
                    response.content_type = "text/html"
        return response

    return middleware


def _check_signature(request: web.Request, body: bytes) -> None:
    """The partner authenticates the request (an HMAC signature by default, ``Partner.authenticate``)."""
    sim = request.app[SIMULATOR]
    try:
        sim.partner.authenticate(request.headers, body, sim.settings)
    except SignatureError as exc:
        raise Refusal(401, "SIGNATURE_INVALID", exc.message) from None
    except AuthenticationError as exc:
        raise Refusal(401, "UNAUTHENTICATED", exc.message) from None


async def _transport(request: web.Request, sim: Simulator, subject: str, faults: Sequence[Fault]) -> None:
    """Latency, hang, reset and HTTP errors, in the order the scenario lists them."""
    for fault in faults:
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay.sample(sim.stream(subject, "latency")))
        elif fault.kind == "http_error":
            retry_after = fault.retry_after if fault.retry_after is not None else sim.settings.retry_after
            raise Refusal(
                fault.status,
                "TOO_MANY_REQUESTS" if fault.status == 429 else "UNAVAILABLE",
                f"simulated HTTP {fault.status}",
                headers={"Retry-After": str(retry_after)},
            )
        elif fault.kind in ("hang", "reset"):
            if fault.kind == "hang":
                await asyncio.sleep(fault.seconds)  # the client gives up long before, as a real one would
            if request.transport is not None:
                request.transport.abort()
            raise _Dropped


async def apply_transport_faults(request: web.Request, subject: str, faults: Sequence[Fault]) -> None:
    """The transport faults struck for ``subject``, on a route a partner adds beside the core's (raises to drop)."""
    await _transport(request, request.app[SIMULATOR], subject, faults)


def _names(faults: Sequence[Fault]) -> list[str]:
    return [f.kind for f in faults]


async def post_submission(request: web.Request) -> web.Response:
    """Take a submission: check, deduplicate, decide, answer, and schedule the rest."""
    sim = request.app[SIMULATOR]
    journal = sim.journal
    body = await request.read()
    record = journal.record("in", "submit", method="POST", path=request.path, body=body)
    try:
        return await _submission(request, sim, body, record)
    except Refusal as refusal:
        record.http_status = refusal.status
        record.outcome = record.outcome or "refused"
        record.detail = record.detail or f"{refusal.code}: {refusal.message}"
        raise
    except _Dropped:
        record.outcome = record.outcome or "dropped"
        raise


async def _submission(request: web.Request, sim: Simulator, body: bytes, record: Any) -> web.Response:
    settings = sim.settings
    if sim.outages_served < settings.unavailable_for:
        sim.outages_served += 1
        record.faults.append("http_error")
        raise Refusal(
            503,
            "UNAVAILABLE",
            "the partner is temporarily unavailable",
            headers={"Retry-After": str(settings.retry_after)},
        )
    _check_signature(request, body)
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise Refusal(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header is required")
    try:
        message = sim.partner.read_submission(body)
    except ContractError as exc:
        refusal = sim.partner.contract_refusal(body, exc, message_id=sim.new_id("SIMRPT"), now=datetime.now(UTC))
        raise Refusal(400, "FF01", exc.message, body=refusal) from None
    first = message.transactions[0]
    record.instruction_id, record.end_to_end_id, record.message_id = first.key, first.reference, message.message_id
    record.instruction_ids = [tx.key for tx in message.transactions]
    subject = first.reference or first.key
    # Faults are drawn per payment (its subject, its rule, its ``times``), also in a bulk message: a
    # transport fault drawn for any of its payments hits the request, so all of them.
    parts = [(tx.reference or tx.key, sim.decide(sim.fields(tx))) for tx in message.transactions]
    before = _strike_each(sim, parts, "submit", kinds=TRANSPORT_FAULTS, after=False)
    record.faults.extend(_names(before))
    await _transport(request, sim, subject, before)

    fingerprint = tuple(tx.fingerprint for tx in message.transactions)
    previous = sim.submissions.get(key)
    early = False
    if previous is not None:
        if previous.fingerprint != fingerprint:
            raise Refusal(409, "IDEMPOTENCY_CONFLICT", "Idempotency-Key was used for a different payment")
        previous.count += 1
        record.outcome = "replayed"
        answer = previous
    else:
        # A message of one payment under a new key for a payment already held is a mistake (409). In a
        # bulk message each payment is deduplicated on its own (its InstrId is its idempotency key): one
        # held already, with the same content, is answered with its current status and not taken again.
        bulk = len(message.transactions) > 1
        record.held_instruction_ids = [tx.key for tx in message.transactions if tx.key in sim.payments]
        duplicates = [
            tx.key
            for tx in message.transactions
            if tx.key in sim.payments and (not bulk or sim.payments[tx.key].tx.fingerprint != tx.fingerprint)
        ]
        if duplicates:
            raise Refusal(409, "DUPLICATE_INSTRUCTION", f"instruction {duplicates[0]} was already submitted")
        answer, payments = _accept(sim, message, key, request.headers.get("X-Callback-Url"))
        record.outcome = "created"
        early: set[str] = set()  # the payments whose whole timeline runs before this answer
        for payment in payments:
            hit = sim.strike(
                payment.tx.reference or payment.tx.key,
                "callback",
                payment.decision,
                kinds={"callback_early"},
                purpose="early",
            )
            if hit:
                early.add(payment.tx.key)
                if "callback_early" not in record.faults:
                    record.faults.extend(_names(hit))
        for payment in payments:
            if payment.step == "accepted":
                if payment.tx.key in early and not sim.partner.awaits_release(payment.tx):
                    await sim.advance(payment)
                else:
                    sim.schedule(payment)
    record.partner_reference = answer.lines[0].partner_reference if answer.lines else None
    record.partner_status = answer.lines[0].code if answer.lines else None
    after = _strike_each(sim, parts, "submit", kinds=TRANSPORT_FAULTS, after=True, purpose="submit-after")
    record.faults.extend(_names(after))
    await _transport(request, sim, subject, after)
    # payload faults: those that break the answer in transit hit the whole answer; those that change
    # the report change only the lines of the payments they were drawn for
    struck = [
        (tx.key, sim.strike(name, "submit", decision, kinds=PAYLOAD_FAULTS, purpose="submit-payload"))
        for tx, (name, decision) in zip(message.transactions, parts, strict=True)
    ]
    faults = _once_each(f for _, hit in struck for f in hit)
    record.faults.extend(_names(faults))
    tampered = {key: [f for f in hit if f.kind in _REPORT_FAULTS] for key, hit in struck}
    out = answer.body
    if any(tampered.values()):
        lines = [sim.tamper([line], tampered[line.key])[0] if tampered.get(line.key) else line for line in answer.lines]
        out = sim.partner.render_report(
            lines,
            message_id=answer.message_id,
            original_message_id=answer.original_message_id,
            now=datetime.now(UTC),
        )
    request[_PAYLOAD] = faults
    record.http_status = answer.http_status
    return web.Response(status=answer.http_status, body=out, content_type=sim.partner.content_type)


def _once_each(faults: Iterable[Fault]) -> tuple[Fault, ...]:
    """Each kind of fault once, the first drawn (a request is reset once, however many payments drew it)."""
    seen: dict[str, Fault] = {}
    for fault in faults:
        seen.setdefault(fault.kind, fault)
    return tuple(seen.values())


def _strike_each(
    sim: Simulator,
    parts: Sequence[tuple[str, Decision]],
    exchange: str,
    *,
    kinds: Iterable[str],
    after: bool,
    purpose: str | None = None,
) -> tuple[Fault, ...]:
    """The faults drawn for each payment of a message (subject, decision), each kind once for the request."""
    wanted = frozenset(kinds)
    return _once_each(
        f
        for name, decision in parts
        for f in sim.strike(name, exchange, decision, kinds=wanted, after=after, purpose=purpose)
    )


def _accept(
    sim: Simulator, message: Submission, key: str, callback_url: str | None
) -> tuple[SubmissionRecord, list[Payment]]:
    held = [sim.payments[tx.key] for tx in message.transactions if tx.key in sim.payments]
    payments = [
        sim.take(tx, sim.decide(sim.fields(tx)), key, callback_url)
        for tx in message.transactions
        if tx.key not in sim.payments
    ]
    # a payment held already is answered as it was the first time (a replay of its own answer)
    lines = tuple((*(_first_answer(sim, p) for p in held), *(sim.line(p) for p in payments)))
    subject = message.transactions[0].reference or message.transactions[0].key
    body, message_id = sim.report(lines, original_message_id=message.message_id, subject=subject)
    http_status = 202 if any(p.step == "accepted" for p in payments) else 200
    record = SubmissionRecord(
        fingerprint=tuple(tx.fingerprint for tx in message.transactions),
        http_status=http_status,
        body=body,
        payment_keys=tuple(p.tx.key for p in (*held, *payments)),
        lines=lines,
        message_id=message_id,
        original_message_id=message.message_id,
    )
    sim.submissions[key] = record
    return record, payments


def _first_answer(sim: Simulator, payment: Payment) -> ReportLine:
    """The line the partner answered for ``payment`` when it took it."""
    first = sim.submissions.get(payment.idempotency_key)
    found = next((line for line in first.lines if line.key == payment.tx.key), None) if first else None
    return found or sim.line(payment)


async def get_status(request: web.Request) -> web.Response:
    """The current status of one payment as a status report."""
    sim = request.app[SIMULATOR]
    body = await request.read()
    payment_id = request.match_info["payment_id"]
    payment = sim.payments.get(payment_id)
    record = sim.journal.record(
        "in",
        "status",
        method="GET",
        path=request.path,
        instruction_id=payment_id,
        partner_reference=payment.partner_reference if payment else None,
        end_to_end_id=payment.tx.reference if payment else None,
    )
    try:
        _check_signature(request, body)
        subject = payment.tx.reference or payment.tx.key if payment else payment_id
        decision = payment.decision if payment else None
        transport = sim.strike(subject, "status", decision, kinds=TRANSPORT_FAULTS)
        record.faults.extend(_names(transport))
        await _transport(request, sim, subject, transport)
        if payment is None:
            raise Refusal(404, "NOT_FOUND", "no payment with this id")
        faults = sim.strike(subject, "status", decision, kinds=PAYLOAD_FAULTS, purpose="status-payload")
        record.faults.extend(_names(faults))
        payload = [f for f in faults if f.kind in _REPORT_FAULTS]
        out, message_id = sim.report(
            [sim.line(payment)], original_message_id=payment.tx.message_id, subject=subject, faults=payload
        )
    except Refusal as refusal:
        record.http_status, record.outcome = refusal.status, "refused"
        record.detail = f"{refusal.code}: {refusal.message}"
        raise
    except _Dropped:
        record.outcome = "dropped"
        raise
    request[_PAYLOAD] = faults
    record.http_status, record.outcome = 200, "answered"
    record.message_id, record.partner_status = message_id, payment.status_code
    return web.Response(status=200, body=out, content_type=sim.partner.content_type)


# -- admin ------------------------------------------------------------------------------


async def list_payments(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].describe())


async def get_journal(request: web.Request) -> web.Response:
    try:
        entries = request.app[SIMULATOR].journal.select(dict(request.query))
    except (KeyError, ValueError) as exc:
        return web.json_response({"error": {"code": "BAD_FILTER", "message": f"unknown filter {exc}"}}, status=400)
    return web.json_response({"entries": [e.as_dict() for e in entries]})


async def reset(request: web.Request) -> web.Response:
    await request.app[SIMULATOR].reset()
    return web.json_response({"reset": True})


async def get_scenario(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    scenario = sim.scenario
    return web.json_response(
        {
            "name": scenario.name if scenario else None,
            "source": scenario.source if scenario else None,
            "seed": sim.seed,
            "document": dict(scenario.document) if scenario else None,
        }
    )


async def put_scenario(request: web.Request) -> web.Response:
    """Swap the scenario at run time; a bad one is a 400 naming line and field, and changes nothing."""
    sim = request.app[SIMULATOR]
    text = await request.text()
    try:
        scenario = parse_scenario(text, source="PUT /_sim/scenario")
    except ScenarioError as exc:
        body = {
            "error": {
                "code": "INVALID_SCENARIO",
                "message": exc.message,
                "line": exc.line,
                "pointer": exc.pointer,
                "errors": [{"pointer": e.pointer, "message": e.message} for e in exc.errors],
            }
        }
        return web.json_response(body, status=400)
    sim.use_scenario(scenario)
    return web.json_response({"name": scenario.name, "seed": sim.seed})


async def predict(request: web.Request) -> web.Response:
    """The final status each payment reaches under the current scenario (no state is touched)."""
    sim = request.app[SIMULATOR]
    try:
        items = await request.json()
        fields = [
            PaymentFields(
                reference=str(i["reference"]),
                amount=Decimal(str(i["amount"])),
                currency=str(i["currency"]),
                creditor_name=str(i.get("creditor_name", "")),
                key=str(i.get("instruction_id", "")),
            )
            for i in items
        ]
    except (ValueError, KeyError, TypeError, InvalidOperation):
        message = "expected a JSON list of {reference, amount, currency, creditor_name}"
        return web.json_response({"error": {"code": "BAD_REQUEST", "message": message}}, status=400)
    return web.json_response([sim.predict(f) for f in fields])


def _statement_type(partner: Partner) -> str:
    return partner.statement_content_type or partner.content_type


async def get_statement(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    raw = request.match_info.get("day") or request.query.get("date", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        message = f"date must be YYYY-MM-DD, not {raw!r}"
        return web.json_response({"error": {"code": "BAD_DATE", "message": message}}, status=400)
    body, injected = sim.statements(day)
    return web.Response(
        body=body, content_type=_statement_type(sim.partner), headers={"X-Sim-Breaks": json.dumps(injected)[:8000]}
    )


async def get_signed_statement(request: web.Request) -> web.Response:
    """``GET <statement_path>?date=YYYY-MM-DD``: that day's statement for a caller the partner authenticates (the
    adapter's scheduled fetch; a signed request over the empty body by default), the answer signed like every
    partner response. ``/_sim/statements/{date}`` is the same document, unsigned."""
    sim = request.app[SIMULATOR]
    _check_signature(request, b"")
    raw = request.query.get("date", "")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise Refusal(400, "BAD_DATE", f"date must be YYYY-MM-DD, not {raw[:20]!r}") from None
    body, _ = sim.statements(day)
    return web.Response(body=body, content_type=_statement_type(sim.partner))


async def status(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return web.json_response(
        {
            "partner": sim.partner.name,
            "scenario": sim.scenario.name if sim.scenario else None,
            "seed": sim.seed,
            "payments": len(sim.payments),
            "pending": sim.pending_tasks,
            "journal": len(sim.journal.entries),
        }
    )


def catalogue_routes(partner: str) -> list[web.RouteDef]:
    """``GET /_sim/scenarios`` (shipped scenarios for ``partner``, fault kinds) and ``/_sim/scenarios/{name}``."""

    async def list_scenarios(request: web.Request) -> web.Response:
        shipped = await asyncio.to_thread(shipped_for, partner)
        return web.json_response(
            {
                "partner": partner,
                "scenarios": [{"name": s["name"], "description": s["description"]} for s in shipped],
                "fault_kinds": list(FAULT_KINDS),
            }
        )

    async def one_scenario(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        for shipped in await asyncio.to_thread(shipped_for, partner):
            if shipped["name"] == name:
                return web.json_response(shipped)
        message = f"no shipped scenario {name[:64]!r} for {partner}"
        return web.json_response({"error": {"code": "NOT_FOUND", "message": message}}, status=404)

    return [web.get("/_sim/scenarios", list_scenarios), web.get("/_sim/scenarios/{name}", one_scenario)]


def create_simulator_app(partner: Partner, settings: Mapping[str, Any] | CoreSettings) -> web.Application:
    """A simulator for ``partner``; ``settings`` as in ``CoreSettings`` (``ConfigError`` on bad ones)."""
    parsed = settings if isinstance(settings, CoreSettings) else CoreSettings.from_mapping(settings, name=partner.name)
    sim = Simulator(partner, parsed)
    app = web.Application(middlewares=[error_middleware(simulator=sim)])
    app[SIMULATOR] = sim

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await sim.open()
        yield
        await sim.close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_post(partner.submit_path, post_submission)
    app.router.add_get(partner.status_path, get_status)
    app.router.add_get("/_sim/payments", list_payments)
    app.router.add_get("/_sim/journal", get_journal)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/scenario", get_scenario)
    app.router.add_put("/_sim/scenario", put_scenario)
    app.router.add_post("/_sim/predict", predict)
    app.router.add_get("/_sim/statements", get_statement)
    app.router.add_get("/_sim/statements/{day}", get_statement)
    if partner.statement_path is not None:
        app.router.add_get(partner.statement_path, get_signed_statement)
    app.router.add_get("/_sim/status", status)
    app.router.add_routes(catalogue_routes(partner.name))
    return app
