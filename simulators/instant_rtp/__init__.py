"""Simulator of an instant payments partner (RTP style: signed JSON, synchronous accept/reject).

A plug-in of the simulator core (``gateway_simulators.core``) with the adapter's
own contracts. Routes: ``POST /v1/payments`` (signed, ``Idempotency-Key``),
``GET /v1/payments/{instruction_id}``, ``GET /v1/statements?date=`` (the day's
camt.053, signed request and answer), and the core's admin API under
``/_sim/``. Scenario faults apply as for every core simulator: ``latency``,
``hang`` (with ``after: true`` the payment is executed and the answer never
comes: an unknown outcome at the adapter), ``reset``, ``http_error``, payload
faults. Settings: see ``gateway_simulators.core.CoreSettings``
(``request_secret`` and ``callback_secret`` — the secret responses are signed
with, the adapter's ``response_secret``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway_simulators.core import SIMULATOR, create_simulator_app
from gateway_simulators.instant_rtp.partner import InstantRtp

__all__ = ["SIMULATOR", "InstantRtp", "create_app"]


def create_app(settings: Mapping[str, Any]) -> web.Application:
    """The instant payments simulator (``ConfigError`` on bad settings)."""
    return create_simulator_app(InstantRtp(), settings)
