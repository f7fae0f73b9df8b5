"""Simulator of a business unit receiving the gateway's status webhooks (``gateway simulate business_unit``).

It verifies every ``Gateway-Signature``, journals every request (event id, sequence, instruction id,
status), de-duplicates on the event id, and plays transport faults from a scenario (5xx, timeouts,
slow answers, resets) so QA and the tests can prove delivery under faults. See docs/webhooks.md.
"""

from __future__ import annotations

from gateway_simulators.business_unit.app import BUSINESS_UNIT, create_app
from gateway_simulators.business_unit.receiver import (
    BusinessUnit,
    Receipt,
    ReceiverSettings,
    load_receiver_scenario,
    parse_receiver_scenario,
    receiver_scenario_names,
)

__all__ = [
    "BUSINESS_UNIT",
    "BusinessUnit",
    "Receipt",
    "ReceiverSettings",
    "create_app",
    "load_receiver_scenario",
    "parse_receiver_scenario",
    "receiver_scenario_names",
]
