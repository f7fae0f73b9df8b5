"""Simulator of a card/wallet acquirer (REST JSON payouts, signed webhooks), a plug-in of the simulator core.

It validates what it receives with the adapter's own JSON Schemas
(``contracts/partners/card_acquirer/``), so it rejects exactly what the
contract rejects, in the acquirer's own error format.
"""

from __future__ import annotations

from gateway_simulators.card_acquirer.app import ACQUIRER, create_app, signed_webhook
from gateway_simulators.card_acquirer.partner import FAILURE_CODES, CardAcquirer

__all__ = ["ACQUIRER", "FAILURE_CODES", "CardAcquirer", "create_app", "signed_webhook"]
