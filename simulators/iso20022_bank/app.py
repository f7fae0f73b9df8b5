"""The ISO 20022 bank simulator as an aiohttp application.

Routes:

- ``POST /pain001`` — a signed pain.001.001.09 (``X-Signature`` with
  ``request_secret``, ``Idempotency-Key``, optional ``X-Callback-Url``).
  401 (JSON) on a bad signature; 400 + pain.002 ``RJCT FF01`` when the body
  fails the same XSD the adapter uses; 409 (JSON) when the key was used with
  other content; 202 + pain.002 ``ACTC`` (or 200 + ``RJCT`` when a rule rejects
  at submission). A resend with the same key and content gets the first answer
  again and creates nothing.
- ``GET /payments/{instruction_id}/status`` — signed request over the empty
  body; pain.002 with the current status, 404 (JSON) if unknown.
- ``GET /_sim/payments``, ``POST /_sim/reset`` — admin, for QA and tests.

Every response carries ``X-Signature`` (``callback_secret``). Errors that are
not a pain.002 use the bank's JSON format ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.crypto import sign_payload, verify_signature
from gateway.errors import ContractError, SignatureError
from gateway_adapters.iso20022_bank.pain001 import Pain001Message, read_pain001
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_adapters.iso20022_bank.safexml import parse_xml, text
from gateway_simulators.iso20022_bank.bank import (
    Bank,
    Payment,
    SimulatorSettings,
    Submission,
    new_id,
)
from gateway_simulators.iso20022_bank.rules import decide

__all__ = ["BANK", "BankRefusal", "create_app", "error_middleware", "signed_status_report"]

BANK = web.AppKey("iso20022_bank", Bank)

_XML = "application/xml"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class BankRefusal(Exception):
    """The bank refuses a request; rendered as JSON (or the given pain.002) by the middleware."""

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


def error_middleware(*, callback_secret: bytes) -> Middleware:
    """Render ``BankRefusal`` in the bank's format and sign every response body.

    The only place where refusals become HTTP: handlers raise, this answers.
    Signing here means no handler can forget it.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except BankRefusal as refusal:
            if refusal.body is not None:
                response = web.Response(
                    status=refusal.status,
                    body=refusal.body,
                    content_type=_XML,
                    headers=refusal.headers,
                )
            else:
                response = web.json_response(
                    {"error": {"code": refusal.code, "message": refusal.message}},
                    status=refusal.status,
                    headers=refusal.headers,
                )
        if isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            response.headers["X-Signature"] = sign_payload(callback_secret, body)
        return response

    return middleware


def _check_signature(request: web.Request, body: bytes) -> None:
    settings = request.app[BANK].settings
    try:
        verify_signature(
            settings.request_secret,
            body,
            request.headers.get("X-Signature"),
            tolerance=settings.signature_tolerance_seconds,
        )
    except SignatureError as exc:
        raise BankRefusal(401, "SIGNATURE_INVALID", exc.message) from None


def _format_rejection(body: bytes, error: ContractError) -> bytes:
    """pain.002 group-level RJCT FF01 naming the first thing that failed."""
    try:
        original = text(parse_xml(body), "CstmrCdtTrfInitn", "GrpHdr", "MsgId") or "NOTPROVIDED"
    except ContractError:
        original = "NOTPROVIDED"
    first = error.errors[0] if error.errors else None
    detail = f"{first.pointer}: {first.message}" if first else error.message
    return build_pain002(
        StatusReport(
            message_id=new_id("SIMRPT"),
            created_at=_utcnow(),
            original_message_id=original[:35],
            group_status="RJCT",
            group_reason_code="FF01",
            group_reason=detail,
        )
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def post_pain001(request: web.Request) -> web.Response:
    """Take a pain.001: check, deduplicate, decide, answer, and schedule the rest."""
    bank = request.app[BANK]
    settings = bank.settings
    if bank.outages_served < settings.unavailable_for:
        bank.outages_served += 1
        raise BankRefusal(
            503,
            "UNAVAILABLE",
            "the bank is temporarily unavailable",
            headers={"Retry-After": str(settings.retry_after)},
        )
    body = await request.read()
    _check_signature(request, body)
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key:
        raise BankRefusal(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header is required")
    try:
        message = read_pain001(body)
    except ContractError as exc:
        raise BankRefusal(400, "FF01", exc.message, body=_format_rejection(body, exc)) from None
    fingerprint = tuple(tx.fingerprint() for tx in message.transactions)

    previous = bank.submissions.get(key)
    if previous is not None:
        if previous.fingerprint != fingerprint:
            raise BankRefusal(409, "IDEMPOTENCY_CONFLICT", "Idempotency-Key was used for a different payment")
        previous.count += 1
        return web.Response(status=previous.http_status, body=previous.body, content_type=_XML)

    duplicates = [tx.key for tx in message.transactions if tx.key in bank.payments]
    if duplicates:
        raise BankRefusal(409, "DUPLICATE_INSTRUCTION", f"instruction {duplicates[0]} was already submitted")
    return _accept(bank, message, key, request.headers.get("X-Callback-Url"))


def _accept(bank: Bank, message: Pain001Message, key: str, callback_url: str | None) -> web.Response:
    payments: list[Payment] = []
    for tx in message.transactions:
        outcome = decide(bank.settings.rules, tx, builtin=bank.settings.builtin_rules)
        payment = Payment(
            tx=tx,
            bank_reference=new_id("SIMB"),
            outcome=outcome,
            idempotency_key=key,
            callback_url=callback_url,
        )
        payment.move("RCVD")
        if outcome.result == "reject" and outcome.at == "submit":
            payment.move("RJCT", outcome.reason_code)
        else:
            payment.move("ACTC")
        bank.payments[tx.key] = payment
        payments.append(payment)
    body = bank.report(payments, original_message_id=message.message_id)
    http_status = 202 if any(p.iso_status == "ACTC" for p in payments) else 200
    bank.submissions[key] = Submission(
        fingerprint=tuple(tx.fingerprint() for tx in message.transactions),
        http_status=http_status,
        body=body,
        payment_keys=tuple(p.tx.key for p in payments),
    )
    for payment in payments:
        if payment.iso_status == "ACTC":
            bank.schedule(payment)
    return web.Response(status=http_status, body=body, content_type=_XML)


async def get_status(request: web.Request) -> web.Response:
    """The current status of one payment as a pain.002."""
    bank = request.app[BANK]
    _check_signature(request, await request.read())
    payment = bank.payments.get(request.match_info["instruction_id"])
    if payment is None:
        raise BankRefusal(404, "NOT_FOUND", "no payment with this instruction id")
    body = bank.report([payment], original_message_id=payment.tx.message_id)
    return web.Response(status=200, body=body, content_type=_XML)


async def list_payments(request: web.Request) -> web.Response:
    """Admin: every payment the bank holds (IBANs masked)."""
    return web.json_response(request.app[BANK].describe())


async def reset(request: web.Request) -> web.Response:
    """Admin: forget everything and cancel pending callbacks."""
    await request.app[BANK].reset()
    return web.json_response({"reset": True})


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The bank simulator. Settings (``ConfigError`` on bad ones):

    ``request_secret``, ``callback_secret`` (required, the adapter's values);
    ``callback_delay`` (s, 0.05), ``settle_delay`` (s, 0.1), ``send_callbacks``
    (True; False leaves polling as the only way to learn the outcome),
    ``rules`` (see ``gateway_simulators.iso20022_bank.rules``), ``builtin_rules``
    (True: ``REJECT-<CODE>`` / ``REJECTNOW-<CODE>`` in the creditor name),
    ``signature_tolerance_seconds`` (300), ``callback_attempts`` (4),
    ``callback_backoff`` (s, 0.05, doubled per attempt), ``unavailable_for``
    (0: the first N submissions get 503 + ``Retry-After: retry_after``).
    """
    parsed = SimulatorSettings.from_mapping(settings)
    bank = Bank(parsed)
    app = web.Application(middlewares=[error_middleware(callback_secret=parsed.callback_secret)])
    app[BANK] = bank

    async def bank_lifetime(app: web.Application) -> AsyncIterator[None]:
        await bank.open()
        yield
        await bank.close()

    app.cleanup_ctx.append(bank_lifetime)
    app.router.add_post("/pain001", post_pain001)
    app.router.add_get("/payments/{instruction_id}/status", get_status)
    app.router.add_get("/_sim/payments", list_payments)
    app.router.add_post("/_sim/reset", reset)
    return app


def signed_status_report(
    settings: Mapping[str, Any],
    instruction_id: str,
    end_to_end_id: str,
    status_code: str,
    reason_code: str | None = None,
    *,
    account_servicer_reference: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A pain.002 callback as the bank would sign it, for tests of duplicates and replays.

    ``timestamp`` (unix seconds) back-dates the signature to make a stale one.
    """
    secret = str(settings["callback_secret"]).encode()
    body = build_pain002(
        StatusReport(
            message_id=new_id("SIMRPT"),
            created_at=_utcnow(),
            original_message_id=instruction_id,
            payments=(
                PaymentInformationStatus(
                    instruction_id,
                    transactions=(
                        TransactionStatus(
                            status=status_code,
                            instruction_id=instruction_id,
                            end_to_end_id=end_to_end_id,
                            reason_code=reason_code,
                            account_servicer_reference=account_servicer_reference,
                        ),
                    ),
                ),
            ),
        )
    )
    headers = {
        "Content-Type": _XML,
        "X-Signature": sign_payload(secret, body, timestamp),
    }
    return body, headers
