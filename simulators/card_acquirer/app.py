"""The card acquirer simulator: the core's app with the ``CardAcquirer`` plug-in.

Routes: ``POST /v1/payouts`` (``Authorization: Bearer <api_key>``,
``Idempotency-Key``, optional ``X-Callback-Url``), ``GET /v1/payouts/{instruction_id}``,
and the core's admin API under ``/_sim/`` (journal, reset, scenario, predict,
statements). See ``gateway_simulators.core.app`` and docs/adapters/card_acquirer.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from gateway.errors import ConfigError
from gateway.partners.signing import sign_payload
from gateway_simulators.card_acquirer.partner import CardAcquirer
from gateway_simulators.core import SIMULATOR, ReportLine, create_simulator_app

__all__ = ["ACQUIRER", "create_app", "signed_webhook"]

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
    return create_simulator_app(CardAcquirer(currencies=frozenset(currencies)), core)


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
