"""The ISO 20022 bank simulator: the core's app with the ``Iso20022Bank`` plug-in.

Routes: ``POST /pain001`` (a signed pain.001.001.09 with ``Idempotency-Key``; a bulk
message with several payments is deduplicated per payment, on its InstrId
and optional ``X-Callback-Url``), ``GET /payments/{instruction_id}/status``
(signed request over the empty body), ``POST /pain008`` (SEPA Core direct
debits, answered with a pain.002; camt.054 notifications at
``GET /_sim/camt054``, see ``direct_debits``), ``GET /camt053?date=`` (the day's
statement, signed: what the adapter's scheduled fetch asks; the core's ``statement_path`` route),
``POST /_sim/incoming-transfers`` (money in, see ``incoming``), and the core's admin API under
``/_sim/`` (journal, reset, scenario, predict, statements). See ``gateway_simulators.core.app`` and docs/qa.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.partners.signing import sign_payload
from gateway_adapters.iso20022_bank.pain002 import (
    PaymentInformationStatus,
    StatusReport,
    TransactionStatus,
    build_pain002,
)
from gateway_simulators.core import SIMULATOR, create_simulator_app
from gateway_simulators.iso20022_bank.direct_debits import add_direct_debit_routes
from gateway_simulators.iso20022_bank.incoming import add_incoming_routes
from gateway_simulators.iso20022_bank.partner import Iso20022Bank

__all__ = ["BANK", "create_app", "signed_status_report"]

#: the bank's engine in its app (the core's key, under the name older tests use)
BANK = SIMULATOR


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The bank simulator. Settings (``ConfigError`` on bad ones): see ``gateway_simulators.core.CoreSettings``.

    ``request_secret``, ``callback_secret`` (required, the adapter's values);
    ``scenario`` (a shipped name, a YAML file, or a mapping) and ``seed``;
    ``callback_delay`` (0.05 s), ``settle_delay`` (0.1 s), ``return_delay``
    (0.2 s), ``send_callbacks`` (true), ``rules``, ``builtin_rules`` (true:
    ``REJECT-<CODE>`` / ``REJECTNOW-<CODE>`` in the creditor name),
    ``signature_tolerance_seconds`` (300), ``callback_attempts`` (4),
    ``callback_backoff`` (0.05 s, doubled per attempt), ``callback_batch_window``
    (0.01 s) and ``callback_batch_max`` (500: callbacks no fault touches that fall due
    within the window travel in one pain.002; 1 sends one per payment), ``callback_batch_concurrency``
    (4: such reports in flight at once per callback URL), ``unavailable_for``
    (the first N submissions get 503 + ``Retry-After: retry_after``).
    """
    bank = Iso20022Bank()
    app = create_simulator_app(bank, settings)
    add_direct_debit_routes(app, bank.movements)
    add_incoming_routes(app)
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
    returned: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A pain.002 callback as the bank would sign it, for tests of duplicates and replays.

    ``timestamp`` (unix seconds) back-dates the signature to make a stale one;
    ``returned`` flags a ``RJCT`` as a return after settlement.
    """
    secret = str(settings["callback_secret"]).encode()
    body = build_pain002(
        StatusReport(
            message_id=f"SIMRPT{datetime.now(UTC):%Y%m%d%H%M%S%f}",
            created_at=datetime.now(UTC),
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
                            returned=returned,
                        ),
                    ),
                ),
            ),
        )
    )
    headers = {"Content-Type": "application/xml", "X-Signature": sign_payload(secret, body, timestamp)}
    return body, headers
