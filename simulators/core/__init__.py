"""The shared simulator core: one engine, many partners.

A partner simulator is a ``Partner`` (its messages, codes and formats) plugged
into ``create_simulator_app``; the core gives it payment state with idempotent
retries, a seeded timeline, signed callbacks, faults by layer, the journal,
statements and the admin API, all driven by a YAML scenario.
"""

from __future__ import annotations

from gateway_simulators.core.app import SIMULATOR, Refusal, create_simulator_app
from gateway_simulators.core.engine import CallbackRecord, Payment, Simulator
from gateway_simulators.core.journal import Journal, JournalEntry, mask_ibans
from gateway_simulators.core.partner import (
    Partner,
    ReportLine,
    Statement,
    StatementEntry,
    Submission,
    Transaction,
)
from gateway_simulators.core.scenario import (
    Decision,
    PaymentFields,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    scenario_names,
)
from gateway_simulators.core.settings import CoreSettings

__all__ = [
    "SIMULATOR",
    "CallbackRecord",
    "CoreSettings",
    "Decision",
    "Journal",
    "JournalEntry",
    "Partner",
    "Payment",
    "PaymentFields",
    "Refusal",
    "ReportLine",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "Statement",
    "StatementEntry",
    "Submission",
    "Transaction",
    "create_simulator_app",
    "load_scenario",
    "mask_ibans",
    "parse_scenario",
    "scenario_names",
]
