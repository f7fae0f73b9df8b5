"""The card acquirer's codes and what the gateway makes of them: one table per kind of code.

- ``ERROR_CODES``: ``error.code`` of a non-2xx answer, and ``failure_code`` of a
  failed payout, → one of three outcomes:

  * ``retry``   — ``TransientPartnerError``: the dispatcher retries with the same
    Idempotency-Key (``Retry-After`` honoured);
  * ``reject``  — the payee side refused: ``SubmitResult``/status ``rejected``
    with an ISO 20022 reason code;
  * ``reroute`` — *this* acquirer cannot carry the payment, another channel may.
    On submit: ``PermanentPartnerError(reason_code="REROUTE")``; the dispatcher's
    failover (``gateway.dispatch.dispatcher``) records ``accepted`` with reason ``REROUTE``
    and routes the payment again, skipping this adapter (``rejected NO_ROUTE``
    when no other adapter can carry it). By webhook or poll (the acquirer gave
    up after taking it): status ``failed`` with reason ``REROUTE`` — terminal,
    since a submitted payment cannot go back to routing; the code tells
    operations that resending on another rail is safe (the acquirer did not pay).

- ``EVENT_STATUSES``: webhook ``type`` → gateway status (``None``: acknowledged only).
- ``PAYOUT_STATUSES``: payout ``status`` → gateway status (``None``: still in flight).
- ``CHARGE_STATUSES``, ``CHARGE_EVENT_STATUSES``: a charge's ``status`` and webhook ``type`` →
  collection status (``gateway.domain.collection_status``); a declined charge's ``failure_code``
  goes through ``ERROR_CODES`` for its reason code; ``CHARGEBACK_REASONS`` names the card
  scheme's chargeback reason codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from gateway.domain.collection_status import CollectionStatus
from gateway.domain.status import Status

__all__ = [
    "CHARGEBACK_REASONS",
    "CHARGE_EVENT_STATUSES",
    "CHARGE_STATUSES",
    "ERROR_CODES",
    "EVENT_STATUSES",
    "PAYOUT_STATUSES",
    "REROUTE",
    "CodeRule",
    "rule_for",
]

#: the reason code of a "requeue elsewhere" outcome
REROUTE = "REROUTE"

Outcome = Literal["retry", "reject", "reroute"]


@dataclass(frozen=True)
class CodeRule:
    """What one acquirer code means to the gateway."""

    outcome: Outcome
    #: the gateway reason code (ISO 20022 where one fits)
    reason_code: str
    description: str


ERROR_CODES: Mapping[str, CodeRule] = MappingProxyType(
    {
        # retry: the acquirer may take it a moment later
        "rate_limited": CodeRule("retry", "RATE_LIMITED", "too many requests"),
        "api_error": CodeRule("retry", "PARTNER_API_ERROR", "acquirer internal error"),
        "lock_timeout": CodeRule("retry", "LOCK_TIMEOUT", "the payout object was locked by another request"),
        # a wrong API key is a configuration fault: keep the payments, retry slowly until it is fixed
        "invalid_api_key": CodeRule("retry", "PARTNER_AUTH", "the acquirer refused the API key"),
        # reject: the payee side refused the money
        "card_declined": CodeRule("reject", "AG01", "card or wallet declined the payout"),
        "insufficient_funds": CodeRule("reject", "AM04", "insufficient funds in the payout balance"),
        "invalid_account": CodeRule("reject", "AC01", "wallet or card token unknown or invalid"),
        "account_closed": CodeRule("reject", "AC04", "wallet or card account closed"),
        "could_not_process": CodeRule("reject", "MS03", "the acquirer could not process the payout"),
        # reroute: this acquirer cannot carry it, another channel may
        "processing_unavailable": CodeRule("reroute", REROUTE, "payouts to this destination are unavailable"),
        "currency_not_supported": CodeRule("reroute", REROUTE, "the acquirer does not pay out in this currency"),
    }
)

EVENT_STATUSES: Mapping[str, Status | None] = MappingProxyType(
    {
        "payout.created": None,
        "payout.updated": None,
        "payout.paid": Status.SETTLED,
        "payout.failed": Status.REJECTED,  # FAILED + REROUTE when the failure_code says "reroute"
        "payout.returned": Status.RETURNED,
        "payout.canceled": Status.FAILED,
    }
)

PAYOUT_STATUSES: Mapping[str, Status | None] = MappingProxyType(
    {
        "pending": None,
        "in_transit": None,
        "paid": Status.SETTLED,
        "failed": Status.REJECTED,  # FAILED + REROUTE when the failure_code says "reroute"
        "returned": Status.RETURNED,
        "canceled": Status.FAILED,
    }
)


def rule_for(code: str | None) -> CodeRule | None:
    """The rule for an acquirer code, ``None`` for a code not in the table."""
    return ERROR_CODES.get(code or "")


#: charge ``status`` → collection status (``None``: still in flight, or authorised awaiting its capture)
CHARGE_STATUSES: Mapping[str, CollectionStatus | None] = MappingProxyType(
    {
        "pending": None,
        "requires_capture": None,
        "succeeded": CollectionStatus.COLLECTED,
        "failed": CollectionStatus.REJECTED,
        "disputed": CollectionStatus.CHARGED_BACK,
    }
)

#: charge webhook ``type`` → collection status
CHARGE_EVENT_STATUSES: Mapping[str, CollectionStatus | None] = MappingProxyType(
    {
        "charge.pending": None,
        "charge.succeeded": CollectionStatus.COLLECTED,
        "charge.failed": CollectionStatus.REJECTED,
        "charge.dispute.created": CollectionStatus.CHARGED_BACK,
    }
)

#: card scheme chargeback reason codes the acquirer passes on (Mastercard numbering), for the event's reason
CHARGEBACK_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "4837": "no cardholder authorisation (fraud)",
        "4853": "cardholder dispute (goods or services not as described or not received)",
        "4834": "duplicate processing",
        "4855": "goods or services not provided",
    }
)
