"""The card acquirer simulator: the core's app with the ``CardAcquirer`` plug-in.

Routes: ``POST /v1/payouts`` (``Authorization: Bearer <api_key>``,
``Idempotency-Key``, optional ``X-Callback-Url``), ``GET /v1/payouts/{instruction_id}``;
charges (money in): ``POST /v1/charges`` (same headers; the collection id as key),
``GET /v1/charges/{collection_id}``, ``POST /v1/charges/{collection_id}/capture`` and
``POST /v1/charges/{collection_id}/refunds`` (the refund id as Idempotency-Key); the day's settlement
report, ``GET /v1/settlements/{day}`` (Bearer; also ``/_sim/settlements/{day}`` for QA); and the
core's admin API under ``/_sim/`` (journal, reset, scenario, predict,
statements). See ``gateway_simulators.core.app`` and docs/adapters/card_acquirer.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from gateway.errors import AuthenticationError, ConfigError, ContractError
from gateway.partners.signing import sign_payload
from gateway_adapters.card_acquirer.contracts import REFUND_CREATE, validate
from gateway_simulators.card_acquirer.partner import CardAcquirer, minor_of
from gateway_simulators.core import SIMULATOR, Refusal, ReportLine, Simulator, create_simulator_app
from gateway_simulators.core.app import get_status, post_submission

__all__ = [
    "ACQUIRER",
    "create_app",
    "get_settlement_report",
    "get_settlement_report_signed_in",
    "settlement_report",
    "signed_webhook",
]

#: the acquirer's engine in its app
ACQUIRER = SIMULATOR

#: the acquirer's own setting names → the core's
_ALIASES = {"api_key": "request_secret", "webhook_secret": "callback_secret"}
_DEFAULT_CURRENCIES = ("EUR", "USD", "GBP")


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The acquirer simulator. Settings (``ConfigError`` on bad ones):

    ``api_key`` (the Bearer key it accepts) and ``webhook_secret`` (signs
    webhooks and answers) — the adapter's values, required; ``currencies``
    (``[EUR, USD, GBP]``; others are refused ``currency_not_supported``); and
    every setting of ``gateway_simulators.core.CoreSettings`` (``scenario``,
    ``seed``, delays, ``send_callbacks``, ``unavailable_for``, ...).
    """
    core = dict(settings)
    for ours, theirs in _ALIASES.items():
        if ours in core:
            if theirs in core:
                raise ConfigError(f"card_acquirer simulator: give {ours} or {theirs}, not both")
            core[theirs] = core.pop(ours)
    currencies = core.pop("currencies", list(_DEFAULT_CURRENCIES))
    if (
        not isinstance(currencies, list)
        or not currencies
        or not all(isinstance(c, str) and len(c) == 3 and c.isalpha() and c.isupper() for c in currencies)
    ):
        raise ConfigError("card_acquirer simulator: currencies must be a list of ISO 4217 codes like EUR")
    for name in ("request_secret", "callback_secret"):
        if name not in core:
            alias = next(k for k, v in _ALIASES.items() if v == name)
            raise ConfigError(f"card_acquirer simulator: {alias} is required")
    app = create_simulator_app(CardAcquirer(currencies=frozenset(currencies)), core)
    app.router.add_post("/v1/charges", post_submission)
    app.router.add_get("/v1/charges/{payment_id}", get_status)
    app.router.add_post("/v1/charges/{payment_id}/capture", capture_charge)
    app.router.add_post("/v1/charges/{payment_id}/refunds", refund_charge)
    app.router.add_get("/_sim/settlements/{day}", get_settlement_report)
    app.router.add_get("/v1/settlements/{day}", get_settlement_report_signed_in)
    return app


def _acquirer(sim: Simulator) -> CardAcquirer:
    partner = sim.partner
    assert isinstance(partner, CardAcquirer)
    return partner


def _authenticate(sim: Simulator, request: web.Request, body: bytes) -> None:
    try:
        sim.partner.authenticate(request.headers, body, sim.settings)
    except AuthenticationError as exc:
        raise Refusal(401, "UNAUTHENTICATED", exc.message) from None


async def capture_charge(request: web.Request) -> web.Response:
    """Capture an authorised manual-capture charge; a second capture answers the same (idempotent)."""
    sim = request.app[ACQUIRER]
    body = await request.read()
    key = request.match_info["payment_id"]
    record = sim.journal.record("in", "capture", method="POST", path=request.path, instruction_id=key)
    try:
        _authenticate(sim, request, body)
        payment, charge = sim.payments.get(key), _acquirer(sim).charges.get(key)
        if payment is None or charge is None:
            raise Refusal(404, "NOT_FOUND", "no charge with this id")
        if not charge.manual:
            raise Refusal(400, "CHARGE_ALREADY_CAPTURED", "the charge was captured when it was created")
        record.outcome = "replayed" if charge.captured else "created"
        if not charge.captured:
            charge.captured = True
            sim.release(key)
        out, _ = sim.report([sim.line(payment)], original_message_id=key, subject=payment.tx.reference or key)
    except Refusal as refusal:
        record.http_status, record.outcome = refusal.status, "refused"
        record.detail = f"{refusal.code}: {refusal.message}"
        raise
    record.http_status, record.partner_reference = 200, payment.partner_reference
    return web.Response(status=200, body=out, content_type=sim.partner.content_type)


async def refund_charge(request: web.Request) -> web.Response:
    """Refund part or all of a succeeded charge; never more than its amount less what was refunded."""
    sim = request.app[ACQUIRER]
    body = await request.read()
    key = request.match_info["payment_id"]
    refund_key = request.headers.get("Idempotency-Key", "").strip()
    record = sim.journal.record(
        "in", "refund", method="POST", path=request.path, instruction_id=key, message_id=refund_key, body=body
    )
    try:
        _authenticate(sim, request, body)
        if not refund_key:
            raise Refusal(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header is required")
        payment, charge = sim.payments.get(key), _acquirer(sim).charges.get(key)
        if payment is None or charge is None:
            raise Refusal(404, "NOT_FOUND", "no charge with this id")
        try:
            refund = json.loads(body)
            validate(REFUND_CREATE, refund)
        except (ValueError, ContractError) as exc:
            raise Refusal(400, "FF01", f"invalid refund: {exc}") from None
        fingerprint = json.dumps(refund, sort_keys=True)
        previous = charge.refunds.get(refund_key)
        if previous is not None:
            if previous[0] != fingerprint:
                raise Refusal(409, "IDEMPOTENCY_CONFLICT", "Idempotency-Key was used for a different refund")
            record.http_status, record.outcome = 200, "replayed"
            return web.Response(status=200, body=previous[1], content_type=sim.partner.content_type)
        if payment.step != "settled":
            raise Refusal(400, "CHARGE_NOT_CAPTURED", f"a charge in step {payment.step} cannot be refunded")
        if charge.refunded_minor + refund["amount"] > charge.amount_minor:
            raise Refusal(400, "AMOUNT_TOO_LARGE", "the refund exceeds what is left of the charge")
        charge.refunded_minor += refund["amount"]
        answer = {
            "id": f"re_{sim.new_id('SIMRF', refund_key)}",
            "object": "refund",
            "amount": refund["amount"],
            "currency": payment.tx.currency.lower(),
            "charge": f"ch_{payment.partner_reference}",
            "status": "succeeded",
            "failure_code": None,
            "metadata": refund["metadata"],
        }
        out = json.dumps(answer).encode()
        charge.refunds[refund_key] = (fingerprint, out)
    except Refusal as refusal:
        record.http_status, record.outcome = refusal.status, "refused"
        record.detail = f"{refusal.code}: {refusal.message}"
        raise
    record.http_status, record.outcome, record.partner_reference = 200, "created", answer["id"]
    return web.Response(status=200, body=out, content_type=sim.partner.content_type)


#: the simulated acquirer's fees, in minor units: a charge pays basis points of its amount plus a fixed part
CHARGE_FEE_BP = 140
CHARGE_FEE_FIXED = 25
PAYOUT_FEE = 25
CHARGEBACK_FEE = 1500


def _fee(kind: str, amount_minor: int) -> int:
    if kind == "charge":
        return int((Decimal(amount_minor) * CHARGE_FEE_BP / 10_000).to_integral_value(ROUND_HALF_UP)) + CHARGE_FEE_FIXED
    return {"payout": PAYOUT_FEE, "chargeback": CHARGEBACK_FEE}.get(kind, 0)


def settlement_report(sim: Simulator, day: date) -> dict[str, Any]:
    """The day's settlement report: one payout batch per currency of what settled (and came back) that day.

    Each transaction has its gross ``amount`` (minor units, positive: to the merchant) and its ``fee``;
    a batch declares its ``gross``, ``fees`` and ``net`` (gross - fees, what is paid to the merchant's
    bank account; negative: what the acquirer debits from it). Charges captured count in, payouts out,
    chargebacks and returned payouts the other way.
    """
    charges = _acquirer(sim).charges
    by_currency: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(sim.payments.values(), key=lambda p: p.tx.key):
        charge = p.tx.key in charges
        for when, back in ((p.settled_at, False), (p.returned_at, True)):
            if when is None or when.date() != day:
                continue
            amount = minor_of(p.tx.amount, p.tx.currency)
            if charge:
                kind, sign = ("chargeback", -1) if back else ("charge", 1)
                item: dict[str, Any] = {"type": kind, "charge": f"ch_{p.partner_reference}", "collection_id": p.tx.key}
            else:
                kind, sign = ("payout_return", 1) if back else ("payout", -1)
                item = {"type": kind, "payout": f"po_{p.partner_reference}", "instruction_id": p.tx.key}
            item.update(reference=p.tx.reference, amount=sign * amount, fee=_fee(kind, amount))
            by_currency.setdefault(p.tx.currency, []).append(item)
    batches = []
    for currency, items in sorted(by_currency.items()):
        gross, fees = sum(i["amount"] for i in items), sum(i["fee"] for i in items)
        batches.append(
            {
                "id": _acquirer(sim).payout_batches.setdefault(
                    (day.isoformat(), currency), f"pb_{sim.new_id('SIMPB', f'settlement:{day}:{currency}')}"
                ),
                "object": "payout_batch",
                "currency": currency.lower(),
                "day": day.isoformat(),
                "gross": gross,
                "fees": fees,
                "net": gross - fees,
                "transactions": items,
            }
        )
    return {"object": "settlement_report", "day": day.isoformat(), "data": batches}


async def get_settlement_report_signed_in(request: web.Request) -> web.Response:
    """``GET /v1/settlements/{day}`` (``Authorization: Bearer <api_key>``): what the adapter fetches."""
    sim = request.app[ACQUIRER]
    try:
        _authenticate(sim, request, b"")
    except Refusal as refusal:
        sim.journal.record(
            "in", "statement", method="GET", path=request.path, http_status=refusal.status, outcome="refused"
        )
        raise
    return await get_settlement_report(request)


async def get_settlement_report(request: web.Request) -> web.Response:
    """``GET /_sim/settlements/{day}``: the settlement report of that day (JSON)."""
    sim = request.app[ACQUIRER]
    raw = request.match_info["day"]
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return web.json_response(
            {"error": {"code": "BAD_DATE", "message": f"day must be YYYY-MM-DD, not {raw!r}"}}, status=400
        )
    report = settlement_report(sim, day)
    sim.journal.record("out", "statement", method="GET", path=request.path, http_status=200, outcome="answered")
    return web.json_response(report)


def signed_webhook(
    settings: Mapping[str, Any],
    instruction_id: str,
    step: str,
    *,
    amount: Decimal = Decimal("10.00"),
    currency: str = "EUR",
    reference: str = "REF",
    partner_reference: str = "SIMTEST0001",
    reason_code: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A webhook event as the acquirer would sign it (``step``: settled, rejected, returned, ...), for tests.

    ``timestamp`` (unix seconds) back-dates the signature to make a stale one.
    """
    partner = CardAcquirer()
    line = ReportLine(
        key=instruction_id,
        reference=reference,
        group_id=instruction_id,
        step=step,
        code=CardAcquirer.codes[step],
        partner_reference=partner_reference,
        amount=amount,
        currency=currency,
        reason_code=reason_code,
    )
    now = datetime.now(UTC)
    body = partner.render_callback([line], message_id=f"TEST{now:%Y%m%d%H%M%S%f}", original_message_id="", now=now)
    secret = str(settings.get("webhook_secret") or settings["callback_secret"]).encode()
    headers = {"Content-Type": "application/json", CardAcquirer.signature_header: sign_payload(secret, body, timestamp)}
    return body, headers
