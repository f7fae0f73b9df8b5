"""The card/wallet acquirer as a plug-in of the simulator core: JSON payouts in, payout objects and events out.

It reads submissions with the adapter's own contracts (the very JSON Schema
files in ``contracts/partners/card_acquirer/``), so the simulator rejects
exactly what the contract rejects, answering ``400`` in the acquirer's error
format ``{"error": {"type", "code", "message", "param"}}``. Requests
authenticate with ``Authorization: Bearer <api_key>``; webhooks and answers are
signed in ``Acquirer-Signature``.

Scenario rules speak 4-character reason codes (``reason_code: AM04``); the
acquirer reports them as its own ``failure_code`` through ``FAILURE_CODES``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.domain.money import Money, minor_units
from gateway.errors import AuthenticationError, ContractError, DomainError, FieldError
from gateway_adapters.card_acquirer.contracts import CHARGE_CREATE, PAYOUT_CREATE, validate
from gateway_simulators.core.partner import Partner, ReportLine, Statement, Submission, Transaction

if TYPE_CHECKING:
    from gateway_simulators.core.settings import CoreSettings

__all__ = [
    "CHARGE_EVENT_TYPES",
    "CODES_BY_REFUSAL",
    "EVENT_TYPES",
    "FAILURE_CODES",
    "CardAcquirer",
    "Charge",
    "CurrencyNotSupported",
    "minor_of",
]

#: scenario reason code → the acquirer's ``failure_code`` (anything else: ``could_not_process``)
FAILURE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "AG01": "card_declined",
        "AM04": "insufficient_funds",
        "AC01": "invalid_account",
        "AC04": "account_closed",
        "PUNA": "processing_unavailable",
        "CURR": "currency_not_supported",
    }
)

#: the simulator core's step → webhook event type
EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "received": "payout.created",
        "accepted": "payout.created",
        "in_process": "payout.updated",
        "settled": "payout.paid",
        "rejected": "payout.failed",
        "returned": "payout.returned",
    }
)

#: the simulator core's step → charge webhook event type (a returned charge is a chargeback: a dispute)
CHARGE_EVENT_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "received": "charge.pending",
        "accepted": "charge.pending",
        "in_process": "charge.pending",
        "settled": "charge.succeeded",
        "rejected": "charge.failed",
        "returned": "charge.dispute.created",
    }
)

#: a payout status code (the core's step code) → the charge status it reads as
_CHARGE_STATUS = {"pending": "pending", "in_transit": "pending", "paid": "succeeded", "failed": "failed"}


@dataclass
class Charge:
    """What the acquirer keeps about a charge beyond the core's payment: capture and refunds."""

    manual: bool
    captured: bool
    amount_minor: int
    refunded_minor: int = 0
    #: refund Idempotency-Key → (request fingerprint, answer body)
    refunds: dict[str, tuple[str, bytes]] = field(default_factory=dict)


#: the core's refusal codes → the acquirer's (error type, error code)
CODES_BY_REFUSAL: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "SIGNATURE_INVALID": ("authentication_error", "invalid_api_key"),
        "UNAUTHENTICATED": ("authentication_error", "invalid_api_key"),
        "IDEMPOTENCY_KEY_MISSING": ("invalid_request_error", "idempotency_key_missing"),
        "IDEMPOTENCY_CONFLICT": ("idempotency_error", "idempotency_key_in_use"),
        "DUPLICATE_INSTRUCTION": ("invalid_request_error", "duplicate_payout"),
        "TOO_MANY_REQUESTS": ("rate_limit_error", "rate_limited"),
        "UNAVAILABLE": ("api_error", "api_error"),
        "NOT_FOUND": ("invalid_request_error", "resource_missing"),
        "FF01": ("invalid_request_error", "parameter_invalid"),
        "AMOUNT_TOO_LARGE": ("invalid_request_error", "amount_too_large"),
        "CHARGE_NOT_CAPTURED": ("invalid_request_error", "charge_not_captured"),
        "CHARGE_ALREADY_CAPTURED": ("invalid_request_error", "charge_already_captured"),
    }
)


class CurrencyNotSupported(ContractError):
    """The payout is well-formed, but this acquirer does not pay out in its currency."""

    default_message = "currency not supported"


def _payout_id(partner_reference: str) -> str:
    return f"po_{partner_reference}"


def minor_of(amount: Decimal, currency: str) -> int:
    try:
        exponent = minor_units(currency)
    except DomainError:
        exponent = 2
    return int(amount.scaleb(exponent))


class CardAcquirer(Partner):
    """``POST /v1/payouts`` and ``POST /v1/charges`` in; payout and charge objects, signed ``payout.*`` and
    ``charge.*`` webhook events and JSON statements out.

    A charge rides the core's timeline like a payment: ``settled`` is a captured, succeeded
    charge, ``rejected`` a declined one, and a scenario's ``return`` is a chargeback after
    settlement (``charge.dispute.created`` with the rule's ``reason_code`` as the card
    scheme's reason, e.g. 4837). A manual-capture charge waits, authorised, until captured.
    """

    name: ClassVar[str] = "card_acquirer"
    submit_path: ClassVar[str] = "/v1/payouts"
    status_path: ClassVar[str] = "/v1/payouts/{payment_id}"
    content_type: ClassVar[str] = "application/json"
    signature_header: ClassVar[str] = "Acquirer-Signature"
    codes: ClassVar[dict[str, str]] = {
        "received": "pending",
        "accepted": "pending",
        "in_process": "in_transit",
        "settled": "paid",
        "rejected": "failed",
        "returned": "returned",
    }

    def __init__(self, *, currencies: frozenset[str] = frozenset({"EUR", "USD", "GBP"})) -> None:
        self.currencies = currencies
        #: charges by collection id (the core's payment key); everything else is a payout
        self.charges: dict[str, Charge] = {}
        #: payout batch ids by (day, currency): a day's report names the same batches every time it is asked
        self.payout_batches: dict[tuple[str, str], str] = {}

    def reset(self) -> None:
        self.charges.clear()
        self.payout_batches.clear()

    def awaits_release(self, tx: Transaction) -> bool:
        """An authorised charge with manual capture waits for ``POST /v1/charges/{id}/capture``."""
        charge = self.charges.get(tx.key)
        return charge is not None and charge.manual and not charge.captured

    def authenticate(self, headers: Mapping[str, str], body: bytes, settings: CoreSettings) -> None:
        """``Authorization: Bearer <api_key>`` (the core's ``request_secret``), compared in constant time."""
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.request_secret):
            raise AuthenticationError("invalid API key provided")

    def read_submission(self, body: bytes) -> Submission:
        try:
            payout = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ContractError("body is not JSON", errors=[FieldError("", "body is not JSON")]) from None
        if isinstance(payout, dict) and "source" in payout:
            return self._read_charge(payout)
        validate(PAYOUT_CREATE, payout)
        currency = payout["currency"].upper()
        try:
            money = Money.from_minor(payout["amount"], currency)
        except DomainError as exc:
            raise ContractError(exc.message, errors=[FieldError("/currency", exc.message)]) from None
        if currency not in self.currencies:
            message = f"payouts in {currency} are not supported"
            raise CurrencyNotSupported(message, errors=[FieldError("/currency", message)])
        key = payout["metadata"]["instruction_id"]
        fingerprint = (json.dumps(payout, sort_keys=True),)
        return Submission(
            message_id=key,
            transactions=(
                Transaction(
                    key=key,
                    reference=payout["metadata"]["reference"],
                    amount=money.amount,
                    currency=currency,
                    creditor_name=payout["destination"]["name"],
                    message_id=key,
                    group_id=key,
                    fingerprint=fingerprint,
                ),
            ),
        )

    def _read_charge(self, charge: dict[str, Any]) -> Submission:
        """A ``charge-create`` body as the core's submission: the payer's name is what scenario rules match."""
        validate(CHARGE_CREATE, charge)
        currency = charge["currency"].upper()
        try:
            money = Money.from_minor(charge["amount"], currency)
        except DomainError as exc:
            raise ContractError(exc.message, errors=[FieldError("/currency", exc.message)]) from None
        if currency not in self.currencies:
            message = f"charges in {currency} are not supported"
            raise CurrencyNotSupported(message, errors=[FieldError("/currency", message)])
        key = charge["metadata"]["collection_id"]
        self.charges.setdefault(
            key, Charge(manual=not charge["capture"], captured=False, amount_minor=charge["amount"])
        )
        return Submission(
            message_id=key,
            transactions=(
                Transaction(
                    key=key,
                    reference=charge["metadata"]["reference"],
                    amount=money.amount,
                    currency=currency,
                    creditor_name=charge["source"]["name"],
                    message_id=key,
                    group_id=key,
                    fingerprint=(json.dumps(charge, sort_keys=True),),
                ),
            ),
        )

    def charge(self, line: ReportLine, *, now: datetime) -> dict[str, Any]:
        """The charge object for one report line."""
        info = self.charges[line.key]
        status = _CHARGE_STATUS.get(line.code, line.code)
        if line.code == "returned":
            status = "disputed"
        elif status == "pending" and info.manual and not info.captured:
            status = "requires_capture"
        failure = FAILURE_CODES.get(line.reason_code or "", "could_not_process") if status == "failed" else None
        return {
            "id": f"ch_{line.partner_reference}",
            "object": "charge",
            "amount": minor_of(line.amount, line.currency),
            "amount_refunded": info.refunded_minor,
            "currency": line.currency.lower(),
            "status": status,
            "captured": not info.manual or info.captured,
            "failure_code": failure,
            "failure_message": line.reason if failure else None,
            "dispute_reason_code": line.reason_code if status == "disputed" else None,
            "created": int(now.timestamp()),
            "metadata": {"collection_id": line.key, "reference": line.reference},
        }

    def contract_refusal(self, body: bytes, error: ContractError, *, message_id: str, now: datetime) -> bytes:
        """``invalid_request_error`` naming the first failing field (``currency_not_supported`` for a currency)."""
        first = error.errors[0] if error.errors else FieldError("", error.message)
        code = "currency_not_supported" if isinstance(error, CurrencyNotSupported) else "parameter_invalid"
        if first.message == "required field is missing":
            code = "parameter_missing"
        detail = {"type": "invalid_request_error", "code": code, "message": error.message, "param": first.pointer}
        return json.dumps({"error": detail}).encode()

    def error_body(self, code: str, message: str) -> tuple[bytes, str]:
        kind, partner_code = CODES_BY_REFUSAL.get(code, ("api_error", "api_error"))
        return json.dumps(
            {"error": {"type": kind, "code": partner_code, "message": message}}
        ).encode(), self.content_type

    def payout(self, line: ReportLine, *, now: datetime) -> dict[str, Any]:
        """The payout object for one report line."""
        failure = FAILURE_CODES.get(line.reason_code or "", "could_not_process") if line.reason_code else None
        return {
            "id": _payout_id(line.partner_reference),
            "object": "payout",
            "amount": minor_of(line.amount, line.currency),
            "currency": line.currency.lower(),
            "status": line.code,
            "failure_code": failure,
            "failure_message": line.reason if failure else None,
            "created": int(now.timestamp()),
            "metadata": {"instruction_id": line.key, "reference": line.reference},
        }

    def render_report(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        """One payout or charge object (a submission carries one)."""
        if lines[0].key in self.charges:
            return json.dumps(self.charge(lines[0], now=now)).encode()
        return json.dumps(self.payout(lines[0], now=now)).encode()

    def render_callback(
        self, lines: Sequence[ReportLine], *, message_id: str, original_message_id: str, now: datetime
    ) -> bytes:
        """A ``payout.*`` webhook event wrapping the payout object."""
        line = lines[0]
        if line.key in self.charges:
            kind, obj = CHARGE_EVENT_TYPES[line.step], self.charge(line, now=now)
        else:
            kind, obj = EVENT_TYPES[line.step], self.payout(line, now=now)
        event = {"id": f"evt_{message_id}", "object": "event", "type": kind, "created": int(now.timestamp())}
        event["data"] = {"object": obj}
        return json.dumps(event).encode()

    def render_statements(self, statements: Sequence[Statement], *, message_id: str, now: datetime) -> bytes:
        """Balance transactions per currency and day, in minor units (payouts negative, returns positive)."""
        data = [
            {
                "id": s.statement_id,
                "object": "balance_report",
                "currency": s.currency.lower(),
                "day": s.day.isoformat(),
                "opening_balance": minor_of(s.opening_balance, s.currency),
                "closing_balance": minor_of(s.closing_balance, s.currency),
                "transactions": [
                    {
                        "type": "payout_return" if e.credit else "payout",
                        "amount": minor_of(e.amount, e.currency) * (1 if e.credit else -1),
                        "payout": _payout_id(e.partner_reference),
                        "instruction_id": e.instruction_id,
                        "reference": e.reference,
                        "failure_code": FAILURE_CODES.get(e.reason_code or "") if e.reason_code else None,
                    }
                    for e in s.entries
                ],
            }
            for s in statements
        ]
        return json.dumps({"object": "list", "id": message_id, "created": int(now.timestamp()), "data": data}).encode()
